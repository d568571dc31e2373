"""One run lifecycle for both commands: a trial's Sacred run from its start to its ledger line.

A run is opened by its driver (``ray_sweep`` when it submits a task, ``tune_with`` when a
Tune trial says its run is about to start), started in the observers, relayed, perhaps
continued (its worker died, Tune paused the trial or started it again after a failure:
the same run goes on from its checkpoint), perhaps stopped (a status and a reason), and
ended, which yields its ``TrialResult`` and its ledger line. ``Runs`` does all of it for
both commands and is what the relay serves. It is the only writer of ``meta.sweep`` (the
same fields for both commands) and of a run's stop reason, which lives in one place:
``info.sacred_ray.stop_reason``.

What is a driver's own comes in through ``RunHooks``: which run a Tune trial's start
continues, what a task's end or an unreadable message means for the driver's tasks.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..messages import Final, Opened, RunEnd, RunOpen, RunStart, StartAnswer, WorkerRecording
from ..spec import Trial
from ..storage import join
from .control import Beacon
from .folder import SweepFolder
from .observers import (
    amend_file_run,
    observer_flags_for_meta,
    observers_for_trial,
    reopen_file_run,
    worker_can_record,
)
from .prepare import Launch
from .recorder import RunIds, TrialRecorder, restart_entry
from .relay import Trials
from .results import TrialResult, ledger_entry

NO_REPORT = "the trial ended without reporting"
PAUSED_WAIT_SECONDS = 1.0  # while the sweep is paused, a Tune trial asks again this often


@dataclass(eq=False)  # a run is itself: kept in sets and as a key
class Run:
    """One Sacred run of a trial, as the driver follows it. Times are ``time.monotonic()``."""

    trial: Trial
    recorder: TrialRecorder  # the run in the driver's observers
    attempt: int = 1  # 1, then one more per retry (ray_sweep's ``retries``; Tune's restarts continue the run)
    trial_id: Optional[str] = None  # Tune's trial id (tune_with)
    begun: Optional[float] = None  # when a worker took it (again, after a restart): its timeout counts from here
    started: Optional[float] = None  # when it started in the observers
    received: int = 0  # events relayed since it was (re)taken; its RunEnd says how many to expect
    config: Optional[dict] = None  # its full config, as its start reported it
    worker: Optional[dict] = None  # {node_id, node_ip, pid} of the worker running it
    worker_records: bool = False  # the worker's own observers record it too (file storage)
    stop_status: Optional[str] = None  # how the driver ends it: TIMEOUT, INTERRUPTED or FAILED
    stop_reason: Optional[str] = None  # why it ends, as ``info.sacred_ray.stop_reason`` records it
    parent: Optional[dict] = None  # a PBT exploit's run: the run, trial and step it started from, keys changed
    restarts: int = 0  # how often it went on after its trial started again

    def stop(self, status: Optional[str], reason: str) -> bool:
        """End it as ``status`` (None: as the worker ends it) for ``reason``; False if it already had a stop."""
        if self.stop_reason is not None:
            return False
        self.stop_status, self.stop_reason = status, reason
        return True


class RunHooks:
    """What a driver adds to the lifecycle; each is called on the relay's thread."""

    def claim(self, token: Any, body: RunOpen) -> Optional[Run]:
        """The run a Tune trial's start under ``token`` is (tune_with); None: not followed."""
        return None

    def done_before(self, body: RunOpen) -> Optional[TrialResult]:
        """The SKIPPED result of a Tune trial an earlier COMPLETED run holds (--skip-done), if it is one."""
        return None

    def started(self, token: Any, run: Run) -> None:
        """``run`` started in the observers (it has its id)."""

    def interrupt(self, token: Any, run: Run) -> None:
        """The driver stopped ``run`` while it runs (one of its messages could not be read)."""

    def ended(self, token: Any, end: RunEnd) -> None:
        """A run's ``RunEnd`` arrived as a message (tune_with)."""

    def returned(self, ref: Any, future: Any) -> None:
        """A Ray task the driver watches ended (ray_sweep)."""


class Runs(Trials):
    """Every run of one sweep or search, by the tokens of their messages (see the module docstring)."""

    def __init__(self, name: str, launch: Launch, folder: SweepFolder, node_id: str, hooks: RunHooks,
                 keep_entries: bool = False, beacon: Optional[Beacon] = None):
        """``keep_entries``: keep every ledger line written in ``entries`` (tune_with's end needs
        them; ray_sweep keeps its ``TrialResult`` per trial instead). ``beacon``: told every
        start and end, for ``sweep_status``."""
        self.name = name
        self.beacon = beacon
        self.paused: Optional[str] = None  # no new run starts (a Tune trial's start waits), and who said so
        self.launch = launch
        self.folder = folder
        self.hooks = hooks
        self.by_token: dict = {}
        self.run_ids = RunIds()
        self.meta_options = observer_flags_for_meta(launch.observer_options)
        self.observer_errors: list = []
        self.stopping: Optional[str] = None  # no run starts any more (the sweep stops), and why
        self.entries: Optional[list] = [] if keep_entries else None  # the ledger lines written, in order
        # File storage is written by a worker on this machine itself, as for the run alone; the
        # driver records the rest, and every run on another machine.
        self.worker_recorded = [p for p in launch.prototypes if worker_can_record(p)]
        # where the worker's relay observer stands among its observers: where the driver's would
        priority = max((getattr(p, "priority", 0) for p in launch.prototypes if not worker_can_record(p)), default=None)
        self.recording = WorkerRecording(node_id, self.worker_recorded, self.meta_options, priority)

    # -- opening ----------------------------------------------------------------
    def new(self, token: Any, trial: Trial, attempt: int = 1, trial_id: Optional[str] = None,
            parent: Optional[dict] = None) -> Run:
        """A new Sacred run of ``trial``, whose messages carry ``token``."""
        run = Run(trial, self._recorder(), attempt, trial_id=trial_id, parent=parent)
        self.by_token[token] = run
        return run

    def meta(self, run: Run) -> dict:
        """The run's ``meta.sweep``, the same fields for both commands (``resumed_from`` is added
        by the worker that finds the checkpoint it starts from). ``sources`` keeps ``[file, md5]`` of each
        source file, which MongoDB's record of a run otherwise lacks (--skip-done compares them;
        a list, as Sacred's own, for a file name's dots cannot be a MongoDB key); ``id``, the sweep's
        own id, tells two sweeps of one name apart."""
        t = run.trial
        meta = {"name": self.name, "trial": run.trial_id if run.trial_id is not None else t.index, "key": t.key,
                "variant": t.variant, "attempt": run.attempt,
                "sources": [[name, md5] for name, md5 in sorted(self.launch.sources.items())]}
        if self.launch.sweep_id:
            meta["id"] = self.launch.sweep_id
        return meta

    def goes_on(self, run: Run, reason: str, worker: Optional[dict]) -> None:
        """The run's trial starts again (its worker died, Tune paused or restarted
        it): the run stays open (RUNNING) in every observer, its info lists the restart, and file
        storage its worker wrote is reopened here, the driver recording the rest of it. When
        that storage cannot be reopened, the run ends INTERRUPTED saying so and the trial goes on
        in a new run (which names this one in ``meta.sweep.resumed_from``)."""
        rec = run.recorder
        if rec.started:
            reopened = [reopen_file_run(p, rec.run_id) for p in self.worker_recorded] if run.worker_records else []
            if None in reopened:
                self._replace_recorder(run, f"{reason}; the trial went on in a new run "
                                            f"(this run's file storage could not be reopened)")
            else:
                rec.restarted(restart_entry(reason, worker, self.checkpoints(run)), reopened,
                              captured_out=reopened[0].cout if reopened else None)
                run.worker_records = False
        run.restarts += 1

    def follow(self, token: Any, run: Run) -> None:
        """The run's messages carry ``token`` from now on (its trial was taken again)."""
        run.begun, run.received = None, 0
        self.by_token[token] = run

    def _replace_recorder(self, run: Run, reason: str) -> None:
        rec = run.recorder
        rec.final(Final("interrupted", _now(), status="INTERRUPTED"), status_override="INTERRUPTED", reason=reason)
        for obs in self.worker_recorded:
            amend_file_run(obs.basedir, rec.run_id, "INTERRUPTED", reason)
        self.observer_errors.extend(rec.errors)
        run.recorder, run.started, run.worker_records = self._recorder(), None, False

    def forget(self, token: Any) -> Optional[Run]:
        return self.by_token.pop(token, None)

    def checkpoints(self, run: Run) -> str:
        """The folder the run's trial keeps its state in."""
        return join(self.launch.checkpoints, run.trial.key)

    def _recorder(self) -> TrialRecorder:
        return TrialRecorder(observers_for_trial(self.launch.prototypes), base_dir=self.launch.base_dir,
                             run_ids=self.run_ids)

    # -- events (the relay's Trials) ---------------------------------------------
    def recorder(self, token):
        run = self.by_token.get(token)
        return run.recorder if run is not None else None

    def open(self, token, body: RunOpen) -> Opened:
        if self.paused and not self.stopping:
            return Opened(wait=PAUSED_WAIT_SECONDS)  # the worker asks again; its run has not started
        skipped = self.hooks.done_before(body)
        if skipped is not None:  # no run: the trial gives Tune the earlier run's result
            self.skipped(skipped)
            return Opened(done={"metrics": skipped.metrics, "step": 0})
        run = self.hooks.claim(token, body)
        if run is None:
            return Opened()
        self.follow(token, run)
        run.begun, run.worker = time.monotonic(), body.worker
        return Opened(continues=run.recorder.started, meta=self.meta(run))

    def start(self, token, start: RunStart, answered: bool) -> StartAnswer:
        run = self.by_token.get(token)
        if run is None:
            return StartAnswer(error="this trial attempt was already given up by the sweep driver")
        if answered and not run.recorder.started and (self.stopping or run.stop_status):
            return StartAnswer(error=f"sweep stopping: {self.stopping or run.stop_reason}")
        rec = run.recorder
        if start.worker_records:  # the worker has the file observers: keep the others
            run.worker_records = True
            rec.leave_to_worker(worker_can_record)
        if rec.observers and start.meta_info is not None:
            start.meta_info.setdefault("options", {}).update(self.meta_options)
        answer = rec.start(start)
        if answer.error is None:
            run.started = run.started or time.monotonic()
            run.config, run.worker = start.config, start.worker
            if self.beacon is not None:
                self.beacon.run_started(run)
            self.hooks.started(token, run)
        return answer

    def unreadable(self, token, payload: dict) -> None:
        """A message of this run did not unpickle here: the run fails, saying why; the sweep goes on."""
        run = self.by_token.get(token)
        if run is None:
            return
        reason = (f"the sweep driver could not read the trial's {payload['kind']} message "
                  f"({payload['error']}); its values must be importable where the driver runs")
        if run.stop("FAILED", reason) and payload["kind"] not in ("start", "open"):
            self.hooks.interrupt(token, run)

    def begun(self, token, worker: dict) -> None:
        run = self.by_token[token]
        run.begun, run.worker = time.monotonic(), worker

    def received(self, token) -> None:
        self.by_token[token].received += 1

    def end(self, token, end: RunEnd) -> None:
        self.hooks.ended(token, end)

    def returned(self, ref, future) -> None:
        self.hooks.returned(ref, future)

    # -- ending -------------------------------------------------------------------
    def close(self, run: Run, end: Optional[RunEnd], crash: Optional[str] = None,
              retries_left: bool = False) -> TrialResult:
        """End the run with what its worker said (``end``; None if it said nothing, ``crash``
        saying why) and the driver's stop, and write its ledger line (``retries_left``: a
        failed run's trial is tried again, which the line says)."""
        rec = run.recorder
        if end is not None and end.heartbeat is not None:
            rec.heartbeat(end.heartbeat)
        if end is not None and end.final is not None:
            rec.final(end.final, status_override=run.stop_status, reason=run.stop_reason)
        else:
            rec.final(Final("interrupted", None, status=run.stop_status) if run.stop_status else None,
                      status_override=run.stop_status, reason=run.stop_reason or crash or NO_REPORT)
        status = rec.status or "FAILED"
        if not rec.started and run.stop_status:
            status = run.stop_status
        recorded_reason = rec.stop_reason if status != "COMPLETED" else None
        if run.worker_records and rec.run_id is not None and status != "COMPLETED":
            for obs in self.worker_recorded:  # the worker's observers: say how it ended, if they could not
                amend_file_run(obs.basedir, rec.run_id, status, run.stop_reason or recorded_reason or crash)
        error = None
        if status != "COMPLETED":
            error = (run.stop_reason or recorded_reason or crash or (end.error if end is not None else None)
                     or (rec.errors[-1] if rec.errors else None))
            if run.stop_status and not rec.started:  # queued at Ray's end, or taken but stopped before it started
                error = f"not run: {error}"
        result = TrialResult(
            trial=run.trial, status=status, run_id=rec.run_id, result=end.result if end is not None else None,
            metrics=dict(rec.metrics), duration=time.monotonic() - run.started if run.started else None,
            node=(end.node if end is not None else None) or {}, error=error, attempts=run.attempt,
            config=run.config, trial_id=run.trial_id)
        self.observer_errors.extend(rec.errors)
        if self.beacon is not None:
            self.beacon.run_ended(run)
        self.record(result, steps=dict(rec.metric_steps), retrying=status == "FAILED" and retries_left,
                    parent=run.parent)
        return result

    def skipped(self, result: TrialResult) -> None:
        """A trial an earlier run holds (--skip-done): its ledger line, counted SKIPPED, no run."""
        entry = ledger_entry(result)
        if self.entries is not None:
            self.entries.append(entry)
        if self.beacon is not None:
            self.beacon.skipped([result])
        self.folder.record(entry)

    def record(self, result: TrialResult, steps: Optional[dict] = None, retrying: bool = False,
               parent: Optional[dict] = None) -> bool:
        """Append the result's ledger line at once; False when the sweep folder cannot take it."""
        entry = ledger_entry(result, steps=steps, retrying=retrying)
        if parent:
            entry["parent"] = parent
        if self.entries is not None:
            self.entries.append(entry)
        if self.beacon is not None:
            self.beacon.result(result, retrying)
        return self.folder.record(entry)


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow()


__all__ = ["Run", "RunHooks", "Runs"]
