"""One trial's Sacred run on a worker: what the ray_sweep task and the Tune trainable share.

The experiment is rebuilt from its module (imported by file path under a private
name, or by module name when it was started with ``python -m``; once per worker
process), never shipped: Experiments cannot be pickled, and a by-value copy from
``__main__`` fails at run time (../shared/DESIGN.md). ``run_sacred`` runs one
``RunJob`` with the relay observer first among the run's observers, in the job's
folder, and puts the process back as it found it: folder, the experiment's
observers, its current run. Both callers notice a lost driver through it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from sacred import Experiment
from sacred.utils import SacredInterrupt

from .. import checkpoint
from ..messages import ExperimentRef, RunEnd, RunJob, WorkerRecording
from ..protocol import FOLLOW_LOGGING, LOST_DRIVER
from .guard import guarded
from .local import local_copy, made_run_folder, remember_host_info
from .observer import MetaFlags, RayObserver

_EXPERIMENTS: dict = {}  # ExperimentRef -> (Experiment, renames for the driver)


def load_experiment(ref: ExperimentRef) -> Experiment:
    """Import the experiment's module (cached per process) and return the Experiment."""
    if ref in _EXPERIMENTS:
        return _EXPERIMENTS[ref][0]
    if ref.module:
        if ref.root and os.path.isdir(ref.root) and ref.root not in sys.path:
            sys.path.insert(0, ref.root)
        module = importlib.import_module(ref.module)
    else:
        path = ref.locate()
        name = "sacred_ray_experiment_" + hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()[:10]
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    ex = getattr(module, ref.attribute, None)
    if not isinstance(ex, Experiment):
        raise LookupError(f"{ref.attribute!r} in {ref.module or ref.path} is not a sacred.Experiment")
    renames = {module.__name__: ref.driver_module} if ref.driver_module not in (None, module.__name__) else {}
    _EXPERIMENTS[ref] = (ex, renames)
    return ex


def renames_for(ref: ExperimentRef) -> dict:
    """How the classes of a loaded experiment's module are named for the driver (see protocol)."""
    return _EXPERIMENTS[ref][1] if ref in _EXPERIMENTS else {}


def node_info() -> dict:
    import ray

    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(), "pid": os.getpid()}


def relay_observers(hub: dict, token: str, node: dict, recording: Optional[WorkerRecording]) -> tuple:
    """``(the run's RayObserver, the observers that record in this worker)``, for both commands.

    A worker on the driver's machine records file storage itself, as the run alone would
    (fresh copies of the observers ``recording`` names); then the relay observer stands among
    them where the driver's own observers would, and only the driver's other observers get
    the run's start and files. Elsewhere the driver records everything."""
    recording_here = []
    if recording is not None and recording.observers and node.get("node_id") == recording.driver_node:
        recording_here = [local_copy(obs) for obs in recording.observers]
    priority = recording.driver_priority if recording is not None else None
    observer = RayObserver(hub, token, worker=node, worker_records=bool(recording_here),
                           driver_records=not recording_here or priority is not None,
                           priority=(priority if priority is not None else float("-inf")) if recording_here else None)
    return observer, ([MetaFlags(recording.meta_options), *recording_here] if recording_here else [])


@dataclass
class RunHooks:
    """What a caller of ``run_sacred`` is told while the run runs (each optional). The hooks
    are called on the run's own thread, except ``lost``; one that raises stops the run there,
    as the user's code raising would (Tune's trainable stops a run this way)."""

    created: Optional[Callable] = None  # (run): the Sacred run, made and not yet started
    logged: Optional[Callable] = None  # (name, value, step, before): a scalar the run logged; ``before``:
    # its step was recorded before a restart (the run computes it again: not logged twice)
    saved: Optional[Callable] = None  # (): a checkpoint was saved and the observers hold what was logged up to it
    lost: Optional[Callable] = None  # (ex): the driver went away (from another thread), the run's info says so


def run_sacred(ref: ExperimentRef, job: RunJob, observer: RayObserver, also: list = (),
               hooks: Optional[RunHooks] = None) -> RunEnd:
    """Run ``job`` as one Sacred run whose observers are ``observer`` and ``also``, telling
    ``hooks`` what happens. The outcome's status is the run's: COMPLETED, INTERRUPTED (Ctrl-C
    or a SacredInterrupt) or FAILED (anything else the user's code raises, SystemExit included)."""
    hooks = hooks or RunHooks()
    outcome = RunEnd(node=observer.worker)
    home = os.getcwd()
    ex = saved = None
    try:
        if job.cwd and os.path.isdir(job.cwd):
            os.chdir(job.cwd)
        ex = load_experiment(ref)
        _line_buffered()
        options = dict(job.options)
        follow_logging = options.pop(FOLLOW_LOGGING, False)
        if follow_logging:
            _handlers_follow_std_streams()
        observer.link.renames = renames_for(ref)
        remember_host_info()
        saved, ex.observers = ex.observers, [observer, *guarded(list(also), observer.link.driver_pid)]
        if observer.link.broken:  # the driver died while this worker was getting ready
            raise RuntimeError(f"{LOST_DRIVER} before the run started")
        if hooks.lost is not None:
            observer.link.on_lost(lambda: _lost(ex, list(also), hooks.lost))
        run = ex._create_run(config_updates=job.config_updates, named_configs=list(job.named_configs),
                             info=job.info, meta_info=_meta_info(job), options=options)
        if follow_logging:
            # and the handler Sacred's logging.basicConfig made just now, in the first run a worker
            # process runs: without this, that run's captured output lacks every log line
            _handlers_follow_std_streams()
        _follow(run, job, observer, hooks)
        _waits_for_its_last_beat(run)
        if hooks.created is not None:
            hooks.created(run)
        outcome.result = run()
        outcome.status = "COMPLETED"
    except (KeyboardInterrupt, SacredInterrupt) as e:
        outcome.status, outcome.error = "INTERRUPTED", str(e) or "interrupted"
    except BaseException as e:  # the user's code may raise anything, SystemExit included
        outcome.status, outcome.error = "FAILED", f"{e.__class__.__name__}: {e}"
    finally:
        checkpoint.activate(None)
        observer.link.on_lost(None)
        for obs in also:
            made_run_folder(obs)
        os.chdir(home)
        if ex is not None:
            if saved is not None:
                ex.observers = saved
            ex.current_run = None
    outcome.run_id = observer.run_id
    return outcome


def _meta_info(job: RunJob) -> dict:
    """The run's meta info; a new run that starts from a checkpoint an earlier run saved (a
    retry, ``--resume``, a PBT exploit) names that run in ``meta.sweep.resumed_from``. (A restart
    that continues the same run records no new start, so this is not seen there.)"""
    resumed = checkpoint.resumed_from(job.checkpoints["folder"]) if job.checkpoints else None
    if not resumed:
        return job.meta_info
    return {**job.meta_info, "sweep": {**job.meta_info.get("sweep", {}), "resumed_from": resumed}}


def _follow(run, job: RunJob, observer: RayObserver, hooks: RunHooks) -> None:
    """Give the run its trial's checkpoints (``sacred_ray.save`` / ``restore``) and tell
    ``hooks`` each value it logs and each save. When the driver answers the run's start with
    an earlier run it continues (a restart), the run continues that run's metrics: a step
    the observers already hold is not logged again (the values logged before the restart
    stand) and unnumbered steps count on from the last."""
    store = None
    if job.checkpoints:
        store = checkpoint.TrialCheckpoints(job.checkpoints["folder"], job.checkpoints.get("keep", 2))
        checkpoint.activate(store)
    if store is None and hooks.logged is None:
        return  # nothing to follow: Sacred's own logging, untouched
    metrics = run._metrics
    counters = getattr(metrics, "_metric_step_counter", None)
    recorded: dict = {}  # metric -> the last step the continued run holds

    def continues(last_steps: dict) -> None:  # before the run's main starts: nothing logged yet
        recorded.update(last_steps)
        if isinstance(counters, dict):
            counters.update(recorded)

    if store is not None:  # a restart goes on from the checkpoint: the steps before it stand
        observer.on_continue = continues
    log = metrics.log_scalar_metric

    def log_scalar_metric(metric_name, value, step=None):
        before = step is not None and step <= recorded.get(metric_name, -1)
        if not before:
            log(metric_name, value, step)
            at = step if step is not None else (counters or {}).get(metric_name)
            if store is not None and isinstance(at, int) and (store.step is None or at > store.step):
                store.step = at
        if hooks.logged is not None:
            hooks.logged(metric_name, value, step, before)

    metrics.log_scalar_metric = log_scalar_metric
    if store is not None:
        _beat_on_save(run, store, observer, hooks)


LAST_BEAT_SECONDS = 600.0  # how long a run's end waits for its last metrics to reach the observers


def _waits_for_its_last_beat(run) -> None:
    """Sacred ends a run after waiting 2 s for its last heartbeat, which carries every value
    logged since the one before: a run that logged a million values, or a burst just before it
    returned, was COMPLETED while they were still being written (metrics.json cut short, the
    ledger's metrics empty, the worker stopped mid-write at the sweep's end). The run's end waits
    for them; one that cannot get them out within LAST_BEAT_SECONDS fails, saying so."""
    said = []

    def stop_heartbeat():
        beat = run._heartbeat
        if beat is None:
            return
        run._stop_heartbeat_event.set()
        beat.join(timeout=LAST_BEAT_SECONDS)
        if beat.is_alive() and not said:  # once: Sacred calls this again as it records the failure
            said.append(True)
            raise RuntimeError(f"the run's last metrics did not reach its observers within "
                               f"{LAST_BEAT_SECONDS:.0f} s of its end")

    run._stop_heartbeat = stop_heartbeat


def _beat_on_save(run, store, observer: RayObserver, hooks: RunHooks) -> None:
    """A checkpoint is a heartbeat too: what the run logged up to it reaches every observer
    (the driver's included) before save() returns, so a worker that dies later loses no step
    before the checkpoint. Sacred's timer thread beats too (this locked beat: the run starts
    after this)."""
    beat, lock = run._emit_heartbeat, threading.Lock()

    def locked_beat():
        with lock:
            beat()

    def saved():
        locked_beat()
        observer.flush()  # and the driver holds it before save() returns
        if hooks.saved is not None:
            hooks.saved()

    run._emit_heartbeat = locked_beat
    store.on_saved = saved
    store.run_id = lambda: run._id  # known once the run has started


def _line_buffered() -> None:
    """Print as to a terminal: a Ray worker's stdout is a file, so Python buffers it in blocks,
    and Sacred's fd capture would read a run's output before its last prints reach the fd (the
    run alone, in a terminal, has them all)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and not getattr(stream, "line_buffering", True):
            try:
                reconfigure(line_buffering=True)
            except (ValueError, OSError):  # a stream that cannot be changed: leave it
                pass


class _Current:
    """A stream that is whatever ``sys.stdout`` (or ``sys.stderr``) is when it is written to."""

    def __init__(self, name: str):
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()

    def __getattr__(self, attribute):
        return getattr(getattr(sys, self.name), attribute)


def _handlers_follow_std_streams() -> None:
    """Let logging handlers that write to this process's stdout or stderr write to whatever
    ``sys.stdout``/``sys.stderr`` is at the time, so that Sacred's sys capture (which swaps
    those objects during a run) takes their lines, as fd capture does for the run alone.
    Handlers made at import hold the stream objects of that moment and would bypass it."""
    import logging

    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                for name in ("stdout", "stderr"):
                    if handler.stream in (getattr(sys, name), getattr(sys, f"__{name}__")):
                        handler.setStream(_Current(name))


def _lost(ex: Experiment, recording_here: list, then: Callable[[Experiment], None]) -> None:
    """The driver went away mid-run: the observers recording in this worker (file storage)
    get the run's last heartbeat and its INTERRUPTED end at once, from this thread, before
    ``then`` stops the run. Whatever tears the worker down next (a driver's local Ray dies
    with it, within about a second) finds the run closed, and the run's own end, if it gets
    that far, no longer reaches those observers."""
    run = ex.current_run
    if run is not None:
        run.info.setdefault("sacred_ray", {})["stop_reason"] = LOST_DRIVER
        if recording_here and run.start_time is not None:
            _close_interrupted(run, recording_here)
            # closed: nothing of the run's own end reaches them now. What tears the worker down
            # may turn the interrupt into another end (Ray's SIGTERM handler raises SystemExit
            # in the middle of it, which Sacred records FAILED), and must not write over this one.
            run.observers = [obs for obs in run.observers if all(obs is not here for here in recording_here)]
    then(ex)


def _close_interrupted(run, observers: list) -> None:
    """Write the run's info (its stop reason) and its INTERRUPTED end to ``observers`` alone:
    files on this machine, written in milliseconds. Nothing here waits on Sacred's heartbeat
    thread or on the connection to the driver, which may hold its lock for a whole answer."""
    import datetime

    now = datetime.datetime.utcnow()
    for obs in observers:
        try:
            obs.heartbeat_event(info=run.info, captured_out=run.captured_out or "", beat_time=now, result=run.result)
            obs.interrupted_event(interrupt_time=now, status="INTERRUPTED")
        except Exception:  # noqa: S112 - one observer's failure must not keep the others open
            continue
