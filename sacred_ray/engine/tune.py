"""tune_with's driver: a Ray Tune search whose trials are Sacred runs.

The space file compiles to a Tune param_space (Tune's generator) or a define-by-run
function (Optuna); trials run ``SacredTrainable``; a router thread relays their Sacred
events to fresh observer instances while ``Tuner.fit`` runs in the main thread.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from ray.tune import Callback
from sacred import Experiment

from ..messages import SearchJob
from ..spec import SpaceSpec, SpecError
from ..spec.settings import SCHEDULERS
from ..spec.space import SearchPlan, trial_count
from ..storage import filesystem, join
from .done import DoneIndex
from .prepare import storage_root
from .progress import Progress
from .searchers import budget, check_search_tools, compile_search, make_scheduler, tune_samples
from .session import Interrupted, Request, Session
from .tune_results import TuneResult, completed_trials, tune_result, write_lineage
from .tune_router import Router

log = logging.getLogger("sacred_ray")


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
    if req.rerun:
        raise SpecError("command line", "--rerun", "is ray_sweep's: a search samples its own trials (--resume "
                                                   "continues one and runs its FAILED trials again)")
    check_search_tools(space)
    settings = space.settings
    plan = SearchPlan.of(space)
    session = Session(ex, space, "tune", req)
    session.open()
    session.write_spec([])
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C is the session's: it stops Tune as below
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    runtime_env = dict(session.launch.runtime_env)
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), "RAY_CHDIR_TO_TRIAL_DIR": "0"}
    total, count = trial_count(space)
    session.beacon.total = total
    bar = Progress(total, settings.name, enabled=req.progress, count=count)
    router = None
    grid = None
    quieted = _quiet_tune_failures()
    try:
        try:
            session.start(runtime_env, graceful=lambda stop: _stop_search(stop, bar))
            skips = _done_runs(ex, session) if (req.skip_done or settings.skip_done) else None
            bar.start()
            router = Router(session, skips)
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
    out = tune_result(space, plan, session.folder, grid, session.earlier + new_runs, stop.code if stop else 0,
                      router.runs.observer_errors if router else [], new_runs=new_runs, interrupted=stop, sort=req.sort)
    scheduler = SCHEDULERS[space.settings.scheduler]
    if scheduler.hands_over:
        out.report += write_lineage(session.folder, session.earlier + new_runs,
                                    space.settings.metric, scheduler.label)
    out.report += session.closing_notes()
    return out


def _done_runs(ex: Experiment, session: Session) -> DoneIndex:
    """The earlier COMPLETED runs a trial of the search is checked against as it starts."""
    settings = session.settings
    index = DoneIndex(ex, session.launch.prototypes, session.sources, settings.skip_ignore, metric=settings.metric)
    print(f"skip-done: {len(index)} COMPLETED run(s) of this experiment and source in the observers' records; "
          f"a trial that samples one of their configs gives Tune that run's {settings.metric} instead of running")
    return index


def _tuner(session: Session, plan: SearchPlan, bar: Progress, router: Router):
    """Tune's Tuner for the search: a new one, or the interrupted one restored (--resume)."""
    from ray import tune
    from ray.tune.search import Searcher

    from ..worker.trainable import SacredTrainable

    settings, launch, folder = session.settings, session.launch, session.folder
    job = SearchJob(ref=launch.ref, hub=session.hub.link, plan=plan, options=launch.worker_options,
                    metric=settings.metric, scheduler=settings.scheduler, max_t=budget(settings),
                    name=settings.name, cwd=launch.cwd, completed=completed_trials(session.earlier, settings.metric),
                    checkpoints=launch.checkpoints, recording=router.runs.recording)
    trainable = tune.with_resources(tune.with_parameters(SacredTrainable, job=job), _placement(launch.request))
    # Tune's own state and checkpoints: in the sweep folder, or under tune.storage, which every
    # node reaches (Tune restores a trial on another node, and PBT hands checkpoints between them)
    storage_path = storage_root(settings, launch.sweep_id) or folder.path
    tune_dir = join(storage_path, "tune")
    param_space, search_alg = compile_search(plan, settings)
    if session.req.resume and _exists(tune_dir):
        # the same param_space: Tune resolves the values of trials it makes after the restore with it
        return tune.Tuner.restore(tune_dir, trainable, resume_errored=True, param_space=param_space)
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=settings.metric, mode=settings.mode, num_samples=tune_samples(settings),
            search_alg=search_alg, scheduler=make_scheduler(settings, plan),
            # a Searcher Tune wraps in its ConcurrencyLimiter; Tune's own generator has the limit built in
            max_concurrent_trials=settings.max_concurrent_trials if isinstance(search_alg, Searcher) else None,
            time_budget_s=settings.time_budget_s,
            reuse_actors=True),
        run_config=tune.RunConfig(
            name="tune", storage_path=storage_path, verbose=0,
            callbacks=[ProgressCallback(bar, settings.metric, settings.mode, settled=router.settled)],
            stop=router.stopper,
            failure_config=tune.FailureConfig(max_failures=settings.max_failures)),
    )


def _exists(location: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


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
    if threading.current_thread() is threading.main_thread():
        handler(signal.SIGUSR1, None)
    else:  # sweep_cancel, from the router's thread: Tune's handler runs on the main thread
        os.kill(os.getpid(), signal.SIGUSR1)


__all__ = ["TuneResult", "search"]
