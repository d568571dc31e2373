"""A run's INTERRUPTED end for when its worker cannot write it.

A worker on the driver's machine records its runs in file storage itself (``-F``). When the
driver is killed outright (SIGKILL, a closed laptop), its local Ray is killed with it and takes
the worker down, often before the worker's own thread that noticed the lost driver has written
the run's end: the run stayed RUNNING (one run in seven under load). So a worker that records
runs starts one small guard process beside it, tells it through a pipe which run folders are
open, and the guard, seeing the pipe's end when the worker ends, closes the runs still open as
INTERRUPTED ("the sweep's driver went away") if the driver is gone too. While the driver lives,
a dead worker is its business (it restarts the trial in the same run), and the guard does nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Optional

from sacred.observers import RunObserver

from ..protocol import LOST_DRIVER

# what the guard runs: it waits for the pipe to end, and only then imports what it needs
_SCRIPT = """
import os, sys
driver, folders = int(sys.argv[1]), set()
for line in sys.stdin:
    kind, _, folder = line.rstrip("\\n").partition(" ")
    (folders.add if kind == "open" else folders.discard)(folder)
try:
    os.kill(driver, 0)
except ProcessLookupError:
    if folders:
        from sacred_ray.engine.observers import amend_file_run
        for folder in folders:
            amend_file_run(os.path.dirname(folder), os.path.basename(folder), "INTERRUPTED", sys.argv[2],
                           if_running=True)
except OSError:
    pass
"""


class RunGuard:
    """The guard process of this worker for one driver (started on first use, reused for every run)."""

    _current: Optional[RunGuard] = None

    def __init__(self, driver_pid: int):
        self.driver_pid = driver_pid
        # its own session: nothing that signals the worker's process group reaches it
        self.proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(driver_pid), LOST_DRIVER],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, text=True, bufsize=1)

    @classmethod
    def of(cls, driver_pid: Optional[int]) -> Optional[RunGuard]:
        if not driver_pid:
            return None
        found = cls._current
        if found is None or found.driver_pid != driver_pid or found.proc.poll() is not None:
            if found is not None:
                found.close()
            try:
                found = cls._current = cls(driver_pid)
            except OSError:  # no process to spare: the worker's own thread still tries
                return None
        return found

    def tell(self, kind: str, folder: str) -> None:
        try:
            self.proc.stdin.write(f"{kind} {folder}\n")
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass


class GuardObserver(RunObserver):
    """Last among a run's observers: tells the guard the run folders the worker's file storage
    opened (after they made them) and that they closed."""

    priority = float("-inf")

    def __init__(self, guard: RunGuard, observers: list):
        self.guard = guard
        self.observers = observers
        self.folders: list = []

    def started_event(self, *args, **kwargs):
        self.folders = [os.path.abspath(obs.dir) for obs in self.observers if getattr(obs, "dir", None)]
        for folder in self.folders:
            self.guard.tell("open", folder)
        return None

    def _ended(self, *args, **kwargs):
        for folder in self.folders:
            self.guard.tell("close", folder)
        self.folders = []

    completed_event = interrupted_event = failed_event = _ended


def guarded(observers: list, driver_pid: Optional[int]) -> list:
    """``observers`` (the ones recording in this worker), with the guard's observer after them."""
    guard = RunGuard.of(driver_pid) if observers else None
    return [*observers, GuardObserver(guard, observers)] if guard is not None else list(observers)


__all__ = ["GuardObserver", "RunGuard", "guarded"]
