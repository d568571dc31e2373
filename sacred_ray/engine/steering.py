"""What the drivers do with a control request (``engine.control``): cancel the sweep, cancel
trials, pause, go on, take more trials.

``steer`` is the part both drivers share (look, act, record the action in the ledger, say
it on the driver's screen); ``SweepSteering`` and ``TuneSteering`` are what each command
can do. A cancelled sweep stops as at Ctrl-C: its runs end INTERRUPTED, their stop reason
saying "cancelled by the user" and from where.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from ..spec import Trial
from .session import Interrupted, Session


def steer(session: Session, act: Callable[[dict], tuple]) -> None:
    """Keep status.json fresh and carry out the requests that arrived; ``act(request)`` returns
    ``(outcome, stop)``: what was done, and an ``Interrupted`` when the sweep is to stop."""
    beacon = session.beacon
    beacon.write()
    for req in beacon.poll():
        try:
            outcome, stop = act(req)
        except Exception as e:  # a request that makes no sense here: refused, the sweep goes on
            outcome, stop = f"refused: {e}", None
        session.folder.record(beacon.did(req, outcome))
        print(f"{req['action'].replace('_', ' ')} from {req.get('by')}: {outcome}", file=sys.stderr, flush=True)
        if stop is not None:
            raise stop


def cancelled(req: dict) -> str:
    return f"cancelled by the user: {req.get('by')}"


def _numbers(req: dict) -> list:
    trials = req.get("trials")
    if not isinstance(trials, list) or not trials:
        raise ValueError("name the trials to cancel")
    return trials


class SweepSteering:
    """ray_sweep's answers (``driver`` is its ``SweepDriver``)."""

    def __init__(self, driver):
        self.driver = driver

    def __call__(self, req: dict) -> tuple:
        return getattr(self, _method(req))(req)

    def cancel(self, req: dict) -> tuple:
        return "the sweep stops; its running trials end INTERRUPTED", Interrupted(130, cancelled(req))

    def cancel_trials(self, req: dict) -> tuple:
        d = self.driver
        wanted = {str(n) for n in _numbers(req)}
        reason = cancelled(req)
        done = []
        for waiting in (d.queue, d.held):  # queued, or held back by a pause
            for entry in list(waiting):
                trial, attempt, going_on = entry
                if str(trial.index) in wanted and going_on is None:
                    waiting.remove(entry)
                    d.not_run(trial, attempt, reason)
                    done.append(trial.index)
        for ref, task in list(d.inflight.items()):
            run = task.run
            if str(run.trial.index) in wanted and run.stop("INTERRUPTED", reason):
                task.cancel_sent = time.monotonic()
                d._interrupt(ref, task, force=False)
                done.append(run.trial.index)
        rest = sorted(wanted - {str(i) for i in done})
        outcome = f"cancelled trial(s) {', '.join(map(str, sorted(done)))}" if done else "cancelled no trial"
        return outcome + (f"; not queued or running: {', '.join(rest)}" if rest else ""), None

    def pause(self, req: dict) -> tuple:
        d = self.driver
        if d.paused:
            return f"already paused (by {d.paused})", None
        d.pause(req.get("by"))
        return f"paused: no new trial starts; {d.running()} running trial(s) go on", None

    def go_on(self, req: dict) -> tuple:
        d = self.driver
        if not d.paused:
            return "not paused", None
        d.go_on()
        d.session.beacon.state = "running"
        d.session.beacon.paused_by = None
        return f"going on: {len(d.queue)} queued trial(s) start as slots free", None

    def add(self, req: dict) -> tuple:
        d = self.driver
        if d.stopping:
            raise ValueError(f"the sweep is stopping ({d.stopping})")
        new = []
        following = max(d.known.values(), default=-1) + 1
        for raw in req.get("trials") or []:
            trial = Trial(index=following, variant=raw.get("variant"), updates=dict(raw.get("updates") or {}),
                          named={k: list(v) for k, v in (raw.get("named") or {}).items()}, seed=raw.get("seed"),
                          key=str(raw["key"]))
            if trial.key in d.known:
                continue
            d.known[trial.key] = following
            following += 1
            new.append(trial)
        skipped = d.add(new) if new else 0
        offered = len(req.get("trials") or [])
        if not new:
            return f"nothing to add: all {offered} trial(s) are in the sweep already", None
        numbers = f"#{new[0].index}" + (f"-#{new[-1].index}" if len(new) > 1 else "")
        done = f", {skipped} of them SKIPPED (an earlier run holds it)" if skipped else ""
        return f"added {len(new)} trial(s) ({numbers}{done}); {offered - len(new)} were in the sweep already", None


class TuneSteering:
    """tune_with's answers (``router`` is its ``Router``). Trials are named by Tune's trial
    ids; a cancelled trial stops at its next report (Tune's own stop); a paused search starts
    no Sacred run: a trial Tune starts meanwhile waits (holding its resources) until it goes on.
    Trials cannot be added to a search: its space, not a list, says what it tries."""

    def __init__(self, router, stopper):
        self.router = router
        self.stopper = stopper

    def __call__(self, req: dict) -> tuple:
        return getattr(self, _method(req))(req)

    def cancel(self, req: dict) -> tuple:
        session = self.router.session
        self.router.runs.paused = None
        if not session.stop_from_elsewhere(Interrupted(130, cancelled(req))):
            raise ValueError("the search has not started yet; try again in a moment")
        return "the search stops; its running trials end INTERRUPTED", None

    def cancel_trials(self, req: dict) -> tuple:
        wanted = {str(n) for n in _numbers(req)}
        reason = cancelled(req)
        done = []
        for trial_id, run in self.router.current.items():
            if trial_id in wanted and not run.recorder.finished and run.stop("INTERRUPTED", reason):
                self.stopper.cancelled.add(trial_id)
                done.append(trial_id)
        rest = sorted(wanted - set(done))
        outcome = (f"trial(s) {', '.join(sorted(done))} stop at their next report" if done else "cancelled no trial")
        return outcome + (f"; not running: {', '.join(rest)}" if rest else ""), None

    def pause(self, req: dict) -> tuple:
        runs = self.router.runs
        if runs.paused:
            return f"already paused (by {runs.paused})", None
        runs.paused = req.get("by")
        beacon = self.router.session.beacon
        beacon.state, beacon.paused_by = "paused", req.get("by")
        return "paused: no new Sacred run starts; running trials go on", None

    def go_on(self, req: dict) -> tuple:
        runs = self.router.runs
        if not runs.paused:
            return "not paused", None
        runs.paused = None
        beacon = self.router.session.beacon
        beacon.state, beacon.paused_by = "running", None
        return "going on", None

    def add(self, req: dict) -> tuple:
        raise ValueError("a search's trials come from its space: start another tune_with (or --resume) instead")


def _method(req: dict) -> str:
    return "go_on" if req["action"] == "continue" else req["action"]


__all__ = ["SweepSteering", "TuneSteering", "cancelled", "steer"]
