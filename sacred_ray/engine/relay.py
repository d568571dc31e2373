"""One dispatcher from the hub's events to the trials' recorders, for both commands.

Like Sacred's ``Run._emit_*``: every event of a run goes one way, and the rules live
here once. A ``start`` is answered first in each batch (its worker waits for the run
id); the rest are handed on in the order the worker sent them. What differs between
``ray_sweep`` and ``tune_with`` (when a trial's recorder is made, what its end means) is
the ``Trials`` the relay serves.
"""

from __future__ import annotations

from typing import Any, Optional

from ..protocol import ARTIFACT, BEGUN, END, HEARTBEAT, RESOURCE, RETURNED, START, STARTED, UNREADABLE
from .hub import Hub
from .recorder import TrialRecorder


class Trials:
    """What a relay serves: the driver's record of its trials. Each method is called by
    ``Relay.dispatch`` on the driver's thread, with a message's token."""

    def recorder(self, token: Any) -> Optional[TrialRecorder]:
        """The recorder of this trial's run; None for a trial the driver no longer follows."""
        raise NotImplementedError

    def start(self, token: Any, payload: dict, answered: bool) -> dict:
        """Start the run in the driver's observers; return the answer for the worker when
        ``answered`` (a ``START``), else the worker's own observers started it (``STARTED``)."""
        raise NotImplementedError

    def unreadable(self, token: Any, payload: dict) -> None:
        """A message of this trial that the driver could not read ({"kind", "error"})."""

    def begun(self, token: Any, payload: dict) -> None:
        """A worker took the trial."""

    def received(self, token: Any) -> None:
        """One more of the trial's posted events arrived (a task's tail says how many to expect)."""

    def end(self, token: Any, payload: dict) -> None:
        """The trial's last word (its final event and outcome), sent by a Tune trial."""

    def returned(self, ref: Any, future: Any) -> None:
        """A Ray task the driver watches ended."""


def unreadable_start_answer(payload: dict) -> dict:
    return {"error": f"the sweep driver could not read this run's start: {payload['error']}"}


class Relay:
    """Hand a batch of hub events to ``trials`` (see the module docstring)."""

    def __init__(self, hub: Hub, trials: Trials):
        self.hub = hub
        self.trials = trials

    def dispatch(self, events: list) -> None:
        starts = [(token, kind, payload) for token, kind, payload in events if _is_start(kind, payload)]
        for token, kind, payload in starts:
            if kind == START:
                self.hub.answer(token, self.trials.start(token, payload, answered=True))
            else:
                self.trials.unreadable(token, payload)
                self.hub.answer(token, unreadable_start_answer(payload))
        for token, kind, payload in events:
            if kind == RETURNED:
                self.trials.returned(token, payload)
                continue
            if _is_start(kind, payload):
                continue
            rec = self.trials.recorder(token)
            if rec is None:
                continue
            if kind == BEGUN:
                self.trials.begun(token, payload)
                continue
            self.trials.received(token)
            if kind in _RECORDED:
                getattr(rec, _RECORDED[kind])(payload)
            elif kind == STARTED:
                self.trials.start(token, payload, answered=False)
            elif kind == UNREADABLE:
                self.trials.unreadable(token, payload)
            elif kind == END:
                self.trials.end(token, payload)


_RECORDED = {HEARTBEAT: "heartbeat", ARTIFACT: "artifact", RESOURCE: "resource"}  # kind -> TrialRecorder method


def _is_start(kind: str, payload: Any) -> bool:
    return kind == START or (kind == UNREADABLE and payload["kind"] == START)
