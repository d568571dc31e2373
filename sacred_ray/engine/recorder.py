"""Replays one trial's relayed events into that trial's own observer instances.

Mirrors what ``sacred.run.Run`` does with its observers: priority order, the first
assigned id given to the others, failures after start logged and the observer
skipped, final events always attempted.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import traceback
from typing import Any, Optional

from ..messages import FileEvent, Final, Heartbeat, RunStart, StartAnswer
from ..worker.local import plain_file_storage

log = logging.getLogger("sacred_ray")


class RunIds:
    """The next free run folder of each FileStorageObserver directory, kept by the driver.

    Sacred's FileStorageObserver starts a run in folder max(existing) + 1 and lists the
    whole directory to find it: O(runs) per trial, O(runs²) per sweep, all of it in the
    one driver process. Given the next free id (as the string it would itself return),
    it makes that same folder; a folder someone else made meanwhile fails its mkdir and
    the start falls back to Sacred's own search."""

    def __init__(self):
        self._last: dict = {}

    def hint(self, observer) -> Optional[str]:
        base = _file_storage_dir(observer)
        if base is None:
            return None
        if base not in self._last:
            self._last[base] = _largest_run_folder(base)
        return str(self._last[base] + 1)

    def taken(self, observer, run_id: Any) -> None:
        base = _file_storage_dir(observer)
        if base in self._last and str(run_id).isdigit():
            self._last[base] = max(self._last[base], int(run_id))


def _file_storage_dir(observer) -> Optional[str]:
    """The runs folder of a plain FileStorageObserver (a subclass may number its runs its own way)."""
    return os.path.abspath(observer.basedir) if plain_file_storage(observer) else None


def _largest_run_folder(base: str) -> int:
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return 0
    return max((int(n) for n in names if n.isdigit() and os.path.isdir(os.path.join(base, n))), default=0)


class TrialRecorder:
    """The driver's record of one trial attempt, written through its observers."""

    def __init__(self, observers: list, base_dir: Optional[str] = None, run_ids: Optional[RunIds] = None):
        """``base_dir``: the driver's ``ex.base_dir``, where the experiment's sources are on this machine;
        ``run_ids``: the driver's RunIds, shared by its recorders."""
        self.observers = sorted(observers, key=lambda o: -getattr(o, "priority", 0))
        self.base_dir = base_dir
        self.run_ids = run_ids
        self.run_id: Any = None
        self.started = False
        self.finished = False
        self.status: Optional[str] = None
        self.info: dict = {}
        self.captured_out = ""
        self.metrics: dict = {}  # name -> last value
        self.metric_steps: dict = {}  # name -> number of values logged
        self.last_steps: dict = {}  # name -> the last step logged (a restart logs on from there)
        self.errors: list = []
        self._failed: list = []
        self._tmp: Optional[str] = None

    def restarted(self, entry: dict, reopened: list = (), captured_out: Optional[str] = None) -> None:
        """The trial's worker died and the trial starts again: the run stays open (RUNNING) in
        every observer, its info lists the restart, and ``reopened`` observers (file storage a
        worker was writing itself) join in; the next start continues this run. A stop reason it
        had is dropped: it did not stop, it goes on."""
        (self.info.get("sacred_ray") or {}).pop("stop_reason", None)
        self.observers = sorted([*self.observers, *reopened], key=lambda o: -getattr(o, "priority", 0))
        if captured_out is not None:
            self.captured_out = captured_out
        sacred_ray = self.info.setdefault("sacred_ray", {})
        sacred_ray["restarts"] = [*sacred_ray.get("restarts", []), entry]
        self._resave_info()

    @property
    def stop_reason(self) -> Optional[str]:
        """Why the run stopped, as its ``info.sacred_ray.stop_reason`` records it (None: no stop)."""
        return (self.info.get("sacred_ray") or {}).get("stop_reason")

    def leave_to_worker(self, records_itself) -> None:
        """The worker records with the observers ``records_itself(observer)`` picks: drop them here."""
        self.observers = [obs for obs in self.observers if not records_itself(obs)]

    # -- events ---------------------------------------------------------------
    def start(self, start: RunStart) -> StartAnswer:
        if self.started:  # a restart of the trial: its run goes on under the same id, from its last steps
            return StartAnswer(run_id=self.run_id, continues=dict(self.last_steps))
        if not self.observers:  # the worker's own observers recorded the start
            self.run_id, self.started = start.run_id, True
            return StartAnswer(run_id=self.run_id)
        ex_info = dict(start.ex_info or {})
        if self.base_dir:  # observers that store sources read them here, not on the worker
            ex_info["base_dir"] = self.base_dir
        _id = start.run_id
        try:
            for obs in self.observers:
                event = dict(ex_info=ex_info, command=start.command, host_info=start.host_info,
                             start_time=start.start_time, config=start.config, meta_info=start.meta_info)
                hint = self.run_ids.hint(obs) if self.run_ids is not None and _id is None else None
                try:
                    assigned = obs.started_event(**event, _id=_id if hint is None else hint)
                except FileExistsError:
                    if hint is None:
                        raise
                    assigned = obs.started_event(**event, _id=None)  # the hinted folder was taken
                if _id is None:
                    _id = assigned
                if self.run_ids is not None:
                    self.run_ids.taken(obs, _id)
        except Exception as e:
            self.errors.append(f"observer {type(obs).__name__} failed to start the run: {e}")
            return StartAnswer(error=f"{type(obs).__name__} failed at started_event: {e.__class__.__name__}: {e}")
        self.run_id = _id
        self.started = True
        return StartAnswer(run_id=_id)

    def heartbeat(self, beat: Heartbeat) -> None:
        if not self.started:
            return
        for key, value in beat.info.items():
            if key == "sacred_ray" and isinstance(value, dict):  # the worker's part; the driver keeps restarts there
                self.info[key] = {**self.info.get(key, {}), **value}
            elif key != "metrics":
                self.info[key] = value
        self.captured_out = beat.out if beat.out_replaces else self.captured_out + beat.out
        metrics = beat.metrics
        for name, series in metrics.items():
            if series["values"]:
                self.metrics[name] = series["values"][-1]
                self.metric_steps[name] = self.metric_steps.get(name, 0) + series.get("count", len(series["values"]))
                self.last_steps[name] = max(series["steps"][-1], self.last_steps.get(name, -1))
        for obs in self.observers:
            if metrics:
                self._safe(obs, "log_metrics", metrics_by_name=metrics, info=self.info)
            self._safe(obs, "heartbeat_event", info=self.info, captured_out=self.captured_out,
                       beat_time=beat.beat_time, result=beat.result)

    def artifact(self, event: FileEvent) -> None:
        if not self.started or event.content is None:
            return
        path = self._materialize(event.filename, event.content)
        for obs in self.observers:
            self._safe(obs, "artifact_event", name=event.name, filename=path,
                       metadata=event.metadata, content_type=event.content_type)

    def resource(self, event: FileEvent) -> None:
        if not self.started:
            return
        filename = event.filename
        if not os.path.exists(filename):
            if event.content is None:
                return
            filename = self._materialize(os.path.basename(filename), event.content)
        for obs in self.observers:
            self._safe(obs, "resource_event", filename=filename)

    def final(self, event: Optional[Final], status_override: Optional[str] = None, reason: Optional[str] = None) -> None:
        """Close the run: the worker's final event, or one the driver makes up; ``status_override``
        is how the driver ended it (TIMEOUT, INTERRUPTED, FAILED), ``reason`` why: an interrupted
        run keeps it in ``info.sacred_ray.stop_reason``."""
        if self.finished:
            return
        self.finished = True
        if event is None:
            event = Final("failed", _now(), fail_trace=[reason or "the trial ended without a final event"])
        if status_override == "FAILED" and event.kind != "failed":  # the driver failed it (e.g. an unreadable message)
            event = Final("failed", event.time or _now(), fail_trace=[reason or "failed by the sweep driver"])
        elif status_override and status_override != "FAILED":
            event = Final("interrupted", event.time or _now(), status=status_override)
        if reason and event.kind == "interrupted" and self.started:
            self.info["sacred_ray"] = {**self.info.get("sacred_ray", {}), "stop_reason": reason}
            self._resave_info()
        self.status = {"completed": "COMPLETED", "failed": "FAILED"}.get(event.kind, event.status)
        if not self.started:
            self._cleanup()
            return
        method, kwargs = event.sacred_event()
        for obs in self.observers:
            try:
                getattr(obs, method)(**kwargs)
            except Exception:
                self.errors.append(f"observer {type(obs).__name__} failed at {method}: {traceback.format_exc(limit=1).strip()}")
        for obs in self.observers:
            self._safe(obs, "join")
        self._cleanup()

    def _resave_info(self) -> None:
        """A last heartbeat, so the observers store the info that explains the stop."""
        for obs in self.observers:
            self._safe(obs, "heartbeat_event", info=self.info, captured_out=self.captured_out,
                       beat_time=_now(), result=None)

    # -- helpers --------------------------------------------------------------
    def _safe(self, obs, method: str, **kwargs) -> None:
        if obs in self._failed:
            return
        try:
            getattr(obs, method)(**kwargs)
        except Exception as e:
            self._failed.append(obs)
            self.errors.append(f"observer {type(obs).__name__} failed at {method}: {e}")
            log.warning("observer %s failed at %s: %s", type(obs).__name__, method, e)

    def _materialize(self, name: str, content: bytes) -> str:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="sacred_ray_files_")
        folder = tempfile.mkdtemp(dir=self._tmp)
        path = os.path.join(folder, os.path.basename(name) or "file")
        with open(path, "wb") as f:
            f.write(content)
        return path

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def restart_entry(reason: Optional[str], worker: Optional[dict], checkpoints: str) -> dict:
    """What a run's ``info.sacred_ray.restarts`` says of one restart: when, why, where it ran
    before, and the step of the checkpoint it goes on from."""
    import datetime

    from ..checkpoint import latest_step

    worker = worker or {}
    return {"time": datetime.datetime.utcnow().isoformat(), "reason": reason, "node": worker.get("node_ip"),
            "node_id": worker.get("node_id"), "from_step": latest_step(checkpoints)}


def _now():
    import datetime

    return datetime.datetime.utcnow()
