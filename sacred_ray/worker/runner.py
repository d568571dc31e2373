"""ray_sweep's task: one trial attempt as an ordinary Sacred run on a Ray worker.

Runs on the worker's main thread, so SIGINT from the driver (a timeout, fail_fast,
Ctrl-C) interrupts the run wherever it is. When the worker shares the driver's machine
it records file storage itself, as the run alone would; every other event goes to the
driver's hub. The run's end returns with the task, encoded so the driver can read it.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Optional

from .. import protocol
from ..messages import BEGUN, HOLD, ExperimentRef, RunEnd, RunJob, WorkerRecording
from .core import RunHooks, node_info, relay_observers, renames_for, run_sacred
from .observer import DriverLink


def _interruptible(link: Optional[DriverLink] = None):
    """Let SIGINT raise KeyboardInterrupt during the run (Ray workers ignore it otherwise),
    and take a SIGTERM that comes because the driver is gone as the lost driver's stop.

    The driver signals a trial it stops (timeout, fail_fast, Ctrl-C) on this machine, so
    even a trial blocked in time.sleep or I/O ends at once and Sacred records it. A killed
    driver's local Ray goes down with it and SIGTERMs its workers, sometimes before this
    worker noticed the lost connection: Ray's handler would raise SystemExit in the run,
    which Sacred records FAILED."""
    try:
        if signal.SIGINT in signal.sigpending():
            # A stop meant for an earlier trial of this worker arrived after its run ended
            # (blocked, so still pending): take it, or it would interrupt this trial.
            signal.sigwait([signal.SIGINT])
        handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        term = signal.getsignal(signal.SIGTERM)
        if link is not None:
            signal.signal(signal.SIGTERM, _terminated(link, term))
        mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])  # Ray blocks it
        return handler, term, mask
    except (ValueError, AttributeError):  # not the main thread, or no signal masks here
        return None


def _terminated(link: DriverLink, ray_handler):
    def on_sigterm(signum, frame):
        if link.gone():
            link.lose()  # the run's INTERRUPTED end is written now, as the lost driver's
            raise KeyboardInterrupt(protocol.LOST_DRIVER)
        if callable(ray_handler):
            return ray_handler(signum, frame)
        signal.signal(signum, ray_handler)  # the default: end the process as it would have
        os.kill(os.getpid(), signum)
        return None

    return on_sigterm


def _restore_sigint(previous) -> None:
    if previous is not None:
        handler, term, mask = previous
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, term)


def _stop_on_lost_driver(ex) -> None:
    """The sweep's driver died: stop this trial as Ctrl-C would, instead of running on for
    nobody (an orphan's finished run would be run again on --resume). On the run's own thread
    (a SIGTERM found the driver gone) the caller raises the interrupt itself."""
    if threading.current_thread() is not threading.main_thread():
        os.kill(os.getpid(), signal.SIGINT)


def run_trial(ref: ExperimentRef, job: RunJob, hub: dict, recording: Optional[WorkerRecording] = None) -> bytes:
    """Run one trial attempt; every event goes to the driver's ``hub`` (its address and key).

    Returns the run's ``RunEnd`` (see ``RayObserver.end``), encoded by ``protocol.dumps``;
    nothing here waits on the driver after the run has started."""
    node = node_info()
    observer, also = relay_observers(hub, job.token, node, recording)
    if observer.link.ask(job.token, BEGUN, node) == HOLD:  # the sweep is paused: the trial waits in the driver
        return protocol.dumps(RunEnd(status="INTERRUPTED", node=node, held=True))
    job.info = {**job.info, "ray": node}
    previous_sigint = _interruptible(observer.link)
    try:
        outcome = run_sacred(ref, job, observer, also, RunHooks(lost=_stop_on_lost_driver))
    finally:
        _restore_sigint(previous_sigint)
    return protocol.dumps(observer.end(outcome), renames_for(ref))
