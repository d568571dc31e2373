"""ray_sweep's driver loop: every trial a Sacred run in a Ray task, from a bounded window.

The driver submits at most ``window`` tasks at a time, relays each trial's events to
that trial's own observer instances, owns retries (Ray's are off: every retry would
be a new Sacred run), stops trials over their timeout, and records every attempt in
the sweep folder's ledger the moment it ends.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..checkpoint import TrialCheckpoints
from ..messages import RunEnd, RunJob
from ..spec import Trial
from ..worker.runner import run_trial
from .cluster import task_outcome
from .progress import Progress
from .relay import Relay
from .results import TrialResult
from .runs import Run, RunHooks, Runs
from .session import POLL_SECONDS, Session
from .steering import SweepSteering, steer

log = logging.getLogger("sacred_ray")

GRACE_SECONDS = 10.0
TAIL_WAIT_SECONDS = 30.0


@dataclass
class _Task:
    """One Ray task running (a part of) a run, from its submission until its end is recorded.
    Times are ``time.monotonic()`` seconds."""

    run: Run
    token: str  # names its messages (opaque outside the driver)
    ref: Any = None  # the Ray task
    end: Optional[RunEnd] = None  # what the task returned, once it has
    crash: Optional[str] = None  # why the task returned no RunEnd (the worker died, ...)
    returned: Optional[float] = None  # when the task ended: its last events get TAIL_WAIT_SECONDS
    cancel_sent: float = 0.0  # when the driver last asked it to stop (again, forcefully, after GRACE_SECONDS)


class SweepDriver(RunHooks):
    """Runs a sweep's trials on Ray (see the module docstring); one instance per sweep."""

    def __init__(self, session: Session, trials: list, window: int, progress: Progress,
                 known: Optional[dict] = None, skip=None):
        """``known``: every trial key of the sweep -> its number (those done before a --resume
        too), so a trial handed to the running sweep runs once, under a number of its own.
        ``skip``: (trials) -> (those to run, SKIPPED results), for trials handed to it (--skip-done)."""
        self.skip = skip
        import ray

        self.session = session
        self.settings = session.settings
        self.launch = session.launch
        self.hub = session.hub
        self.window = window
        self.progress = progress
        self.node_id = ray.get_runtime_context().get_node_id()
        self.runs = Runs(self.settings.name, self.launch, session.folder, self.node_id, hooks=self,
                         beacon=session.beacon)
        self.known = dict(known) if known is not None else {t.key: t.index for t in trials}
        session.beacon.total = len(self.known)
        self.paused: Optional[str] = None  # who paused the sweep: no task is submitted meanwhile
        self.held: list = []  # trials whose worker the hub held back while paused, to run first when it goes on
        self.relay = Relay(self.hub, self.runs)
        self.queue = collections.deque((t, 1, None) for t in trials)  # (trial, attempt, the run that goes on)
        self.inflight: dict = {}  # task ref -> _Task
        self.tasks: dict = {}  # token -> _Task
        self.closing: list = []
        self.results: dict = {}
        self.failed = 0  # trials whose latest attempt FAILED or timed out (kept as they end: O(1) per report)
        self.stopping: Optional[str] = None
        self._remote = None
        self._steering = SweepSteering(self)

    @property
    def observer_errors(self) -> list:
        return self.runs.observer_errors

    # -- submitting -----------------------------------------------------------
    def _submit(self, trial: Trial, attempt: int, going_on: Optional[Run] = None) -> None:
        """Submit an attempt, or (``going_on``) a run whose worker died: the same run, from its checkpoint."""
        import ray

        if self._remote is None:
            self._remote = ray.remote(run_trial).options(max_retries=0, retry_exceptions=False, **self.launch.request)
        restarts = going_on.restarts if going_on is not None else 0
        token = f"{trial.key}:{attempt}:{trial.index}" + (f":r{restarts}" if restarts else "")
        if going_on is not None:
            run = going_on
            self.runs.follow(token, run)
        else:
            run = self.runs.new(token, trial, attempt)
        job = RunJob(
            token=token, config_updates=trial.config_updates, named_configs=tuple(trial.named_configs),
            options=self.launch.worker_options, cwd=self.launch.cwd, meta_info={"sweep": self.runs.meta(run)},
            checkpoints={"folder": self.runs.checkpoints(run), "keep": self.settings.checkpoint_keep},
        )
        task = _Task(run, token)
        # a run that goes on is recorded by the driver alone (its file storage reopened here)
        recording = None if run.recorder.started else self.runs.recording
        task.ref = self._remote.remote(self.launch.ref, job, self.hub.link, recording)
        self.inflight[task.ref] = task
        self.tasks[token] = task
        self.hub.watch(task.ref)

    # -- what the runs tell the driver (RunHooks) ---------------------------------
    def interrupt(self, token, run: Run) -> None:
        task = self.tasks.get(token)
        if task is not None and task.ref in self.inflight:
            task.cancel_sent = time.monotonic()
            self._interrupt(task.ref, task, force=False)

    def returned(self, ref, future) -> None:
        """A task ended: keep its end until every event it posted has been relayed."""
        task = self.inflight.pop(ref, None)
        if task is None:
            return
        task.end, task.crash = task_outcome(future)
        task.returned = time.monotonic()
        self.closing.append(task)

    def _close_ready(self, give_up: bool = False) -> None:
        still = []
        for task in self.closing:
            posted = task.end.posted if task.end is not None else 0
            waited = time.monotonic() - task.returned
            if task.run.received < posted and waited < TAIL_WAIT_SECONDS and not give_up:
                still.append(task)
                continue
            self._finish(task, task.end, task.crash)
        self.closing = still

    # -- finishing ------------------------------------------------------------
    def _restart(self, run: Run, end: Optional[RunEnd], crash: Optional[str]) -> bool:
        """A trial whose worker died (or whose node was lost) starts again from its last
        checkpoint as the same Sacred run, up to ``max_restarts`` times; not a retry: the trial
        did nothing wrong. False when it cannot (then it fails as before)."""
        if end is not None or not (crash or "").startswith("worker died") or run.stop_status or self.stopping:
            return False
        if run.restarts >= self.settings.max_restarts:
            return False
        self.runs.goes_on(run, crash, run.worker)
        self.queue.appendleft((run.trial, run.attempt, run))
        return True

    def _finish(self, task: Optional[_Task], end: Optional[RunEnd], crash: Optional[str], run: Optional[Run] = None,
                restart: bool = True) -> None:
        run = task.run if task is not None else run
        if task is not None:
            self.tasks.pop(task.token, None)
            self.runs.forget(task.token)
        if end is not None and end.held:  # its worker took it while the sweep was paused: nothing ran
            self._hold(run)
            return
        if restart and self._restart(run, end, crash):
            return
        may_retry = run.attempt <= self.settings.retries and not self.stopping
        result = self.runs.close(run, end, crash, retries_left=may_retry)
        self._keep(result)
        if result.status == "FAILED" and may_retry:
            if self.settings.retry_from == "start":
                TrialCheckpoints(self.runs.checkpoints(run)).clear()
            self.queue.appendleft((run.trial, run.attempt + 1, None))
        elif result.status == "FAILED" and self.settings.fail_fast and not self.stopping:
            self.stop(f"fail_fast: trial {run.trial.index} failed")

    def _hold(self, run: Run) -> None:
        """A task the hub held back: its trial waits for the sweep to go on, unless the sweep
        or the trial was stopped meanwhile (a restart's run, already started, then ends)."""
        going_on = run if run.recorder.started else None
        reason = self.stopping or run.stop_reason
        if reason is None:
            self.held.append((run.trial, run.attempt, going_on))
        elif going_on is None:
            self.not_run(run.trial, run.attempt, reason)
        else:
            run.stop("INTERRUPTED", reason)
            self._finish(None, None, None, run=going_on, restart=False)

    def stop(self, reason: str, status: str = "INTERRUPTED", force: bool = False) -> None:
        """Stop every trial in flight and run no more; they end recorded as ``status``."""
        self.stopping = self.runs.stopping = self.stopping or reason
        self.go_on()
        for trial, attempt, going_on in self.queue:
            if going_on is not None and going_on.recorder.started:  # a restart that will not happen: its run ends
                going_on.stop(status, reason)
                self._finish(None, None, None, run=going_on, restart=False)
            else:
                self.not_run(trial, attempt, reason)
        self.queue.clear()
        for ref, task in self.inflight.items():
            task.run.stop(status, reason)
            if force or not task.cancel_sent:
                task.cancel_sent = time.monotonic()
                self._interrupt(ref, task, force)

    def not_run(self, trial: Trial, attempt: int, reason: str) -> None:
        """A trial the sweep stopped before it ran: INTERRUPTED in the ledger, no Sacred run."""
        self._keep(TrialResult(trial=trial, status="INTERRUPTED", error=f"not run: {reason}", attempts=attempt), record=True)

    def _keep(self, result: TrialResult, record: bool = False) -> None:
        """The trial's latest attempt, kept as its result (``record``: its ledger line is written here)."""
        earlier = self.results.get(result.trial.index)  # a retried trial's failed attempt
        self.failed += _failed(result) - (earlier is not None and _failed(earlier))
        self.results[result.trial.index] = result
        written = self.runs.record(result) if record else not self.runs.folder.write_error
        if not written and not self.stopping:
            self.stop(f"the sweep folder is not writable: {self.runs.folder.write_error}")  # a full disk

    def _check_timeouts(self) -> None:
        timeout = self.settings.timeout
        now = time.monotonic()
        for ref, task in self.inflight.items():
            run = task.run
            began = run.begun or run.started
            if timeout and began and not run.stop_status and now - began > timeout:
                run.stop("TIMEOUT", f"timed out after {timeout:g}s")
                task.cancel_sent = now
                self._interrupt(ref, task, force=False)
            elif task.cancel_sent and now - task.cancel_sent > GRACE_SECONDS:
                task.cancel_sent = now
                self._interrupt(ref, task, force=True)  # the trial ignored the interrupt

    def _interrupt(self, ref, task: _Task, force: bool) -> None:
        """Stop one trial: SIGINT to its worker when it runs on this node, else Ray's cancel."""
        import ray

        worker = task.run.worker or {}
        if not force and worker.get("pid") and worker.get("node_id") == self.node_id:
            try:
                os.kill(worker["pid"], signal.SIGINT)
                return
            except (ProcessLookupError, PermissionError) as e:
                log.debug("signal %s: %s", task.token, e)
        try:
            ray.cancel(ref, force=force)
        except Exception as e:  # already finished
            log.debug("cancel %s: %s", task.token, e)

    # -- steered from elsewhere (engine.steering) ---------------------------------------
    def pause(self, by: Optional[str]) -> None:
        """Start no trial until the sweep goes on: a worker that takes a task from now on is
        told by the hub to return it unrun (its trial waits in the driver's ``held``); runs
        that started go on. Nothing is cancelled: a task Ray already gave a worker may be
        running its trial, which a pause must not interrupt."""
        self.paused = by or "the user"
        self.hub.holding = True
        self.session.beacon.state, self.session.beacon.paused_by = "paused", self.paused

    def go_on(self) -> None:
        """Start trials again after a pause: those held back first, in trial order."""
        self.paused = None
        self.hub.holding = bool(self.stopping)
        self.queue.extendleft(sorted(self.held, key=lambda entry: entry[0].index, reverse=True))
        self.held.clear()

    def add(self, trials: list) -> int:
        """Trials handed to the running sweep (numbered already): listed in trials.jsonl, and
        queued, except those an earlier run holds (--skip-done); returns how many were skipped."""
        self.session.folder.add_trials(trials)
        skipped = []
        if self.skip is not None:
            trials, skipped = self.skip(trials)
            for r in skipped:
                self.results[r.trial.index] = r
        self.queue.extend((t, 1, None) for t in trials)
        self.session.beacon.grew(len(trials) + len(skipped))
        self.progress.total += len(trials)
        return len(skipped)

    # -- the loop -------------------------------------------------------------
    def run(self) -> None:
        self._pump(lambda: bool(self.queue or self.inflight or self.closing or self.held), steered=True)

    def _pump(self, go_on, deadline: Optional[float] = None, steered: bool = False) -> None:
        """Submit, relay events and close trials while ``go_on()`` (and before ``deadline``);
        ``steered``: carry out control requests too."""
        try:
            while go_on() and (deadline is None or time.monotonic() < deadline):
                while self.queue and len(self.inflight) < self.window and not (self.stopping or self.paused):
                    self._submit(*self.queue.popleft())
                self.relay.dispatch(self.hub.get(POLL_SECONDS))
                self._close_ready()
                self._check_timeouts()
                self.progress.update(len(self.results), self.running(), self.failed)
                if steered:
                    steer(self.session, self._steering)
        finally:
            self.relay.dispatch(self.hub.get(0))
            self._close_ready()

    def running(self) -> int:
        """Trials whose Sacred run has started and not yet ended, as the progress shows them (a
        trial a worker took but whose run has not started is not: stopped now, it never runs)."""
        return sum(1 for task in self.inflight.values() if task.run.started)

    def interrupt_all(self, reason: str, second: bool = False) -> None:
        """After Ctrl-C: stop trials, keep relaying until they are recorded (or give up)."""
        self.stop(reason)
        try:
            if not second:
                self._pump(lambda: bool(self.inflight or self.closing), deadline=time.monotonic() + GRACE_SECONDS)
        except KeyboardInterrupt:
            pass
        finally:
            for ref, task in list(self.inflight.items()):
                self.inflight.pop(ref)
                self._interrupt(ref, task, force=True)
                self._finish(task, None, reason)
            self._close_ready(give_up=True)


def _failed(result: TrialResult) -> bool:
    return result.status in ("FAILED", "TIMEOUT")


__all__ = ["SweepDriver"]
