"""tune_with's runs: which Sacred run each start of a Tune trial is, and when a run ends.

Tune owns the trials; ``Runs`` (``engine.runs``) owns their Sacred runs. ``Router`` is
tune_with's ``RunHooks`` between them, and the thread relaying the trials' events while
``Tuner.fit`` has the main thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Optional

from ray.tune import Stopper

from ..messages import RunEnd, RunOpen
from ..spec import Trial
from .done import DoneIndex, metric_value
from .relay import Relay
from .results import TrialResult
from .runs import Run, RunHooks, Runs
from .session import POLL_SECONDS, Session
from .steering import TuneSteering, steer


class CancelStopper(Stopper):
    """Stops the Tune trials named by ``sweep_cancel --trial`` at their next report. Tune keeps
    its stopper with the search's state; every copy shares the running search's set."""

    cancelled: set = set()

    def __init__(self):
        CancelStopper.cancelled = set()

    def __call__(self, trial_id, result) -> bool:
        return trial_id in CancelStopper.cancelled

    def stop_all(self) -> bool:
        return False


class Router(RunHooks):
    """Relays trial events to observers while Tune runs (``Tuner.fit`` has the main thread).

    One Sacred run per Tune trial while its config stands. A trial Tune starts again
    (HyperBand paused it; ``max_failures`` restarts it after an error) goes on in the same
    run, from its checkpoint, as ray_sweep's restarts do; so a run's end is held until Tune
    says the trial is done (its callbacks, via ``settled``), because until then the trial
    may come back. A PBT exploit changes the config: the trial's run ends there and a new
    one, naming its parent, starts from the donor's checkpoint."""

    def __init__(self, session: Session, skips: Optional[DoneIndex] = None):
        """``skips``: the earlier COMPLETED runs a trial is checked against as it starts (--skip-done)."""
        import ray

        self.session = session  # its ``interrupted``: the user stopped the search
        self.skips = skips
        self.runs = Runs(session.settings.name, session.launch, session.folder,
                         ray.get_runtime_context().get_node_id(), hooks=self, keep_entries=True,
                         beacon=session.beacon)
        self.stopper = CancelStopper()  # Tune stops the trials sweep_cancel names
        self.steering = TuneSteering(self, self.stopper)
        self.relay = Relay(session.hub, self.runs)
        self.thread = threading.Thread(target=self.run, name="sacred-ray-router", daemon=True)
        self.current: dict = {}  # trial id -> its newest run
        self.tokens: dict = {}  # trial id -> the token its newest start came with
        self.held: dict = {}  # trial id -> its newest run's RunEnd: the run ended, the trial may come back
        self.exploited: dict = {}  # a PBT exploit's new run -> the run it ends, once the new one has started
        self.done: set = set()  # trial ids Tune is done with (completed, stopped, failed for good)
        self.verdicts: queue.SimpleQueue = queue.SimpleQueue()  # trial ids Tune is done with, from its thread
        self.finish = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while True:
                events = self.relay.hub.get(POLL_SECONDS)
                if self.finish.is_set() and not events:
                    break
                self.relay.dispatch(events)
                self._settle()
                steer(self.session, self.steering)
        except BaseException as e:  # keep the driver informed instead of dying silently
            self.error = e

    def settled(self, trial_id: str) -> None:
        """Tune is done with this trial (called from Tune's thread)."""
        self.verdicts.put(trial_id)

    def _settle(self) -> None:
        while True:
            try:
                trial_id = self.verdicts.get_nowait()
            except queue.Empty:
                return
            self.done.add(trial_id)
            end = self.held.pop(trial_id, None)
            if end is not None:
                self._close(self.current[trial_id], end)

    # -- what the runs ask of the search (RunHooks) -----------------------------------
    def claim(self, token, body: RunOpen) -> Run:
        trial_id = body.trial_id
        earlier = self.current.get(trial_id)
        ended = self.held.pop(trial_id, None)
        if earlier is not None and not earlier.recorder.finished and body.parent is None:
            # Tune started the trial again: its run goes on
            self.tokens[trial_id] = token
            self.runs.goes_on(earlier, _why_restarted(earlier, ended), ended.node if ended else None)
            return earlier
        self.tokens[trial_id] = token
        run = self.current[trial_id] = self.runs.new(
            token, Trial(index=None, variant=body.variant, key=trial_id), trial_id=trial_id, parent=body.parent)
        if earlier is not None and ended is not None:  # a PBT exploit: the earlier run ends as the new one starts
            self.exploited[run] = (earlier, ended)
        return run

    def done_before(self, body: RunOpen) -> Optional[TrialResult]:
        """A trial's first run is not started when an earlier COMPLETED run ran its config (and
        told what the search ranks by): Tune gets that run's result instead. A PBT exploit's
        run (it starts from a donor's state) and a trial Tune started again always run."""
        if self.skips is None or body.parent is not None or body.trial_id in self.current:
            return None
        trial = Trial(index=None, variant=body.variant, updates=dict(body.updates),
                      named={"+": tuple(body.named_configs)} if body.named_configs else {}, key=body.trial_id)
        done = self.skips.find([trial]).get(trial.key)
        metric = self.session.settings.metric
        value = metric_value(done, metric) if done is not None else None
        if value is None:
            return None
        return TrialResult(trial=trial, status="SKIPPED", run_id=done.run_id, result=done.result,
                           metrics={**done.metrics, metric: value}, config=done.config, done_in=done.entry(),
                           trial_id=body.trial_id)

    def started(self, token, run: Run) -> None:
        earlier = self.exploited.pop(run, None)
        if earlier is not None:
            donor = run.parent or {}
            earlier[0].stop(None, f"PBT exploit: the trial goes on in run {run.recorder.run_id} from trial "
                                  f"{donor.get('trial_id')}'s checkpoint (step {donor.get('step')}) with a new config")
            self._close(*earlier)

    def ended(self, token, end: RunEnd) -> None:
        run = self.runs.by_token[token]
        trial_id = run.trial_id
        newest = self.tokens.get(trial_id) == token
        if not newest and self.current.get(trial_id) is run:
            return  # this run already goes on under a newer start of its trial
        if (newest and self.session.interrupted is None and trial_id not in self.done
                and (end.final is None or end.final.kind != "completed")):
            self.held[trial_id] = end  # until Tune says whether the trial comes back
            return
        self._close(run, end)

    def _close(self, run: Run, end: RunEnd) -> None:
        """End the run with its worker's end (stopped by the user: INTERRUPTED, saying so)."""
        if run.recorder.finished:
            return
        stop = self.session.interrupted
        if stop is not None and end.final is not None and end.final.kind == "interrupted":
            run.stop("INTERRUPTED", f"sweep interrupted ({stop.reason})")
        self.runs.close(run, end)

    def close_unfinished(self, reason: str) -> None:
        """After the search: held runs end as they ended (a paused trial Tune did not resume
        stays INTERRUPTED with its reason); runs whose worker never reported fail."""
        self._settle()
        for trial_id, end in list(self.held.items()):
            self._close(self.current[trial_id], end)
        self.held.clear()
        stop = self.session.interrupted
        for run in dict.fromkeys(self.runs.by_token.values()):
            if not run.recorder.finished:
                if stop is not None:
                    run.stop("INTERRUPTED", f"sweep interrupted ({stop.reason})")
                self.runs.close(run, None, crash=reason)


def _why_restarted(run: Run, ended: Optional[RunEnd]) -> str:
    """Why Tune started a trial again, for its run's ``info.sacred_ray.restarts``."""
    stop_reason = run.recorder.stop_reason
    error = ended.error if ended is not None else None
    if ended is not None and ended.final is not None and ended.final.kind == "failed":
        return f"failed ({error}); Tune started the trial again (max_failures)"
    if stop_reason:
        return stop_reason.replace("stopped by", "paused by", 1)
    return f"the trial's worker ended ({error or 'it died'}); Tune started the trial again"


__all__ = ["Router"]
