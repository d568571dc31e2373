"""tune_with's driver: a Ray Tune search whose trials are Sacred runs.

The space file compiles to a Tune param_space (Tune's generator) or a define-by-run
function (Optuna); trials run ``SacredTrainable``; a router thread relays their Sacred
events to fresh observer instances while ``Tuner.fit`` runs in the main thread.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from ray.tune import Callback
from sacred import Experiment

from ..protocol import ARTIFACT, END, HEARTBEAT, RESOURCE, START, UNREADABLE, SearchJob
from ..spec import SpaceSpec, SpecError
from ..spec.space import PRIMITIVE, SearchPlan
from .folder import SweepFolder
from .observers import (
    observers_for_trial,
    redact,
)
from .progress import Progress
from .recorder import RunIds, TrialRecorder
from .session import POLL_SECONDS, Interrupted, Session

OPTUNA_UNSUPPORTED = ("randn", "qrandn")


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


def _searcher_available(name: str, source: str) -> None:
    if name in ("optuna", "hyperopt"):
        try:
            __import__(name)
        except ImportError:
            raise SpecError(source, "tune: search", f'{name} is not installed; pip install "sacred-ray[{name}]"') from None


def _check_for_searcher(space: SpaceSpec) -> None:
    search = space.settings.search
    _searcher_available(search, space.source)
    if search == "optuna":
        for v in space.variants:
            for key, dist in v.space.items():
                if dist.name in OPTUNA_UNSUPPORTED:
                    where = f"variants: {v.name}: space: {key}" if v.name else f"space: {key}"
                    raise SpecError(space.source, where, f"optuna cannot sample {dist.name}; use uniform or search: random")


def _suggest(trial, name: str, dist):
    a = dist.args
    n = dist.name
    if n == "value":
        return a[0]
    if n == "choice":
        if all(isinstance(c, PRIMITIVE) for c in a):
            return trial.suggest_categorical(name, list(a))
        return trial.suggest_categorical(name, list(range(len(a))))
    if n == "uniform":
        return trial.suggest_float(name, a[0], a[1])
    if n == "quniform":
        return trial.suggest_float(name, a[0], a[1], step=a[2])
    if n in ("loguniform", "qloguniform"):
        x = trial.suggest_float(name, a[0], a[1], log=True)
        return round(x / a[2]) * a[2] if n == "qloguniform" else x
    if n == "randint":
        return trial.suggest_int(name, a[0], a[1] - 1)
    if n == "qrandint":
        return trial.suggest_int(name, a[0], a[1], step=a[2] if len(a) > 2 else 1)
    if n in ("lograndint", "qlograndint"):
        x = trial.suggest_int(name, a[0], a[1] - (1 if n == "lograndint" else 0), log=True)
        return int(round(x / a[2]) * a[2]) if n == "qlograndint" else x
    raise ValueError(f"optuna cannot sample {n}")


class DefineByRun:
    """Optuna's define-by-run space: pick a variant, then suggest only that variant's parameters."""

    def __init__(self, plan: SearchPlan):
        self.plan = plan

    def __call__(self, trial) -> dict:
        names = [v.name for v in self.plan.variants]
        index = names.index(trial.suggest_categorical("variant", names)) if len(names) > 1 else 0
        for key, dist in self.plan.sampled(index).items():
            _suggest(trial, self.plan.param_name(index, key), dist)
        return {"variant_index": index}


def _hyperopt(hp, label: str, dist):
    import math

    a, n = dist.args, dist.name
    if n == "value":
        return a[0]
    if n == "choice":
        return hp.choice(label, list(a) if all(isinstance(c, PRIMITIVE) for c in a) else list(range(len(a))))
    if n == "uniform":
        return hp.uniform(label, a[0], a[1])
    if n == "quniform":
        return hp.quniform(label, a[0], a[1], a[2])
    if n == "loguniform":
        return hp.loguniform(label, math.log(a[0]), math.log(a[1]))
    if n == "qloguniform":
        return hp.qloguniform(label, math.log(a[0]), math.log(a[1]), a[2])
    if n == "randn":
        return hp.normal(label, a[0] if a else 0.0, a[1] if len(a) > 1 else 1.0)
    if n == "qrandn":
        return hp.qnormal(label, a[0], a[1], a[2])
    if n == "randint":
        return hp.randint(label, a[0], a[1])
    if n == "qrandint":
        return hp.quniform(label, a[0], a[1], a[2] if len(a) > 2 else 1)
    if n == "lograndint":
        return hp.qloguniform(label, math.log(a[0]), math.log(a[1] - 1), 1)
    if n == "qlograndint":
        return hp.qloguniform(label, math.log(a[0]), math.log(a[1]), a[2])
    raise ValueError(f"hyperopt cannot sample {n}")


def hyperopt_space(plan: SearchPlan) -> dict:
    """hyperopt's conditional space: a choice of variants, each branch with only its parameters."""
    from hyperopt import hp

    branches = []
    for index, variant in enumerate(plan.variants):
        branch = {"variant_index": index}
        for key, dist in plan.sampled(index).items():
            label = f"{variant.name}:{key}" if len(plan.variants) > 1 else key
            branch[plan.param_name(index, key)] = _hyperopt(hp, label, dist)
        branches.append(branch)
    return {"branch": hp.choice("variant", branches) if len(branches) > 1 else branches[0]}


def compile_search(plan: SearchPlan, settings):
    """(param_space, search_alg) for Tune, from a search plan."""
    from ray import tune

    if settings.search == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        seed = settings.search_options.get("seed")
        return {}, HyperOptSearch(space=hyperopt_space(plan), metric=settings.metric, mode=settings.mode,
                                  random_state_seed=seed, n_initial_points=min(10, settings.num_samples))

    if settings.search == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = settings.search_options.get("seed")
        return {}, OptunaSearch(space=DefineByRun(plan), metric=settings.metric, mode=settings.mode, seed=seed)

    from ray.tune.search.basic_variant import BasicVariantGenerator

    draws = collections.Counter()

    def sample(spec):
        cell = spec.config["cell"]
        draws[cell] += 1
        return plan.sample_cell(cell, draws[cell] - 1)

    space = {"cell": tune.grid_search(list(range(len(plan.cells)))), "params": tune.sample_from(sample)}
    return space, BasicVariantGenerator(random_state=plan.seed)


DEFAULT_MAX_T = {"asha": 100, "hyperband": 81}  # Ray's defaults for ASHAScheduler, HyperBandScheduler


def budget(settings) -> Optional[int]:
    """The iterations a scheduler gives a trial at most (None: no such budget)."""
    if settings.scheduler not in DEFAULT_MAX_T:
        return None
    return settings.scheduler_options.get("max_t", DEFAULT_MAX_T[settings.scheduler])


def make_scheduler(settings):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

    options = dict(settings.scheduler_options)
    kind = settings.scheduler
    if kind == "asha":
        return ASHAScheduler(**options)
    if kind == "hyperband":
        return HyperBandScheduler(**options)
    if kind == "median":
        return MedianStoppingRule(**options)
    return FIFOScheduler()


class _Router(threading.Thread):
    """Relays trial events to observers while Tune runs; one Sacred run = one recorder."""

    def __init__(self, hub, prototypes: list, base_dir: str, folder: SweepFolder, session: Session):
        super().__init__(name="sacred-ray-router", daemon=True)
        self.hub = hub
        self.session = session  # its ``interrupted``: the user stopped the search
        self.prototypes = prototypes
        self.base_dir = base_dir
        self.folder = folder
        self.recorders: dict = {}
        self.run_ids = RunIds()
        self.runs: list = []
        self.observer_errors: list = []
        self.finish = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while True:
                events = self.hub.get(POLL_SECONDS)
                if self.finish.is_set() and not events:
                    break
                self.handle(events)
        except BaseException as e:  # keep the driver informed instead of dying silently
            self.error = e

    def handle(self, events: list) -> None:
        for token, kind, payload in events:
            rec = self.recorders.get(token)
            if kind == UNREADABLE and payload["kind"] == START:
                self.hub.answer(token, {"error": f"the sweep driver could not read this run's start: {payload['error']}"})
                continue
            if kind == START:
                rec = self.recorders[token] = TrialRecorder(observers_for_trial(self.prototypes), self.base_dir,
                                                             run_ids=self.run_ids)
                rec.token = token
                rec.config = payload.get("config")
                rec.began = time.time()
                self.hub.answer(token, rec.start(payload))
            elif rec is None:
                continue
            elif kind == UNREADABLE:
                rec.errors.append(f"the sweep driver could not read a {payload['kind']} message: {payload['error']}")
            elif kind == HEARTBEAT:
                rec.heartbeat(payload)
            elif kind == ARTIFACT:
                rec.artifact(payload)
            elif kind == RESOURCE:
                rec.resource(payload)
            elif kind == END:
                final, stop = payload["final"], self.session.interrupted
                if stop is not None and final is not None and final[0] == "interrupted":
                    reason = f"sweep interrupted ({stop.reason})"
                    if isinstance(rec.info.get("tune"), dict):
                        rec.info["tune"]["stop_reason"] = reason
                    rec.final(final, status_override="INTERRUPTED", reason=reason)
                else:
                    rec.final(final)
                self._record(rec, payload["outcome"].get("error"), payload["outcome"].get("node"))

    def _record(self, rec: TrialRecorder, error: Optional[str], node: Optional[dict]) -> None:
        trial_id = rec.token.split(":")[0]
        stop_reason = (rec.info.get("tune") or {}).get("stop_reason")
        entry = {"trial_id": trial_id, "run_id": rec.run_id, "status": rec.status or "FAILED",
                 "reason": stop_reason if rec.status == "INTERRUPTED" else error, "metrics": rec.metrics,
                 "steps": rec.metric_steps, "duration": round(time.time() - rec.began, 3), "config": rec.config,
                 "node": (node or {}).get("node_ip"), "time": time.time()}
        self.runs.append(entry)
        self.observer_errors.extend(rec.errors)
        self.folder.record(entry)

    def close_unfinished(self, reason: str) -> None:
        stop = self.session.interrupted
        if stop is not None:
            reason = f"sweep interrupted ({stop.reason})"
        for rec in self.recorders.values():
            if not rec.finished:
                rec.final(None, status_override="INTERRUPTED" if stop else None, reason=reason)
                self._record(rec, reason, None)


class ProgressCallback(Callback):
    """Feeds Tune's trial events to the progress line."""

    def __init__(self, progress: Progress, metric: str, mode: str):
        self.progress = progress
        self.metric, self.mode = metric, mode
        self.running, self.done, self.failed = set(), set(), set()
        self.best = None

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self._show()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if isinstance(value, (int, float)):
            if self.best is None or (value < self.best if self.mode == "min" else value > self.best):
                self.best = value
        self._show()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.done.add(trial.trial_id)
        self._show()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.done.add(trial.trial_id)
        self.failed.add(trial.trial_id)
        self._show()

    def _show(self):
        best = f", best {self.metric} {self.best:.4g}" if self.best is not None else ""
        self.progress.update(len(self.done), len(self.running), len(self.failed), extra=best)


def expected_trials(space: SpaceSpec, plan: SearchPlan) -> int:
    s = space.settings
    return s.num_samples * (len(plan.cells) if s.search in ("random", "grid") else 1)


def run_tune(
    ex: Experiment,
    spec,
    updates: Optional[dict] = None,
    named_configs: tuple = (),
    options: Optional[dict] = None,
    address: Optional[str] = None,
    resume: bool = False,
    progress: bool = True,
    command: Optional[list] = None,
) -> TuneResult:
    """Run a Tune search over a space file (path, dict or SpaceSpec); every trial is a Sacred run.

    ``options`` are Sacred's flags by long name, as for ``run_sweep``. Returns the best
    trial and a row per trial; writes ``best.yaml`` into the sweep folder.
    """
    from ray import tune

    from ..checks import resolve_space
    from ..worker.trainable import SacredTrainable

    space = resolve_space(ex, spec, updates, named_configs)
    _check_for_searcher(space)
    settings = space.settings
    plan = SearchPlan.of(space)
    session = Session(ex, space, "tune", options, address, resume, command)
    launch, folder = session.launch, session.folder
    tune_dir = os.path.join(folder.path, "tune")
    resuming = resume and os.path.isdir(tune_dir)
    runtime_env = dict(launch.runtime_env)
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), "RAY_CHDIR_TO_TRIAL_DIR": "0"}
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C is the session's: it stops Tune as below
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

    bar = Progress(expected_trials(space, plan), settings.name, enabled=progress)
    router = None
    grid = None
    try:
        try:
            session.start(runtime_env, graceful=lambda stop: _stop_search(stop, bar))
            router = _Router(session.hub, launch.prototypes, launch.base_dir, folder, session)
            router.start()
            job = SearchJob(ref=launch.ref, hub=session.hub.link, plan=plan, options=launch.worker_options,
                            metric=settings.metric, scheduler=settings.scheduler, max_t=budget(settings),
                            name=settings.name, cwd=launch.cwd, completed=_completed(session.earlier, settings.metric))
            trainable = tune.with_resources(tune.with_parameters(SacredTrainable, job=job),
                                            _placement(launch.request))
            callback = ProgressCallback(bar, settings.metric, settings.mode)
            if resuming:
                tuner = tune.Tuner.restore(tune_dir, trainable, resume_errored=True)
            else:
                param_space, search_alg = compile_search(plan, settings)
                tuner = tune.Tuner(
                    trainable, param_space=param_space,
                    tune_config=tune.TuneConfig(
                        metric=settings.metric, mode=settings.mode, num_samples=settings.num_samples,
                        search_alg=search_alg, scheduler=make_scheduler(settings),
                        max_concurrent_trials=settings.max_concurrent_trials, time_budget_s=settings.time_budget_s,
                        reuse_actors=True),
                    run_config=tune.RunConfig(
                        name="tune", storage_path=folder.path, verbose=0, callbacks=[callback],
                        failure_config=tune.FailureConfig(max_failures=settings.max_failures)),
                )
            grid = tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl-C, or one before Tune ran
            session.interrupted = session.interrupted or Interrupted(130, "Ctrl-C")
        except Interrupted as e:
            session.interrupted = e
    finally:
        bar.close()
        if router is not None:
            router.finish.set()
            router.join(timeout=30)
            router.close_unfinished("the trial's worker ended without reporting (worker died or search interrupted)")
        session.close()
    if router is not None and router.error is not None:
        raise router.error
    stop = session.interrupted
    out = _result(space, plan, folder, grid, session.earlier + (router.runs if router else []),
                  stop.code if stop else 0, router.observer_errors if router else [],
                  new_runs=router.runs if router else [], interrupted=stop)
    out.report += session.failed_saves_note()
    return out


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
            observer_errors: list, new_runs: list, interrupted: Optional[Interrupted] = None) -> TuneResult:
    """The table, best trial and files of a search; ``runs`` includes a resumed search's earlier runs."""
    from ..display import format_table, format_value, varying_keys

    s = space.settings
    by_trial: dict = collections.defaultdict(list)
    for run in runs:
        by_trial[run["trial_id"]].append(run)
    rows = []
    for result in (grid or []):
        config = result.config or {}
        trial_id = (result.metrics or {}).get("trial_id") or os.path.basename(result.path or "").split("_")[1:2]
        trial_id = trial_id[0] if isinstance(trial_id, list) and trial_id else trial_id
        try:
            variant, updates, named = plan.decode(config)
        except (KeyError, IndexError, TypeError, ValueError):  # a trial Tune made but never ran
            variant, updates, named = None, {}, ()
        values = dict(updates)
        if named:
            values["+named"] = named[0] if len(named) == 1 else list(named)
        trial_runs = by_trial.get(trial_id, [])
        last = trial_runs[-1] if trial_runs else {}
        metric_value = (result.metrics or {}).get(s.metric)
        rows.append({"trial_id": trial_id, "variant": variant, "values": values, "metric": metric_value,
                     "status": last.get("status", "ERROR" if result.error else "INTERRUPTED" if interrupted else "?"),
                     "run_id": last.get("run_id"), "runs": [r["run_id"] for r in trial_runs],
                     "reason": last.get("reason", "not run" if interrupted and not trial_runs else None),
                     "iterations": (result.metrics or {}).get("training_iteration"), "config": last.get("config")})
    ok = [r for r in rows if isinstance(r["metric"], (int, float)) and r["status"] == "COMPLETED"]
    ok.sort(key=lambda r: r["metric"], reverse=s.mode == "max")
    rest = [r for r in rows if r not in ok]
    ranked = ok + rest
    best = ok[0] if ok else None
    lines = []
    keys = varying_keys([r["values"] for r in ranked]) if len(ranked) > 1 else list(ranked[0]["values"]) if ranked else []
    has_variants = any(r["variant"] for r in ranked)
    headers = ["trial"] + (["variant"] if has_variants else []) + keys + ["status", s.metric, "iters", "run id"]
    table = [[r["trial_id"]] + ([r["variant"]] if has_variants else []) + [r["values"].get(k) for k in keys]
             + [r["status"], r["metric"], r["iterations"], r["run_id"]] for r in ranked]
    folder.write_summary(["trial_id", "variant", "status", s.metric, "iterations", "run_id", "runs", "reason"] + keys,
                         [[r["trial_id"], r["variant"], r["status"], r["metric"], r["iterations"], r["run_id"],
                           r["runs"], r["reason"]] + [r["values"].get(k) for k in keys] for r in ranked])
    lines.append(format_table(headers, table[:10]))
    if len(table) > 10:
        lines.append(f"... {len(table) - 10} more in {folder.file('summary.csv')}")
    if best is not None:
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in best["values"].items())
        lines.append(f"best: trial {best['trial_id']} (run {best['run_id']}), {s.metric} = {format_value(best['metric'])}: {shown}")
        if best.get("config") is not None:
            folder.write_best(best["config"], f"config of the best trial ({s.metric} {s.mode}): run {best['run_id']}, "
                                              f"trial {best['trial_id']}; load with: with {folder.file('best.yaml')}")
            lines.append(f"best config: {folder.file('best.yaml')}")
    counts = collections.Counter(r["status"] for r in runs)
    shown_counts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    lines.append(f"{len(rows)} trials, {len(runs)} Sacred runs: {shown_counts}; sweep folder {folder.path}")
    errored = any(getattr(result, "error", None) for result in (grid or []))
    failed = errored or any(r["status"] == "FAILED" for r in new_runs)
    if exit_code == 0 and failed:
        exit_code = 1
    return TuneResult(s.name, folder.path, s.metric, s.mode, best, ranked, new_runs, exit_code, "\n".join(lines),
                      observer_errors)


def run_tune_cli(ex: Experiment, req, space) -> int:
    import sys

    result = run_tune(ex, space, options=req.options, address=req.address, resume=req.resume,
                      command=[redact(a) for a in sys.argv])
    print(result.report)
    return result.exit_code


__all__ = ["TuneResult", "run_tune"]
