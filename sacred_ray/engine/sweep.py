"""ray_sweep's driver: every trial a Sacred run in a Ray task, from a bounded window.

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

from sacred import Experiment

from ..checkpoint import TrialCheckpoints, join
from ..protocol import (
    START,
    Outcome,
    RunJob,
    WorkerRecording,
)
from ..spec import Trial
from ..worker.runner import run_trial
from .cluster import task_outcome
from .folder import SweepFolder
from .hub import Hub
from .observers import amend_file_run, observer_flags_for_meta, observers_for_trial, reopen_file_run, worker_can_record
from .prepare import Launch
from .progress import Progress
from .recorder import RunIds, TrialRecorder, restart_entry
from .relay import Relay, Trials
from .results import SweepResult, TrialResult, from_ledger, ledger_entry, summarize
from .session import POLL_SECONDS, Interrupted, Request, Session

log = logging.getLogger("sacred_ray")

GRACE_SECONDS = 10.0
TAIL_WAIT_SECONDS = 30.0


@dataclass
class _Attempt:
    """One attempt at one trial, from its submission until its ledger line is written.
    Times are ``time.monotonic()`` seconds."""

    trial: Trial
    attempt: int  # 1 for the first run of the trial, then one more per retry
    token: str  # names the attempt's messages (opaque outside the driver)
    recorder: TrialRecorder  # the attempt's run in the driver's observers
    ref: Any = None  # the Ray task running it
    begun: Optional[float] = None  # when a worker took it: its timeout counts from here
    started: Optional[float] = None  # when its run started in the observers
    received: int = 0  # events relayed so far (the task's tail says how many to expect)
    outcome: Optional[Outcome] = None  # what the task returned, once it has
    crash: Optional[str] = None  # why the task returned no outcome (the worker died, ...)
    returned: Optional[float] = None  # when the task ended: its last events get TAIL_WAIT_SECONDS
    stop_status: Optional[str] = None  # how the driver ends it: TIMEOUT, INTERRUPTED or FAILED
    stop_reason: Optional[str] = None  # why, as the run's info records it
    cancel_sent: float = 0.0  # when the driver last asked it to stop (again, forcefully, after GRACE_SECONDS)
    config: Optional[dict] = None  # the run's full config, as its start reported it
    worker: Optional[dict] = None  # {node_id, node_ip, pid} of the worker running it
    worker_records: bool = False  # the worker's own observers record the run too (file storage)
    restarts: int = 0  # how often the trial restarted from its checkpoint (its worker died)


class SweepDriver(Trials):
    """Runs a sweep's trials on Ray (see the module docstring); one instance per sweep."""

    def __init__(self, settings, trials: list, launch: Launch, folder: SweepFolder, window: int,
                 progress: Progress, hub: Hub):
        import ray

        self.settings = settings
        self.launch = launch
        self.folder = folder
        self.window = window
        self.progress = progress
        self.hub = hub
        self.relay = Relay(hub, self)
        self.meta_options = observer_flags_for_meta(launch.observer_options)
        self.queue = collections.deque((t, 1, None) for t in trials)  # (trial, attempt, the attempt it restarts)
        self.inflight: dict = {}  # task ref -> _Attempt
        self.by_token: dict = {}
        self.closing: list = []
        self.results: dict = {}
        self.failed = 0  # trials whose latest attempt FAILED or timed out (kept as they end: O(1) per report)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.observer_errors: list = []
        self.stopping: Optional[str] = None
        self._remote = None
        self.run_ids = RunIds()
        # File observers are written by a worker on this machine itself, as for the run
        # alone; the driver records the rest, and every trial on another machine.
        self.worker_recorded = [p for p in launch.prototypes if worker_can_record(p)]
        # where RayObserver stands among a worker's observers: where the driver's would
        driver_priority = max((getattr(p, "priority", 0) for p in launch.prototypes if not worker_can_record(p)), default=None)
        self.recording = WorkerRecording(self.node_id, self.worker_recorded, self.meta_options, driver_priority)

    # -- submitting -----------------------------------------------------------
    def _submit(self, trial: Trial, attempt: int, dead: Optional[_Attempt] = None) -> None:
        """Submit an attempt, or (``dead``) restart one whose worker died: same run, its checkpoint."""
        import ray

        if self._remote is None:
            self._remote = ray.remote(run_trial).options(max_retries=0, retry_exceptions=False, **self.launch.request)
        restarts = dead.restarts + 1 if dead is not None else 0
        token = f"{trial.key}:{attempt}:{trial.index}" + (f":r{restarts}" if restarts else "")
        recorder = dead.recorder if dead is not None else TrialRecorder(
            observers_for_trial(self.launch.prototypes), base_dir=self.launch.base_dir, run_ids=self.run_ids)
        job = RunJob(
            token=token, config_updates=trial.config_updates, named_configs=tuple(trial.named_configs),
            options=self.launch.worker_options, cwd=self.launch.cwd,
            meta_info={"sweep": {"name": self.settings.name, "trial": trial.index, "key": trial.key,
                                 "variant": trial.variant, "attempt": attempt}},
            checkpoints={"folder": self.checkpoint_folder(trial), "keep": self.settings.checkpoint_keep},
        )
        att = _Attempt(trial, attempt, token, recorder, restarts=restarts)
        # a restarted run is recorded by the driver alone (its file storage reopened here)
        recording = None if dead is not None and recorder.started else self.recording
        att.ref = self._remote.remote(self.launch.ref, job, self.hub.link, recording)
        self.inflight[att.ref] = att
        self.by_token[token] = att
        self.hub.watch(att.ref)

    # -- events ---------------------------------------------------------------
    # -- events (called by the relay) ---------------------------------------------
    def recorder(self, token):
        att = self.by_token.get(token)
        return att.recorder if att is not None else None

    def start(self, token, payload: dict, answered: bool) -> dict:
        att = self.by_token.get(token)
        if att is None:
            return {"error": "this trial attempt was already given up by the sweep driver"}
        if answered and (self.stopping or att.stop_status):
            return {"error": f"sweep stopping: {self.stopping or att.stop_reason}"}
        return self._start(att, payload)

    def unreadable(self, token, payload: dict) -> None:
        att = self.by_token.get(token)
        if att is not None:  # an unreadable start ends its run with the error answer
            self._unreadable(att, payload, stop=payload["kind"] != START)

    def begun(self, token, payload: dict) -> None:
        att = self.by_token[token]
        att.begun, att.worker = time.monotonic(), payload["worker"]

    def received(self, token) -> None:
        self.by_token[token].received += 1

    def returned(self, ref, future) -> None:
        if ref in self.inflight:
            self._returned(ref, future)

    def _unreadable(self, att: _Attempt, payload: dict, stop: bool = True) -> None:
        """A message of this trial did not unpickle here: the trial fails, saying why; the sweep goes on."""
        if att.stop_status:
            return
        att.stop_status = "FAILED"
        att.stop_reason = (f"the sweep driver could not read the trial's {payload['kind']} message "
                           f"({payload['error']}); its values must be importable where the driver runs")
        if stop and att.ref in self.inflight:
            att.cancel_sent = time.monotonic()
            self._interrupt(att.ref, att, force=False)

    def _start(self, att: _Attempt, payload: dict) -> dict:
        """Start the trial's run in the driver's observers (those the worker does not have)."""
        if payload.get("worker_records"):  # the worker has the file observers: keep the others
            att.worker_records = True
            att.recorder.observers = [obs for obs in att.recorder.observers if not worker_can_record(obs)]
        if att.recorder.observers:
            payload["meta_info"].setdefault("options", {}).update(self.meta_options)
        answer = att.recorder.start(payload)
        att.started = time.monotonic()
        att.config = payload.get("config")
        att.worker = payload.get("worker")
        return answer

    def _returned(self, ref, future) -> None:
        """A task ended: keep its outcome until every event it posted has been relayed."""
        att = self.inflight.pop(ref)
        att.outcome, att.crash = task_outcome(future)
        att.returned = time.monotonic()
        self.closing.append(att)

    def _close_ready(self, give_up: bool = False) -> None:
        still = []
        for att in self.closing:
            tail = att.outcome.tail if att.outcome is not None else {}
            waited = time.monotonic() - att.returned
            if att.received < tail.get("posted", 0) and waited < TAIL_WAIT_SECONDS and not give_up:
                still.append(att)
                continue
            if tail.get("heartbeat"):
                att.recorder.heartbeat(tail["heartbeat"])
            if att.outcome is not None:
                att.recorder.final(tail.get("final"), status_override=att.stop_status, reason=att.stop_reason)
            self._finish(att, att.outcome, att.crash)
        self.closing = still

    # -- finishing ------------------------------------------------------------
    def checkpoint_folder(self, trial: Trial) -> str:
        return join(self.launch.checkpoints, trial.key)

    def _restart(self, att: _Attempt, outcome: Optional[Outcome], crash: Optional[str]) -> bool:
        """A trial whose worker died (or whose node was lost) starts again from its last
        checkpoint as the same Sacred run, up to ``max_restarts`` times; not a retry: the trial
        did nothing wrong. False when it cannot (then it fails as before)."""
        if outcome is not None or not (crash or "").startswith("worker died") or att.stop_status or self.stopping:
            return False
        if att.restarts >= self.settings.max_restarts:
            return False
        rec = att.recorder
        if rec.started:
            reopened = [reopen_file_run(p, rec.run_id) for p in self.worker_recorded] if att.worker_records else []
            if None in reopened:
                self._continue_in_a_new_run(att, crash)
            else:
                rec.restarted(restart_entry(crash, att.worker, self.checkpoint_folder(att.trial)),
                              reopened, captured_out=reopened[0].cout if reopened else None)
        self.queue.appendleft((att.trial, att.attempt, att))
        return True

    def _continue_in_a_new_run(self, att: _Attempt, crash: Optional[str]) -> None:
        """The run's file storage, which its worker wrote, cannot be reopened (its folder is gone
        or unreadable): the run ends INTERRUPTED and the restarted trial records a new run,
        which names this one in ``meta.sweep.resumed_from`` (from the checkpoint it starts from)."""
        rec = att.recorder
        reason = f"{crash}; the trial went on in a new run (this run's file storage could not be reopened)"
        rec.final(("interrupted", {"interrupt_time": None, "status": "INTERRUPTED"}), status_override="INTERRUPTED",
                  reason=reason)
        for obs in self.worker_recorded:
            amend_file_run(obs.basedir, rec.run_id, "INTERRUPTED", reason)
        self.observer_errors.extend(rec.errors)
        att.recorder = TrialRecorder(observers_for_trial(self.launch.prototypes), base_dir=self.launch.base_dir,
                                     run_ids=self.run_ids)

    def _finish(self, att: _Attempt, outcome: Optional[Outcome], crash: Optional[str], restart: bool = True) -> None:
        self.by_token.pop(att.token, None)
        if restart and self._restart(att, outcome, crash):
            return
        rec = att.recorder
        if not rec.finished:
            reason = att.stop_reason or crash or "the trial ended without reporting"
            rec.final(None if not att.stop_status else ("interrupted", {"interrupt_time": None, "status": att.stop_status}),
                      status_override=att.stop_status, reason=reason)
        status = rec.status or "FAILED"
        if not rec.started and att.stop_status:
            status = att.stop_status
        if att.worker_records and rec.run_id is not None and status != "COMPLETED":  # the worker's observers: say how it ended, if they could not
            for obs in self.worker_recorded:
                amend_file_run(obs.basedir, rec.run_id, status, att.stop_reason or crash)
        error = None
        if status != "COMPLETED":
            error = att.stop_reason or crash or (outcome.error if outcome else None) or (rec.errors[-1] if rec.errors else None)
            if att.stop_status and att.begun is None and not rec.started:  # queued at Ray's end: never ran
                error = f"not run: {error}"
        node = (outcome.node if outcome else None) or {}
        duration = time.monotonic() - att.started if att.started else None
        self.observer_errors.extend(rec.errors)
        retry = (status == "FAILED" and att.attempt <= self.settings.retries and not self.stopping)
        self._record(TrialResult(
            trial=att.trial, status=status, run_id=rec.run_id, result=outcome.result if outcome else None,
            metrics=dict(rec.metrics), duration=duration, node=node, error=error, attempts=att.attempt,
            config=att.config,
        ), retrying=retry, steps=dict(rec.metric_steps))
        if retry:
            if self.settings.retry_from == "start":
                TrialCheckpoints(self.checkpoint_folder(att.trial)).clear()
            self.queue.appendleft((att.trial, att.attempt + 1, None))
        elif status == "FAILED" and self.settings.fail_fast and not self.stopping:
            self.stop(f"fail_fast: trial {att.trial.index} failed")

    def stop(self, reason: str, status: str = "INTERRUPTED", force: bool = False) -> None:
        """Stop every trial in flight and run no more; they end recorded as ``status``."""

        self.stopping = self.stopping or reason
        for trial, attempt, dead in self.queue:
            if dead is not None and dead.recorder.started:  # a restart that will not happen: its run ends
                dead.stop_status, dead.stop_reason = status, reason
                self._finish(dead, None, None, restart=False)
            else:
                self.not_run(trial, attempt, reason)
        self.queue.clear()
        for ref, att in self.inflight.items():
            if not att.stop_status:
                att.stop_status, att.stop_reason = status, reason
            if force or not att.cancel_sent:
                att.cancel_sent = time.monotonic()
                self._interrupt(ref, att, force)

    def not_run(self, trial: Trial, attempt: int, reason: str) -> None:
        """A trial the sweep stopped before it ran: INTERRUPTED in the ledger, no Sacred run."""
        self._record(TrialResult(trial=trial, status="INTERRUPTED", error=f"not run: {reason}", attempts=attempt))

    def _record(self, result: TrialResult, retrying: bool = False, steps: Optional[dict] = None) -> None:
        """The trial's latest attempt: kept as its result and appended to the ledger at once."""
        earlier = self.results.get(result.trial.index)  # a retried trial's failed attempt
        self.failed += _failed(result) - (earlier is not None and _failed(earlier))
        self.results[result.trial.index] = result
        if not self.folder.record(ledger_entry(result, steps=steps, retrying=retrying)) and not self.stopping:
            self.stop(f"the sweep folder is not writable: {self.folder.write_error}")  # a full disk

    def _check_timeouts(self) -> None:

        timeout = self.settings.timeout
        now = time.monotonic()
        for ref, att in self.inflight.items():
            began = att.begun or att.started
            if timeout and began and not att.stop_status and now - began > timeout:
                att.stop_status, att.stop_reason = "TIMEOUT", f"timed out after {timeout:g}s"
                att.cancel_sent = now
                self._interrupt(ref, att, force=False)
            elif att.cancel_sent and now - att.cancel_sent > GRACE_SECONDS:
                att.cancel_sent = now
                self._interrupt(ref, att, force=True)  # the trial ignored the interrupt

    def _interrupt(self, ref, att: _Attempt, force: bool) -> None:
        """Stop one trial: SIGINT to its worker when it runs on this node, else Ray's cancel."""
        import ray

        worker = att.worker or {}
        if not force and worker.get("pid") and worker.get("node_id") == self.node_id:
            try:
                os.kill(worker["pid"], signal.SIGINT)
                return
            except (ProcessLookupError, PermissionError) as e:
                log.debug("signal %s: %s", att.token, e)
        try:
            ray.cancel(ref, force=force)
        except Exception as e:  # already finished
            log.debug("cancel %s: %s", att.token, e)

    # -- the loop -------------------------------------------------------------
    def run(self) -> None:
        self._pump(lambda: bool(self.queue or self.inflight or self.closing))

    def _pump(self, go_on, deadline: Optional[float] = None) -> None:
        """Submit, relay events and close trials while ``go_on()`` (and before ``deadline``)."""
        try:
            while go_on() and (deadline is None or time.monotonic() < deadline):
                while self.queue and len(self.inflight) < self.window and not self.stopping:
                    self._submit(*self.queue.popleft())
                self.relay.dispatch(self.hub.get(POLL_SECONDS))
                self._close_ready()
                self._check_timeouts()
                self._report()
        finally:
            self.relay.dispatch(self.hub.get(0))
            self._close_ready()

    def running(self) -> int:
        """Trials whose Sacred run has started and not yet ended, as the progress shows them (a
        trial a worker took but whose run has not started is not: stopped now, it never runs)."""
        return sum(1 for a in self.inflight.values() if a.started)

    def _report(self) -> None:
        self.progress.update(len(self.results), self.running(), self.failed)

    def interrupt(self, reason: str, second: bool = False) -> None:
        """After Ctrl-C: stop trials, keep relaying until they are recorded (or give up)."""
        self.stop(reason)
        try:
            if not second:
                self._pump(lambda: bool(self.inflight or self.closing), deadline=time.monotonic() + GRACE_SECONDS)
        except KeyboardInterrupt:
            pass
        finally:
            for ref, att in list(self.inflight.items()):
                self.inflight.pop(ref)
                self._interrupt(ref, att, force=True)
                self._finish(att, None, reason)
            self._close_ready(give_up=True)


def _failed(result: TrialResult) -> bool:
    return result.status in ("FAILED", "TIMEOUT")


def sweep(ex: Experiment, grid, req: Request) -> SweepResult:
    """Run every trial of a resolved grid on Ray (see ``sacred_ray.run_sweep``)."""
    settings = grid.settings
    session = Session(ex, grid, "sweep", req, trials=grid.trials)
    trials, results = session.trials, []
    if req.resume:
        trials, results = _resumed(session)
        if not trials:
            print(f"resume: all {len(grid.trials)} trials of {settings.name!r} are already COMPLETED; nothing to run")
            session.close()
            return SweepResult(settings.name, session.folder.path, results,
                               report=f"nothing to run: all {len(grid.trials)} trials are COMPLETED "
                                      f"(results in {session.folder.file('summary.csv')})" + session.closing_notes())
        print(f"resume: {len(results)} trials already COMPLETED, {len(trials)} to run")

    bar = Progress(len(trials), settings.name, enabled=req.progress)
    driver = None
    interrupted = None
    try:
        try:
            capacity = session.start()
            # Up to 3 trials per slot wait at Ray's end, so a worker that finishes gets its
            # next trial at once instead of after the driver's next turn (2 ms a trial).
            window = settings.max_concurrent or 4 * capacity
            bar.start()
            driver = SweepDriver(settings, trials, session.launch, session.folder, window, bar, session.hub)
            driver.run()
        except KeyboardInterrupt:
            interrupted = Interrupted(130, "Ctrl-C")
        except Interrupted as e:
            interrupted = e
        if interrupted is not None and driver is not None:
            bar.close()
            driver.relay.dispatch(driver.hub.get(0))  # starts that arrived with the Ctrl-C count
            print(f"\n{interrupted.reason}: stopping {driver.running()} running trial(s) "
                  f"(press Ctrl-C again to stop at once)", flush=True)
            try:
                driver.interrupt(f"sweep interrupted ({interrupted.reason})")
            except (KeyboardInterrupt, Interrupted):
                driver.interrupt(f"sweep interrupted ({interrupted.reason})", second=True)
    finally:
        bar.close()
        session.close()
    if driver is not None:
        results += list(driver.results.values())
    done = {r.trial.index for r in results}
    for t in trials:
        if t.index not in done:
            results.append(TrialResult(trial=t, status="INTERRUPTED", error="not run"))
    out = SweepResult(settings.name, session.folder.path, sorted(results, key=lambda r: r.trial.index),
                      interrupted=interrupted.reason if interrupted else None,
                      observer_errors=driver.observer_errors if driver else [])
    out.exit_code = interrupted.code if interrupted else (0 if out.ok else 1)
    out.report = summarize(out, req.sort or settings.metric, settings.mode, session.folder) + session.closing_notes()
    return out


def _resumed(session: Session) -> tuple:
    """(trials still to run, results of those the ledger has COMPLETED) for --resume."""
    previous = {entry.get("key"): entry for entry in session.earlier}
    done = [t for t in session.trials if previous.get(t.key, {}).get("status") == "COMPLETED"]
    results = [from_ledger(t, previous[t.key]) for t in done]
    return [t for t in session.trials if t not in done], results


__all__ = ["SweepDriver", "sweep"]
