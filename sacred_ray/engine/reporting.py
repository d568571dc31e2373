"""The sweep's report.html, kept current: rewritten every 30 s while the sweep runs, and once
more at the end, in a thread that overlaps Ray's shutdown. A report that cannot be written
never fails the sweep: the end of the sweep says why instead.

The page itself is ``sacred_ray.report``'s, a layer above the engine: the caller hands its
writer in (``Request.report``; ``api`` gives ``report.write_report``), so the engine
never imports what reads its records."""

from __future__ import annotations

import threading
from typing import Callable, Optional

LIVE_SECONDS = 30.0


class ReportWriter:
    """Writes ``<folder>/report.html`` for a running sweep (see the module docstring)."""

    def __init__(self, write: Optional[Callable[..., str]], folder: str, metric: str, mode: Optional[str],
                 mongo: Optional[str] = None, interval: Optional[float] = None):
        """``write(folder, mongo=, metric=, mode=, live=)`` writes the page and returns its
        path (None: no page is written)."""
        self.write = write
        self.folder, self.metric, self.mode, self.mongo = folder, metric, mode, mongo
        self.interval = interval or LIVE_SECONDS
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one write at a time
        self._live: Optional[threading.Thread] = None
        self._final: Optional[threading.Thread] = None
        self.path: Optional[str] = None
        self.error: Optional[str] = None

    def start(self) -> None:
        if self._live is None and self.write is not None:
            self._live = threading.Thread(target=self._loop, name="sacred-ray-report", daemon=True)
            self._live.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._write(live=True)

    def _write(self, live: bool) -> None:
        with self._lock:
            try:
                self.path = self.write(self.folder, mongo=self.mongo, metric=self.metric, mode=self.mode,
                                                live=live)
                self.error = None
            except Exception as e:  # a report is never worth a sweep
                self.error = str(e).splitlines()[0] if str(e) else e.__class__.__name__

    def finish(self) -> None:
        """Stop the live rewrites and start the last write (``line`` waits for it)."""
        self._stop.set()
        if self._final is None and self.write is not None:
            self._final = threading.Thread(target=self._write, args=(False,), name="sacred-ray-report-final",
                                           daemon=True)
            self._final.start()

    def line(self) -> str:
        """What the end of the sweep says about the report."""
        self.finish()
        if self._final is None:
            return ""
        self._final.join()
        if self.error is not None:
            return f"report: not written ({self.error})"
        return f"report: {self.path}"


__all__ = ["ReportWriter"]
