"""tune_with's driver: a Ray Tune search whose trials are Sacred runs.

The space file compiles to a Tune param_space (Tune's generator) or a define-by-run
function (Optuna); trials run ``SacredTrainable``; a router thread relays their Sacred
events to fresh observer instances while ``Tuner.fit`` runs in the main thread.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import signal
import threading
from dataclasses import dataclass, field
from typing import Optional

from ray.tune import Callback
from sacred import Experiment

from ..checkpoint import filesystem, join
from ..protocol import RunEnd, RunOpen, SearchJob
from ..spec import SpaceSpec, Trial
from ..spec.settings import POPULATION
from ..spec.space import SearchPlan, trial_count
from .folder import SweepFolder
from .prepare import storage_root
from .progress import Progress
from .relay import Relay
from .results import SweepResult, TrialResult, best_of, rank, score, summarize
from .runs import Run, RunHooks, Runs
from .searchers import budget, check_search_tools, compile_search, make_scheduler
from .session import POLL_SECONDS, Interrupted, Request, Session

log = logging.getLogger("sacred_ray")


@dataclass
class TuneResult:
    """The search's outcome: the best trial, every Tune trial's row, and every Sacred run."""

    name: str
    folder: str
    metric: str
    mode: str
    best: Optional[dict]
    trials: list
    runs: list
    exit_code: int = 0
    report: str = ""
    observer_errors: list = field(default_factory=list)


class _Router(RunHooks):
    """Relays trial events to observers while Tune runs (``Tuner.fit`` has the main thread).

    One Sacred run per Tune trial while its config stands. A trial Tune starts again
    (HyperBand paused it; ``max_failures`` restarts it after an error) goes on in the same
    run, from its checkpoint, as ray_sweep's restarts do; so a run's end is held until Tune
    says the trial is done (its callbacks, via ``settled``), because until then the trial
    may come back. A PBT exploit changes the config: the trial's run ends there and a new
    one, naming its parent, starts from the donor's checkpoint."""

    def __init__(self, session: Session):
        import ray

        self.session = session  # its ``interrupted``: the user stopped the search
        self.runs = Runs(session.settings.name, session.launch, session.folder,
                         ray.get_runtime_context().get_node_id(), hooks=self, keep_entries=True)
        self.relay = Relay(session.hub, self.runs)
        self.thread = threading.Thread(target=self.run, name="sacred-ray-router", daemon=True)
        self.current: dict = {}  # trial id -> its newest run
        self.tokens: dict = {}  # trial id -> the token its newest start came with
        self.held: dict = {}  # trial id -> its newest run's RunEnd: the run ended, the trial may come back
        self.exploited: dict = {}  # a PBT exploit's new run -> the run it ends, once the new one has started
        self.done: set = set()  # trial ids Tune is done with (completed, stopped, failed for good)
        self.verdicts: queue.SimpleQueue = queue.SimpleQueue()  # trial ids Tune is done with, from its thread
        self.finish = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while True:
                events = self.relay.hub.get(POLL_SECONDS)
                if self.finish.is_set() and not events:
                    break
                self.relay.dispatch(events)
                self._settle()
        except BaseException as e:  # keep the driver informed instead of dying silently
            self.error = e

    def settled(self, trial_id: str) -> None:
        """Tune is done with this trial (called from Tune's thread)."""
        self.verdicts.put(trial_id)

    def _settle(self) -> None:
        while True:
            try:
                trial_id = self.verdicts.get_nowait()
            except queue.Empty:
                return
            self.done.add(trial_id)
            end = self.held.pop(trial_id, None)
            if end is not None:
                self._close(self.current[trial_id], end)

    # -- what the runs ask of the search (RunHooks) -----------------------------------
    def claim(self, token, body: RunOpen) -> Run:
        trial_id = body.trial_id
        earlier = self.current.get(trial_id)
        ended = self.held.pop(trial_id, None)
        if earlier is not None and not earlier.recorder.finished and body.parent is None:
            # Tune started the trial again: its run goes on
            self.tokens[trial_id] = token
            self.runs.goes_on(earlier, _why_restarted(earlier, ended), ended.node if ended else None)
            return earlier
        self.tokens[trial_id] = token
        run = self.current[trial_id] = self.runs.new(
            token, Trial(index=None, variant=body.variant, key=trial_id), trial_id=trial_id, parent=body.parent)
        if earlier is not None and ended is not None:  # a PBT exploit: the earlier run ends as the new one starts
            self.exploited[run] = (earlier, ended)
        return run

    def started(self, token, run: Run) -> None:
        earlier = self.exploited.pop(run, None)
        if earlier is not None:
            donor = run.parent or {}
            earlier[0].stop(None, f"PBT exploit: the trial goes on in run {run.recorder.run_id} from trial "
                                  f"{donor.get('trial_id')}'s checkpoint (step {donor.get('step')}) with a new config")
            self._close(*earlier)

    def ended(self, token, end: RunEnd) -> None:
        run = self.runs.by_token[token]
        trial_id = run.trial_id
        newest = self.tokens.get(trial_id) == token
        if not newest and self.current.get(trial_id) is run:
            return  # this run already goes on under a newer start of its trial
        if (newest and self.session.interrupted is None and trial_id not in self.done
                and (end.final is None or end.final.kind != "completed")):
            self.held[trial_id] = end  # until Tune says whether the trial comes back
            return
        self._close(run, end)

    def _close(self, run: Run, end: RunEnd) -> None:
        """End the run with its worker's end (stopped by the user: INTERRUPTED, saying so)."""
        if run.recorder.finished:
            return
        stop = self.session.interrupted
        if stop is not None and end.final is not None and end.final.kind == "interrupted":
            run.stop("INTERRUPTED", f"sweep interrupted ({stop.reason})")
        self.runs.close(run, end)

    def close_unfinished(self, reason: str) -> None:
        """After the search: held runs end as they ended (a paused trial Tune did not resume
        stays INTERRUPTED with its reason); runs whose worker never reported fail."""
        self._settle()
        for trial_id, end in list(self.held.items()):
            self._close(self.current[trial_id], end)
        self.held.clear()
        stop = self.session.interrupted
        for run in dict.fromkeys(self.runs.by_token.values()):
            if not run.recorder.finished:
                if stop is not None:
                    run.stop("INTERRUPTED", f"sweep interrupted ({stop.reason})")
                self.runs.close(run, None, crash=reason)


def _why_restarted(run: Run, ended: Optional[RunEnd]) -> str:
    """Why Tune started a trial again, for its run's ``info.sacred_ray.restarts``."""
    stop_reason = (run.recorder.info.get("sacred_ray") or {}).get("stop_reason")
    error = ended.error if ended is not None else None
    if ended is not None and ended.final is not None and ended.final.kind == "failed":
        return f"failed ({error}); Tune started the trial again (max_failures)"
    if stop_reason:
        return stop_reason.replace("stopped by", "paused by", 1)
    return f"the trial's worker ended ({error or 'it died'}); Tune started the trial again"


class ProgressCallback(Callback):
    """Feeds Tune's trial events to the progress line, and tells the router which trials Tune
    is done with. Tune pickles its callbacks with the search's state; a copy it restores
    (--resume) feeds this driver's live progress line and router (``LIVE``)."""

    LIVE: dict = {}  # the running search's {"progress", "settled"}

    def __init__(self, progress: Progress, metric: str, mode: str, settled=None):
        self.progress = progress
        self.settled = settled  # told each trial Tune is done with
        self.metric, self.mode = metric, mode
        self.running, self.done, self.failed = set(), set(), set()
        self.last: dict = {}  # trial id -> its last report of the metric: the end table ranks by it too

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("progress", "settled")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.progress, self.settled = self.LIVE.get("progress"), self.LIVE.get("settled")

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self._show()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if isinstance(value, (int, float)):
            self.last[trial.trial_id] = value
        self._show()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.done.add(trial.trial_id)
        if self.settled is not None:
            self.settled(trial.trial_id)
        self._show()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.done.add(trial.trial_id)
        self.failed.add(trial.trial_id)
        if self.settled is not None:
            self.settled(trial.trial_id)
        self._show()

    def _show(self):
        pick = min if self.mode == "min" else max
        best = f", best last {self.metric} {pick(self.last.values()):.4g}" if self.last else ""
        if self.progress is not None:
            self.progress.update(len(self.done), len(self.running), len(self.failed), extra=best)


# Tune logs every failed trial as an ERROR with its whole traceback (and once more at the end);
# the search reports each failed trial itself (its run FAILED with the traceback, a line at
# the end), so these records go to the sacred_ray logger at debug level instead of the screen.
TUNE_FAILURE_LOGS = {"ray.tune.execution.tune_controller": "Trial task failed for trial",
                     "ray.tune.tune": "Trials did not complete"}


class _TrialFailureFilter(logging.Filter):
    def __init__(self, starts: str):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(self.starts):
            log.debug("tune: %s", record.getMessage())
            return False
        return True


def _quiet_tune_failures() -> list:
    added = []
    for name, starts in TUNE_FAILURE_LOGS.items():
        f = _TrialFailureFilter(starts)
        logging.getLogger(name).addFilter(f)
        added.append((name, f))
    return added


def search(ex: Experiment, space: SpaceSpec, req: Request) -> TuneResult:
    """Run a Tune search over a resolved space (see ``sacred_ray.run_tune``)."""
    check_search_tools(space)
    settings = space.settings
    plan = SearchPlan.of(space)
    session = Session(ex, space, "tune", req)
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C is the session's: it stops Tune as below
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    runtime_env = dict(session.launch.runtime_env)
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), "RAY_CHDIR_TO_TRIAL_DIR": "0"}
    total, count = trial_count(space)
    bar = Progress(total, settings.name, enabled=req.progress, count=count)
    router = None
    grid = None
    quieted = _quiet_tune_failures()
    try:
        try:
            session.start(runtime_env, graceful=lambda stop: _stop_search(stop, bar))
            bar.start()
            router = _Router(session)
            router.thread.start()
            ProgressCallback.LIVE.update(progress=bar, settled=router.settled)
            grid = _tuner(session, plan, bar, router).fit()
        except KeyboardInterrupt:  # a second Ctrl-C, or one before Tune ran
            session.interrupted = session.interrupted or Interrupted(130, "Ctrl-C")
        except Interrupted as e:
            session.interrupted = e
    finally:
        bar.close()
        ProgressCallback.LIVE.clear()
        if router is not None:
            router.finish.set()
            router.thread.join(timeout=30)
            router.close_unfinished("the trial's worker ended without reporting (worker died or search interrupted)")
        session.close()
        for name, f in quieted:
            logging.getLogger(name).removeFilter(f)
    if router is not None and router.error is not None:
        raise router.error
    stop = session.interrupted
    new_runs = router.runs.entries if router else []
    out = _result(space, plan, session.folder, grid, session.earlier + new_runs, stop.code if stop else 0,
                  router.runs.observer_errors if router else [], new_runs=new_runs, interrupted=stop, sort=req.sort)
    if space.settings.scheduler in POPULATION:
        out.report += write_lineage(session.folder, session.earlier + new_runs,
                                    space.settings.metric, space.settings.scheduler.upper())
    out.report += session.closing_notes()
    return out


LINEAGE = "lineage.csv"


def write_lineage(folder: SweepFolder, runs: list, metric: str, label: str = "PBT") -> str:
    """``lineage.csv``: one row per Sacred run of a PBT search, naming the run whose checkpoint it
    started from (its parent: run, trial, step) and the keys the exploit changed; ``ancestry``
    is the chain of runs from the first to this one, ``final`` marks each trial's last run."""
    by_run = {str(r.get("run_id")): r for r in runs if r.get("run_id") is not None}
    last_of_trial = {r.get("trial_id"): str(r.get("run_id")) for r in runs}
    rows = []
    for r in runs:
        parent = r.get("parent") or {}
        chain, seen, at = [str(r.get("run_id"))], set(), parent.get("run_id")
        while at is not None and str(at) not in seen:  # a cycle cannot happen; never loop on one
            seen.add(str(at))
            chain.append(str(at))
            at = (by_run.get(str(at), {}).get("parent") or {}).get("run_id")
        rows.append([r.get("run_id"), r.get("trial_id"), parent.get("run_id"), parent.get("trial_id"),
                     parent.get("step"), parent.get("changed") or {}, r.get("status"), (r.get("metrics") or {}).get(metric),
                     (r.get("steps") or {}).get(metric), " > ".join(reversed(chain)),
                     last_of_trial.get(r.get("trial_id")) == str(r.get("run_id"))])
    folder.write_csv(LINEAGE, ["run_id", "trial_id", "parent_run_id", "parent_trial_id", "parent_step", "changed",
                               "status", metric, "steps", "ancestry", "final"], rows)
    exploits = sum(1 for r in runs if r.get("parent"))
    return f"\n{label}: {exploits} exploits over {len(last_of_trial)} trials; family trees in {folder.file(LINEAGE)}"


def _tuner(session: Session, plan: SearchPlan, bar: Progress, router: _Router):
    """Tune's Tuner for the search: a new one, or the interrupted one restored (--resume)."""
    from ray import tune

    from ..worker.trainable import SacredTrainable

    settings, launch, folder = session.settings, session.launch, session.folder
    job = SearchJob(ref=launch.ref, hub=session.hub.link, plan=plan, options=launch.worker_options,
                    metric=settings.metric, scheduler=settings.scheduler, max_t=budget(settings),
                    name=settings.name, cwd=launch.cwd, completed=_completed(session.earlier, settings.metric),
                    checkpoints=launch.checkpoints, recording=router.runs.recording)
    trainable = tune.with_resources(tune.with_parameters(SacredTrainable, job=job), _placement(launch.request))
    # Tune's own state and checkpoints: in the sweep folder, or under tune.storage, which every
    # node reaches (Tune restores a trial on another node, and PBT hands checkpoints between them)
    storage_path = storage_root(settings) or folder.path
    tune_dir = join(storage_path, "tune")
    if session.req.resume and _exists(tune_dir):
        return tune.Tuner.restore(tune_dir, trainable, resume_errored=True)
    param_space, search_alg = compile_search(plan, settings)
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=settings.metric, mode=settings.mode, num_samples=settings.num_samples,
            search_alg=search_alg, scheduler=make_scheduler(settings, plan),
            max_concurrent_trials=settings.max_concurrent_trials, time_budget_s=settings.time_budget_s,
            reuse_actors=True),
        run_config=tune.RunConfig(
            name="tune", storage_path=storage_path, verbose=0,
            callbacks=[ProgressCallback(bar, settings.metric, settings.mode, settled=router.settled)],
            failure_config=tune.FailureConfig(max_failures=settings.max_failures)),
    )


def _exists(location: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _completed(earlier: list, metric: str) -> dict:
    """Tune trials of a resumed search whose run COMPLETED: trial id -> its last result."""
    done = {}
    for entry in earlier:
        metrics = entry.get("metrics") or {}
        if entry.get("status") == "COMPLETED" and metric in metrics:
            steps = (entry.get("steps") or {}).get(metric, 1)
            done[entry["trial_id"]] = {"metrics": metrics, "step": max(steps - 1, 0)}
    return done


def _placement(request: dict) -> dict:
    """A Ray task's resource request in the form ``tune.with_resources`` takes."""
    pg = {"cpu": request.get("num_cpus", 1)}
    if request.get("num_gpus"):
        pg["gpu"] = request["num_gpus"]
    if request.get("memory"):
        pg["memory"] = request["memory"]
    pg.update(request.get("resources", {}))
    return pg


def _stop_search(stop: Interrupted, bar: Progress) -> None:
    """The first Ctrl-C or SIGTERM: ask Tune to stop its trials (its own graceful stop, which
    also saves the search's state for --resume); before Tune runs, stop at once."""
    handler = signal.getsignal(signal.SIGUSR1)  # Tune's stop, while Tuner.fit runs
    if not callable(handler):
        raise stop
    bar.close()
    print(f"\n{stop.reason}: stopping the search's running trials (press Ctrl-C again to stop at once)", flush=True)
    handler(signal.SIGUSR1, None)


def _result(space: SpaceSpec, plan: SearchPlan, folder: SweepFolder, grid, runs: list, exit_code: int,
            observer_errors: list, new_runs: list, interrupted: Optional[Interrupted] = None,
            sort: Optional[str] = None) -> TuneResult:
    """The table, best trial and files of a search; ``runs`` includes a resumed search's earlier runs."""
    s = space.settings
    results = [_trial_result(i, plan, tune_result, runs, s.metric, interrupted) for i, tune_result in enumerate(grid or [])]
    out = SweepResult(s.name, folder.path, results)
    report = summarize(out, sort or s.metric, s.mode if not sort else None, folder, top=10)
    counts = collections.Counter(r["status"] for r in runs)
    report += (f"\n{len(runs)} Sacred runs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
               if len(runs) != len(results) else "")
    ranked = rank(results, s.metric, s.mode)
    rows = [_row(r, s.metric) for r in ranked]
    best = best_of(ranked, s.metric)
    # as for ray_sweep: a trial that failed and then completed (max_failures) is not a failure
    failed = any(getattr(t, "error", None) for t in (grid or [])) or any(r.status == "FAILED" for r in results)
    if exit_code == 0 and failed:
        exit_code = 1
    return TuneResult(s.name, folder.path, s.metric, s.mode, _row(best, s.metric) if best else None, rows, new_runs,
                      exit_code, report, observer_errors)


def _trial_result(index: int, plan: SearchPlan, tune_result, runs: list, metric: str,
                  interrupted: Optional[Interrupted]) -> TrialResult:
    """One Tune trial as the shared results know trials: its values, last run and last report."""
    reported = tune_result.metrics or {}
    trial_id = reported.get("trial_id") or _trial_id_from_path(tune_result.path)
    try:
        variant, updates, labels = plan.decode_labelled(tune_result.config or {})
    except (KeyError, IndexError, TypeError, ValueError):  # a trial Tune made but never ran
        variant, updates, labels = None, {}, {}
    trial = Trial(index=index, variant=variant, updates=dict(updates), named=labels, key=trial_id or "")
    trial_runs = [r for r in runs if r.get("trial_id") == trial_id]
    last = trial_runs[-1] if trial_runs else {}
    metrics = dict(last.get("metrics") or {})
    if reported.get(metric) is not None:
        metrics[metric] = reported[metric]  # the last report Tune ranked it by
    if trial_runs:
        status, error = last.get("status"), last.get("error")
    elif interrupted is not None:
        status, error = "INTERRUPTED", "not run"
    else:
        status, error = "FAILED", str(tune_result.error) if tune_result.error else "no Sacred run was recorded"
    return TrialResult(trial=trial, status=status, trial_id=trial_id, run_id=last.get("run_id"), metrics=metrics,
                       duration=last.get("duration"), node={"node_ip": last.get("node")}, error=error,
                       config=last.get("config"), iterations=reported.get("training_iteration"),
                       runs=[r.get("run_id") for r in trial_runs], attempts=max(len(trial_runs), 1))


def _trial_id_from_path(path: Optional[str]) -> Optional[str]:
    parts = os.path.basename(path or "").split("_")
    return "_".join(parts[1:3]) if len(parts) > 2 else None


def _row(r: TrialResult, metric: str) -> dict:
    return {"trial_id": r.trial_id, "variant": r.trial.variant, "values": r.trial.values, "metric": score(r, metric),
            "status": r.status, "run_id": r.run_id, "runs": r.runs, "reason": r.error, "iterations": r.iterations,
            "config": r.config}


__all__ = ["TuneResult", "search"]
