"""SacredTrainable: a Ray Tune trial that is one Sacred run (or, if Tune restarts it, several).

The Sacred run executes in a thread of the trial's actor. Each ``_run.log_scalar`` of
the tune metric becomes one Tune result at once (no waiting for Sacred's heartbeat)
and the run pauses there until Tune asks for the next result, so a scheduler's stop
lands exactly at a report: the run then ends INTERRUPTED with the reason in its
info, and every metric up to that point recorded (see ../shared/DESIGN.md on why a
function trainable cannot stop this cleanly).
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import threading
import time
import uuid
from typing import Any, Optional

from ray import tune

from ..checkpoint import TrialCheckpoints
from ..messages import OPEN, RunEnd, RunJob, RunOpen, SearchJob
from ..spec.settings import SCHEDULERS
from ..spec.trial import nest
from ..storage import join
from .core import LOST_DRIVER, RunHooks, node_info, relay_observers, run_sacred
from .handoff import HandOff, StoppedByTune
from .observer import DriverLink

JOIN_SECONDS = 30.0
TUNE_META = "sacred_ray.json"  # in a Tune checkpoint: whose state it holds (trial, run, step, values)


def _lineage(parent: Optional[dict], updates: dict) -> Optional[dict]:
    """A PBT exploit's parent as its run records it: the donor's run, trial and step, and the
    searched keys the exploit changed ({key: {"from", "to"}})."""
    if parent is None:
        return None
    before = parent.get("values") or {}
    return {**{k: parent.get(k) for k in ("run_id", "trial_id", "step")},
            "changed": {k: {"from": before.get(k), "to": v} for k, v in updates.items() if before.get(k) != v}}


def _number(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


class SacredTrainable(tune.Trainable):
    """Runs the experiment for one Tune trial config; ``job`` comes from ``tune.with_parameters``."""

    def setup(self, config: dict, job: Optional[SearchJob] = None):
        # The run starts at the first step(): Tune may build an actor and then discard it.
        self.job = job
        self.thread: Optional[threading.Thread] = None
        self.pending_config: Optional[dict] = config
        self.values: dict = {}  # the running config's searched values, by dotted key
        self.parent: Optional[dict] = None  # a PBT exploit: the donor's trial, run, step and values
        self.restored: dict = {}  # the Tune checkpoint's sacred_ray.json Tune last restored
        self.sacred_run = None
        self.latest: dict = {}  # the run's latest value of each logged scalar
        self.last_step = 0  # the step of its latest report

    # -- the run in its thread ------------------------------------------------
    def _start(self, config: dict) -> None:
        self.handoff = HandOff()
        # what the trial reported last, restored with a checkpoint: a run restored after its last
        # step (PBT paused it there) ends without logging, and Tune still gets the trial's values
        self.latest = dict(self.restored.get("metrics") or {})
        self.last_step = self.restored.get("reported_step") or 0
        # the last step Tune has, when the run may have gone past it (see _advance); None: not restored
        self.tune_had = self.restored.get("reported_step") if self._hands_over else None
        self.restored = {}
        self.reported = 0
        plan = self.job.plan
        variant, updates, named = plan.decode(config)
        self.values, self.sacred_run = dict(updates), None
        self.token = f"{self.trial_id}:{uuid.uuid4().hex[:8]}"
        self.thread = threading.Thread(target=self._run, args=(variant, updates, named), daemon=True,
                                       name=f"sacred-run-{self.trial_id}")
        self.thread.start()

    def _run(self, variant: Optional[str], updates: dict, named: tuple) -> None:
        job: SearchJob = self.job
        handoff = self.handoff  # this run's: a next run of the trial gets its own
        observer = outcome = None
        also: list = []
        try:
            node = node_info()
            parent, self.parent = self.parent, None
            link, lineage = DriverLink.to(job.hub), _lineage(parent, updates)
            opening = RunOpen(worker=node, trial_id=self.trial_id, variant=variant, parent=lineage,
                              updates=updates, named_configs=tuple(named))
            opened = link.ask(self.token, OPEN, opening)
            while opened.wait:  # the sweep is paused: this run starts when it goes on
                time.sleep(opened.wait)
                opened = link.ask(self.token, OPEN, opening)
            if opened.done is not None:  # --skip-done: an earlier run holds this trial; no run starts
                outcome = RunEnd(status="SKIPPED", result=opened.done, node=node)
                return
            # a run that goes on an earlier one is recorded by the driver alone from here
            observer, also = relay_observers(job.hub, self.token, node, None if opened.continues else job.recording)
            tune_info = {"trial_id": self.trial_id, "experiment": job.name}
            meta_tune = dict(tune_info)
            if parent is not None:  # a PBT exploit: a new run from the donor's state
                lineage = _lineage(parent, updates)
                meta_tune["parent_run"] = {k: lineage[k] for k in ("run_id", "trial_id", "step")}
                meta_tune["changed"] = lineage["changed"]
            run_job = RunJob(token=self.token, config_updates=nest(updates), named_configs=tuple(named),
                             options=job.options, cwd=job.cwd, info={"ray": node, "tune": tune_info},
                             meta_info={"sweep": opened.meta, "tune": meta_tune},
                             checkpoints={"folder": self._folder()} if job.checkpoints else None)
            outcome = run_sacred(job.ref, run_job, observer, also, RunHooks(
                created=self._created, logged=self._logged, saved=lambda: self.handoff.saved(), lost=self._driver_lost))
        except BaseException as e:  # the driver could not be reached
            outcome = RunEnd(status="FAILED", error=f"{e.__class__.__name__}: {e}")
        finally:
            try:
                if observer is not None:
                    outcome.node = outcome.node or observer.worker
                    observer.flush(end=outcome)
            finally:
                handoff.end(outcome)

    def _created(self, run) -> None:
        self.sacred_run = run

    def _driver_lost(self, ex) -> None:
        """The driver went away: stop the run at its next report, as a scheduler's stop would."""
        self.handoff.stop(LOST_DRIVER)

    def _logged(self, metric_name, value, step, before: bool) -> None:
        """The run logged a scalar: the trial's metric goes to Tune (``step()``) and the run
        waits until Tune asks for the next result, or stops if Tune says so."""
        self.handoff.check()
        if before and (self.tune_had is None or step <= self.tune_had):
            return  # recomputed after a restart: Tune has had this step (and restored its count)
        number = _number(value)
        if number is None:
            return
        self.latest[metric_name] = number
        if metric_name != self.job.metric:
            return
        self.reported += 1
        self.last_step = step if step is not None else self.reported - 1
        if self.handoff.finishing:  # past the scheduler's budget: stop here
            self.handoff.stop(self._reason("stopped"))
            self.handoff.check()
        try:
            self.handoff.report(dict(self.latest), self.last_step)
        except StoppedByTune as e:
            self.sacred_run.info.setdefault("sacred_ray", {})["stop_reason"] = self.handoff.stop_reason or str(e)
            raise

    def _reason(self, verb: str) -> str:
        scheduler = SCHEDULERS[self.job.scheduler].label
        return f"{verb} by {scheduler} at step {self.last_step}"

    # -- Tune's side ----------------------------------------------------------
    def step(self) -> dict:
        completed = self.job.completed.get(self.trial_id)
        if self.pending_config is not None and completed is not None:
            # --resume: this trial's run COMPLETED before the search stopped, after Tune last
            # saved its state; give Tune that run's last result instead of running it again
            self.pending_config = None
            return {**completed["metrics"], "step": completed["step"], "done": True}
        if self.pending_config is not None:
            self._start(self.pending_config)
            self.pending_config = None
        kind, payload, *rest = self.handoff.take()
        if kind == "report":
            result = {**payload, "step": rest[0]}
            if self.job.max_t and self.iteration + 1 >= self.job.max_t:
                # the scheduler's budget is used up: the trial ends here, as the scheduler would
                # end it, and is not left to it (HyperBand can pause a trial at its last rung and
                # never take it back; ray-project/ray#39157)
                result["done"] = True
            return result
        status = payload.status
        if status == "SKIPPED":  # the earlier run's result, as a trial that completed gives it
            return {**payload.result["metrics"], "step": payload.result["step"], "done": True}
        if status == "FAILED":
            raise RuntimeError(f"the trial's Sacred run failed: {payload.error}")
        if status != "COMPLETED":
            raise RuntimeError(f"the trial's Sacred run ended {status}: {payload.error}")
        final = dict(self.latest)
        metric = self.job.metric
        result = payload.result
        if isinstance(result, dict):
            final.update({k: v for k, v in ((k, _number(v)) for k, v in result.items()) if v is not None})
        elif _number(result) is not None:
            final["result"] = _number(result)
        if metric not in final:
            raise RuntimeError(
                f"the trial never logged {metric!r}: log it with _run.log_scalar({metric!r}, value) "
                f"or return it from main, or set tune.metric")
        final["done"] = True
        final["step"] = self.last_step
        return final

    def _folder(self) -> str:
        return join(self.job.checkpoints, self.trial_id)

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        # The trial's state is what its run gave sacred_ray.save, in the search's checkpoints/<trial
        # id>/: a trial Tune starts again (a paused one, max_failures) restores its newest from
        # there. Tune's checkpoint holds a copy (hard links) of that newest one and whose it is,
        # for a PBT exploit to hand to another trial.
        if not self.job.checkpoints:
            return None
        metrics, reported_step = dict(self.latest), self.last_step  # what Tune has had
        self._advance()
        store = TrialCheckpoints(self._folder())
        exported = store.export(os.path.join(checkpoint_dir, "state"))
        run = self.sacred_run
        meta = {"trial_id": self.trial_id, "run_id": getattr(run, "_id", None), "values": self.values,
                "step": exported.get("step") if exported is not None else None,
                "metrics": metrics, "reported_step": reported_step}
        with open(os.path.join(checkpoint_dir, TUNE_META), "w", encoding="utf-8") as f:
            json.dump(meta, f, default=repr)
        return None

    @property
    def _hands_over(self) -> bool:
        """PBT and PB2: a checkpoint of this trial may become another trial's state."""
        return SCHEDULERS[self.job.scheduler].hands_over

    def _advance(self) -> None:
        """Tune saves between results, with the run waiting at the report Tune had last, which
        comes before the run's save() of that step (log the metric, then save). Let the run go
        on to that save() and wait there, so the checkpoint holds the state of the step Tune
        compared (what PBT hands to another trial); the run stops short at its next report or
        its end if it saves less often. The next step() lets it continue.

        Only under PBT and PB2, where a checkpoint becomes another trial's state: a trial that
        restores its own checkpoint (a HyperBand pause, max_failures) just computes that step
        again, and letting a run end while HyperBand pauses its trial at its last rung leaves
        the trial paused for good (seen in tests)."""
        if self._hands_over and self.thread is not None:
            self.handoff.advance(self.thread)

    def load_checkpoint(self, checkpoint) -> None:
        """Tune restores this trial from a checkpoint: its own (the newest state is already in
        its folder) or, after a PBT exploit, another trial's, whose state becomes this trial's
        newest and whose run becomes the next run's parent."""
        path = checkpoint if isinstance(checkpoint, str) else None
        if path is None or not self.job.checkpoints:
            return None
        try:
            with open(os.path.join(path, TUNE_META), encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return None
        self.restored = meta
        if meta.get("trial_id") in (None, self.trial_id):
            return None
        state = os.path.join(path, "state")
        if os.path.isdir(state):
            TrialCheckpoints(self._folder()).adopt(state)
        self.parent = meta
        return None

    def _stop_current(self) -> None:
        thread = self.thread
        if thread is None or not thread.is_alive():
            return
        max_t = self.job.max_t
        handoff = self.handoff
        if max_t and self.iteration >= max_t:
            handoff.finishing = True  # the scheduler's budget is used up: the run may end on its own
            handoff.stop(None)
        else:
            handoff.stop(self._reason("stopped"))
            sacred_run = getattr(self, "sacred_run", None)
            if sacred_run is not None:
                sacred_run.info.setdefault("sacred_ray", {})["stop_reason"] = handoff.stop_reason
        thread.join(JOIN_SECONDS)
        if thread.is_alive():  # the run is not logging: interrupt it where it is
            handoff.stop_reason = handoff.stop_reason or self._reason("stopped")
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(StoppedByTune))
            thread.join(JOIN_SECONDS)

    def cleanup(self) -> None:
        self._stop_current()

    def reset_config(self, new_config: dict) -> bool:
        self._stop_current()
        self.thread = None
        self.pending_config = new_config
        return True
