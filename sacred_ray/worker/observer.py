"""RayObserver: the only observer a trial's Sacred run has on a Ray worker.

It speaks Sacred's ``RunObserver`` interface and forwards every event to the driver
through the relay, where a fresh instance of each observer the user chose records
it. ``started_event`` is a round trip, so ``_run._id`` in the trial is the id the
driver's observers assigned; the other events are posted without waiting, in order.
A run's first second of heartbeats is held back, so a short run's last heartbeat and
final event travel with the task's return value (``tail``) instead of through the
relay; ``posted`` tells the driver how many events to expect before the tail.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any, Optional

from sacred.observers.base import RunObserver


class ObserverStartError(RuntimeError):
    """The driver's observers refused to start this trial's run (e.g. the database is down)."""


def _read(filename: str) -> Optional[bytes]:
    try:
        with open(filename, "rb") as f:
            return f.read()
    except OSError:
        return None


class RayObserver(RunObserver):
    """Relay a run's events to the sweep driver (see module docstring).

    ``relay`` is the driver's relay actor handle, ``token`` names the trial attempt,
    ``worker`` is where it runs ({node_id, node_ip, pid}: the driver signals it there).
    The final event (completed, failed or interrupted) is kept in ``final`` as well,
    so the task that ran the trial can return it.
    """

    priority = 100
    LIVE_AFTER = 1.0  # seconds into a run after which heartbeats are relayed as they happen

    def __init__(self, relay: Any, token: str, worker: Optional[dict] = None):
        self.relay = relay
        self.token = token
        self.worker = worker or {"pid": os.getpid()}
        self.run_id = None
        self.final: Optional[tuple] = None
        self.posted = 0
        self._pending_metrics: dict = {}
        self._held: Optional[dict] = None
        self._sent_out = ""
        self._last_post = None
        self._started = time.monotonic()

    def _post(self, kind: str, payload: dict) -> None:
        self.posted += 1
        self._last_post = self.relay.post.remote(self.token, kind, payload)

    def _release_held(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._post("heartbeat", held)

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        import ray

        payload = {
            "ex_info": ex_info, "command": command, "host_info": host_info,
            "start_time": start_time, "config": copy.deepcopy(config),
            "meta_info": copy.deepcopy(meta_info), "_id": _id,
            "worker": self.worker,
        }
        self._started = time.monotonic()
        answer = ray.get(self.relay.start.remote(self.token, payload))
        if isinstance(answer, dict) and "error" in answer:
            raise ObserverStartError(answer["error"])
        self.run_id = answer.get("_id") if isinstance(answer, dict) else answer
        return self.run_id

    def log_metrics(self, metrics_by_name, info):
        for name, series in metrics_by_name.items():
            held = self._pending_metrics.setdefault(name, {"steps": [], "values": [], "timestamps": []})
            for field in ("steps", "values", "timestamps"):
                held[field].extend(series[field])

    def heartbeat_event(self, info, captured_out, beat_time, result):
        if captured_out.startswith(self._sent_out):
            out = {"append": captured_out[len(self._sent_out):]}
        else:
            out = {"replace": captured_out}
        self._sent_out = captured_out
        metrics, self._pending_metrics = self._pending_metrics, {}
        beat = {"info": copy.deepcopy(info), "out": out, "beat_time": beat_time, "result": result, "metrics": metrics}
        self._release_held()
        if time.monotonic() - self._started >= self.LIVE_AFTER:
            self._post("heartbeat", beat)
        else:
            self._held = beat

    def resource_event(self, filename):
        self._release_held()
        self._post("resource", {"filename": filename, "content": _read(filename)})

    def artifact_event(self, name, filename, metadata=None, content_type=None):
        self._release_held()
        self._post("artifact", {
            "name": name, "filename": os.path.basename(filename), "content": _read(filename),
            "metadata": metadata, "content_type": content_type,
        })

    def completed_event(self, stop_time, result):
        self.final = ("completed", {"stop_time": stop_time, "result": result})

    def interrupted_event(self, interrupt_time, status):
        self.final = ("interrupted", {"interrupt_time": interrupt_time, "status": status})

    def failed_event(self, fail_time, fail_trace):
        self.final = ("failed", {"fail_time": fail_time, "fail_trace": fail_trace})

    def tail(self) -> dict:
        """What the driver still needs after the posted events: held heartbeat, final event."""
        held, self._held = self._held, None
        return {"posted": self.posted, "heartbeat": held, "final": self.final}

    def flush(self) -> None:
        """Post the held heartbeat and wait until the relay holds every event posted so far."""
        import ray

        self._release_held()
        if self._last_post is not None:
            ray.get(self._last_post)
            self._last_post = None

    def __eq__(self, other):
        return isinstance(other, RayObserver) and other.token == self.token

    __hash__ = object.__hash__
