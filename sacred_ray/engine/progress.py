"""One line of progress: a live bar on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = int(seconds or 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts trials done / running / failed out of ``total``, with an ETA."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream: Optional[TextIO] = None,
                 interval: float = 10.0, count: Optional[str] = None):
        """``count``: how the total comes about, for the first line (default "N trials")."""
        self.total = total
        self.done = 0
        self.failed = 0
        self.running = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interval = interval
        self.started = time.monotonic()
        self._last_line = 0.0
        self.extra = ""
        self._bar = None
        self.label = label
        self.count = count or f"{total} trials"
        self._shown = False

    def start(self) -> None:
        """Show the bar (or the first line): once the trials can start, not before the checks."""
        if self._shown:
            return
        self._shown = True
        total, label, enabled = self.total, self.label, self.enabled
        self.started = time.monotonic()
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="trial", file=self.stream, dynamic_ncols=True,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}")
        elif enabled:
            print(f"{label}: {self.count}", file=self.stream, flush=True)

    def update(self, done: int, running: int, failed: int, extra: str = "") -> None:
        if not self.enabled:
            return
        self.start()
        step = done - self.done
        self.done, self.running, self.failed = done, running, failed
        self.extra = extra
        if self._bar is not None:
            self._bar.set_postfix_str(f"running {running}, failed {failed}{extra}", refresh=False)
            self._bar.update(step) if step else self._bar.refresh()
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval or (done == self.total and step):
            self._last_line = now
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        eta = ""
        if 0 < self.done < self.total:
            eta = f", eta {duration(elapsed / self.done * (self.total - self.done))}"
        return (f"[{self.done}/{self.total}] done {self.done - self.failed}, running {self.running}, "
                f"failed {self.failed}{self.extra}, elapsed {duration(elapsed)}{eta}")

    def __getstate__(self):
        # Tune pickles its callbacks with the experiment state; a copy shows nothing.
        return {**self.__dict__, "stream": None, "_bar": None, "enabled": False}

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
