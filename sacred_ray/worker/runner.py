"""Run one trial as an ordinary Sacred run on a Ray worker.

The experiment is rebuilt from its module (imported by file path under a private
name, once per worker process), never shipped: Experiments cannot be pickled, and a
by-value copy from ``__main__`` fails at run time (../shared/DESIGN.md).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import signal
import sys
from dataclasses import dataclass
from typing import Optional

from sacred import Experiment

from .. import protocol
from ..protocol import BEGUN
from .local import made_run_folder, numbered_from_last, remember_host_info
from .observer import MetaFlags, RayObserver

_EXPERIMENTS: dict = {}


@dataclass(frozen=True)
class ExperimentRef:
    """Where a worker finds the experiment: a module file (or a module name, for an
    experiment started with ``python -m``), the variable that holds it, and the name of
    its module in the driver (where the driver finds the classes it defines)."""

    attribute: str
    path: Optional[str] = None
    relative_path: Optional[str] = None
    module: Optional[str] = None
    root: Optional[str] = None  # the folder ``module`` is imported from, when it is on this machine
    driver_module: Optional[str] = None

    def locate(self) -> str:
        """The module file to import here: the shipped copy in the working dir when present."""
        if self.relative_path and os.path.isfile(self.relative_path):
            return os.path.abspath(self.relative_path)
        if self.path and os.path.isfile(self.path):
            return self.path
        raise FileNotFoundError(
            f"experiment module {self.relative_path or self.path!r} is not on this worker "
            f"(cwd {os.getcwd()}); ship it with sweep.runtime_env.working_dir"
        )


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


def _interruptible():
    """Let SIGINT raise KeyboardInterrupt during the run (Ray workers ignore it otherwise).

    The driver signals a trial it stops (timeout, fail_fast, Ctrl-C) on this machine, so
    even a trial blocked in time.sleep or I/O ends at once and Sacred records it."""
    try:
        if signal.SIGINT in signal.sigpending():
            # A stop meant for an earlier trial of this worker arrived after its run ended
            # (blocked, so still pending): take it, or it would interrupt this trial.
            signal.sigwait([signal.SIGINT])
        handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])  # Ray blocks it
        return handler, mask
    except (ValueError, AttributeError):  # not the main thread, or no signal masks here
        return None


def _restore_sigint(previous) -> None:
    if previous is not None:
        handler, mask = previous
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)


def _observers_here(job: dict, node: dict) -> list:
    """Fresh copies of the observers this worker may record with itself: those the driver
    marked as such (file storage), when this worker shares the driver's machine."""
    import copy

    if not job.get("local_observers") or node.get("node_id") != job.get("driver_node"):
        return []
    here = [copy.copy(obs) for obs in job["local_observers"]]
    for obs in here:
        numbered_from_last(obs)
    return here


def _driver_lost(ex: Experiment) -> None:
    """The sweep's driver died: stop this trial as Ctrl-C would, saying why, instead of
    running on for nobody (an orphan's finished run would be run again on --resume)."""
    run = ex.current_run
    if run is not None:
        run.info.setdefault("sacred_ray", {})["stop_reason"] = "the sweep's driver went away"
    os.kill(os.getpid(), signal.SIGINT)


def run_trial(ref: ExperimentRef, job: dict, hub: dict) -> bytes:
    """Run one trial attempt; every event goes to the driver's ``hub`` (its address and key).

    ``job`` holds ``token``, ``config_updates``, ``named_configs``, ``options``
    (Sacred flags, observer flags removed), ``meta_info`` and ``cwd`` (the folder to
    run in when the worker shares the driver's machine). Returns the outcome with
    the run's ``tail`` (see ``RayObserver.tail``); nothing here waits on the driver
    after the run has started.
    """
    node = node_info()
    here = _observers_here(job, node)
    driver_priority = job.get("driver_priority")
    observer = RayObserver(
        hub, job["token"], worker=node, recorded_here=bool(here),
        driver_records=not here or driver_priority is not None,
        # among observers recording here, stand where the driver's observers would stand
        priority=(driver_priority if driver_priority is not None else float("-inf")) if here else None,
    )
    observer.link.send(job["token"], BEGUN, {"worker": node})
    outcome: dict = {"status": "FAILED", "result": None, "run_id": None, "error": None, "node": node}
    saved: list = []
    ex = None
    home = os.getcwd()
    previous_sigint = _interruptible()
    try:
        if job.get("cwd") and os.path.isdir(job["cwd"]):
            os.chdir(job["cwd"])
        ex = load_experiment(ref)
        observer.link.renames = renames_for(ref)
        remember_host_info()
        saved, ex.observers = ex.observers, [observer] + ([MetaFlags(job["meta_options"])] + here if here else [])
        if observer.link.broken:  # the driver died while this worker was getting ready
            raise RuntimeError("the sweep's driver went away before the run started")
        observer.link.on_lost(lambda: _driver_lost(ex))
        run = ex.run(
            config_updates=job["config_updates"],
            named_configs=job["named_configs"],
            info={"ray": outcome["node"]},
            meta_info=job["meta_info"],
            options=job["options"],
        )
        outcome.update(status="COMPLETED", result=run.result)
    except KeyboardInterrupt:
        outcome.update(status="INTERRUPTED", error="interrupted")
    except BaseException as e:  # the user's code may raise anything, SystemExit included
        outcome.update(status="FAILED", error=f"{e.__class__.__name__}: {e}")
    finally:
        observer.link.on_lost(None)
        for obs in here:
            made_run_folder(obs)
        _restore_sigint(previous_sigint)
        os.chdir(home)
        if ex is not None:
            ex.observers = saved
            ex.current_run = None
    outcome["run_id"] = observer.run_id
    outcome["tail"] = observer.tail()
    return protocol.dumps(outcome, renames_for(ref))
