"""One dispatcher from the hub's events to the trials' recorders, for both commands.

Like Sacred's ``Run._emit_*``: every event of a run goes one way, and the rules live
here once. The messages a worker waits on (``OPEN``, ``START``) are answered first in each
batch; the rest are handed on in the order the worker sent them. What differs between
``ray_sweep`` and ``tune_with`` is not here: both relay to one ``Runs``
(``engine.runs``), whose driver hooks say what a run's end means to each command.
"""

from __future__ import annotations

from typing import Any, Optional

from ..messages import (
    ARTIFACT,
    BEGUN,
    END,
    HEARTBEAT,
    OPEN,
    RESOURCE,
    RETURNED,
    START,
    STARTED,
    UNREADABLE,
    Opened,
    RunEnd,
    RunOpen,
    RunStart,
    StartAnswer,
)
from .hub import Hub
from .recorder import TrialRecorder


class Trials:
    """What a relay serves: the driver's record of its runs. Each method is called by
    ``Relay.dispatch``, on the one thread that dispatches (ray_sweep's loop, tune_with's
    router thread), with a message's token."""

    def recorder(self, token: Any) -> Optional[TrialRecorder]:
        """The recorder of this trial's run; None for a trial the driver no longer follows."""
        raise NotImplementedError

    def open(self, token: Any, body: RunOpen) -> Opened:
        """A Tune trial's run is about to start: say whether it continues an earlier run."""
        raise NotImplementedError

    def start(self, token: Any, start: RunStart, answered: bool) -> StartAnswer:
        """Start the run in the driver's observers; the answer goes to the worker when
        ``answered`` (a ``START``), else the worker's own observers started it (``STARTED``)."""
        raise NotImplementedError

    def unreadable(self, token: Any, payload: dict) -> None:
        """A message of this trial that the driver could not read ({"kind", "error"})."""

    def begun(self, token: Any, worker: dict) -> None:
        """A worker took the trial."""

    def received(self, token: Any) -> None:
        """One more of the trial's posted events arrived (its ``RunEnd`` says how many to expect)."""

    def end(self, token: Any, end: RunEnd) -> None:
        """The run's end, sent by a Tune trial (a ray_sweep task returns it)."""

    def returned(self, ref: Any, future: Any) -> None:
        """A Ray task the driver watches ended."""


def unreadable_answer(payload: dict) -> Any:
    error = f"the sweep driver could not read this run's {payload['kind']}: {payload['error']}"
    return StartAnswer(error=error) if payload["kind"] == START else Opened()


class Relay:
    """Hand a batch of hub events to ``trials`` (see the module docstring)."""

    def __init__(self, hub: Hub, trials: Trials):
        self.hub = hub
        self.trials = trials

    def dispatch(self, events: list) -> None:
        for token, kind, payload in events:
            self._answer(token, kind, payload)
        for token, kind, payload in events:
            if kind == RETURNED:
                self.trials.returned(token, payload)
            elif not (kind in (OPEN, START) or _is_answered(kind, payload)):
                self._hand_on(token, kind, payload)

    def _answer(self, token: Any, kind: str, payload: Any) -> None:
        """Answer a message whose worker waits (first in a batch, so no worker waits on the rest)."""
        if kind == OPEN:
            self.hub.answer(token, self.trials.open(token, payload))
        elif kind == START:
            self.hub.answer(token, self.trials.start(token, payload, answered=True))
        elif _is_answered(kind, payload):
            self.trials.unreadable(token, payload)
            self.hub.answer(token, unreadable_answer(payload))

    def _hand_on(self, token: Any, kind: str, payload: Any) -> None:
        rec = self.trials.recorder(token)
        if rec is None:
            return
        if kind == BEGUN:
            self.trials.begun(token, payload)
            return
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


def _is_answered(kind: str, payload: Any) -> bool:
    """An unreadable message whose worker waits for an answer."""
    return kind == UNREADABLE and payload["kind"] in (START, OPEN)
