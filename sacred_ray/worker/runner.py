"""ray_sweep's task: one trial attempt as an ordinary Sacred run on a Ray worker.

Runs on the worker's main thread, so SIGINT from the driver (a timeout, fail_fast,
Ctrl-C) interrupts the run wherever it is. When the worker shares the driver's machine
it records file storage itself, as the run alone would; every other event goes to the
driver's hub. The outcome returns with the task, encoded so the driver can read it.
"""

from __future__ import annotations

import copy
import os
import signal
from typing import Optional

from .. import protocol
from ..protocol import BEGUN, ExperimentRef, RunJob, WorkerRecording
from .core import node_info, renames_for, run_sacred
from .local import made_run_folder, numbered_from_last
from .observer import MetaFlags, RayObserver


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


def _worker_observers(recording: Optional[WorkerRecording], node: dict) -> list:
    """Fresh copies of the observers this worker may record with itself: those the driver
    marked as such (file storage), when this worker shares the driver's machine."""
    if recording is None or not recording.observers or node.get("node_id") != recording.driver_node:
        return []
    copies = [copy.copy(obs) for obs in recording.observers]
    for obs in copies:
        numbered_from_last(obs)
    return copies


def _stop_on_lost_driver(ex) -> None:
    """The sweep's driver died: stop this trial as Ctrl-C would, instead of running on for
    nobody (an orphan's finished run would be run again on --resume)."""
    os.kill(os.getpid(), signal.SIGINT)


def run_trial(ref: ExperimentRef, job: RunJob, hub: dict, recording: Optional[WorkerRecording] = None) -> bytes:
    """Run one trial attempt; every event goes to the driver's ``hub`` (its address and key).

    Returns the ``Outcome`` with the run's ``tail`` (see ``RayObserver.tail``), encoded by
    ``protocol.dumps``; nothing here waits on the driver after the run has started."""
    node = node_info()
    worker_observers = _worker_observers(recording, node)
    priority = recording.driver_priority if recording is not None else None
    observer = RayObserver(
        hub, job.token, worker=node, worker_records=bool(worker_observers),
        driver_records=not worker_observers or priority is not None,
        # among observers recording here, stand where the driver's observers would stand
        priority=(priority if priority is not None else float("-inf")) if worker_observers else None,
    )
    observer.link.send(job.token, BEGUN, {"worker": node})
    job.info = {**job.info, "ray": node}
    also = [MetaFlags(recording.meta_options)] + worker_observers if worker_observers else []
    previous_sigint = _interruptible()
    try:
        outcome = run_sacred(ref, job, observer, also, on_lost=_stop_on_lost_driver)
    finally:
        for obs in worker_observers:
            made_run_folder(obs)
        _restore_sigint(previous_sigint)
    outcome.tail = observer.tail()
    return protocol.dumps(outcome, renames_for(ref))
