"""The hand-off between Tune's ``step()`` and a trial's Sacred run, which runs in a thread.

One result at a time: the run hands over each report of the tune metric and waits there;
``step()`` takes the next report (or the run's end), first letting a waiting run go on.
Tune's side may stop the run (it raises ``StoppedByTune`` where it waits, or at its next
report) or, before a checkpoint under PBT, advance it to its next save and hold it there
(see ``SacredTrainable._advance``). Every wait of the run's side is here.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Optional

from sacred.utils import SacredInterrupt


class StoppedByTune(SacredInterrupt):
    """Raised inside the trial's run when Tune stops it; Sacred records INTERRUPTED."""

    STATUS = "INTERRUPTED"


class HandOff:
    """See the module docstring; one per Sacred run of a trial."""

    def __init__(self):
        self._items: queue.Queue = queue.Queue()  # ("report", values, step) or ("end", RunEnd)
        self._go_on = threading.Event()
        self._advanced: Optional[threading.Event] = None  # set while an advance lets the run go on
        self.at_report = False  # the run waits at the report ``take`` returned last
        self.stop_reason: Optional[str] = None  # Tune (or a lost driver) stopped the run, why
        self.finishing = False  # the scheduler's budget is used up: the next report ends the run

    # -- the run's side ---------------------------------------------------------
    def check(self) -> None:
        """Raise where the run is if it was stopped."""
        if self.stop_reason:
            raise StoppedByTune(self.stop_reason)

    def report(self, values: dict, step: int) -> None:
        """Hand over one result and wait until Tune asks for the next (raises if stopped)."""
        self._go_on.clear()
        self._items.put(("report", values, step))
        self._advance_ends()
        self._go_on.wait()
        self.check()

    def saved(self) -> None:
        """The run saved a checkpoint: an advance ends here, and the run waits for the next step()."""
        if self._advanced is not None:
            self._go_on.clear()
            self._advance_ends()
            self._go_on.wait()
            self.check()

    def end(self, outcome: Any) -> None:
        self._items.put(("end", outcome))
        self._advance_ends()

    # -- Tune's side ------------------------------------------------------------
    def take(self) -> tuple:
        """The next ``("report", values, step)`` or ``("end", RunEnd)``."""
        if self._items.empty():
            self._go_on.set()  # Tune wants the next result: let the run continue
        # (else the run went on to its next report while Tune saved: it waits there already)
        item = self._items.get()
        self.at_report = item[0] == "report"
        return item

    def stop(self, reason: Optional[str]) -> None:
        """Let the run go on, stopped for ``reason`` (None: not stopped, it may end on its own)."""
        if reason is not None:
            self.stop_reason = reason
        self._go_on.set()

    def advance(self, thread: threading.Thread) -> None:
        """Let a run waiting at a report go on to its next save (or report, or end), and wait for that."""
        if not self.at_report or not thread.is_alive():
            return
        self.at_report = False
        self._advanced = threading.Event()
        self._go_on.set()
        try:
            while not self._advanced.wait(0.5) and thread.is_alive():
                pass
        finally:
            self._advanced = None

    def _advance_ends(self) -> None:
        advanced = self._advanced
        if advanced is not None:
            advanced.set()


__all__ = ["HandOff", "StoppedByTune"]
