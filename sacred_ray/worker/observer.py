"""RayObserver: the only observer a trial's Sacred run has on a Ray worker.

It speaks Sacred's ``RunObserver`` interface and sends every event to the driver's
hub (``sacred_ray.engine.hub``), where a fresh instance of each observer the user
chose records it. ``started_event`` is a round trip, so ``_run._id`` in the trial is
the id the driver's observers assigned; the other events are sent without waiting,
in order, over the worker process's one connection to the driver. A run's first
second of heartbeats is held back, so a short run's last heartbeat and final event
travel with its ``RunEnd`` (a ray_sweep task's return value); ``posted`` tells the driver
how many events to expect before it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Optional

from sacred.observers.base import RunObserver

from .. import protocol
from ..messages import (
    ARTIFACT,
    END,
    HEARTBEAT,
    RESOURCE,
    START,
    STARTED,
    SYNC,
    FileEvent,
    Final,
    Heartbeat,
    RunEnd,
    RunStart,
    StartAnswer,
)


class ObserverStartError(RuntimeError):
    """The driver's observers refused to start this trial's run (e.g. the database is down)."""


def _read(filename: str) -> Optional[bytes]:
    try:
        with open(filename, "rb") as f:
            return f.read()
    except OSError:
        return None


class DriverLink:
    """This process's connection to a driver's hub; one per process and driver, shared by its runs."""

    _current: Optional[DriverLink] = None

    def __init__(self, address: tuple, authkey: bytes, driver_pid: Optional[int] = None):
        self.key = (address, authkey)
        self.driver_pid = driver_pid  # the driver's process, on its machine (the hub says which)
        self.conn = protocol.connect_to(tuple(address), authkey)
        self.lock = threading.Lock()
        self.lock_watch = threading.Lock()
        self.broken = False
        self.stash: dict = {}
        self.renames: dict = {}  # the experiment's module as this worker names it -> as the driver does
        self._on_lost = None  # called (from another thread) if the driver goes away
        threading.Thread(target=self._watch, name="sacred-ray-driver-watch", daemon=True).start()

    def _watch(self) -> None:
        """Notice the driver's end of the connection closing, without reading from it."""
        import select

        gone = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR
        poller = select.poll()
        poller.register(self.conn.fileno(), gone)
        while True:
            try:
                events = poller.poll()
            except (OSError, ValueError):
                return
            if any(flags & select.POLLNVAL for _, flags in events):  # we closed it ourselves
                return
            if any(flags & gone for _, flags in events):
                self.lose()
                return

    def gone(self) -> bool:
        """Whether the driver's end of the connection has closed, looked at now (any thread)."""
        import select

        if self.broken:
            return True
        poller = select.poll()
        try:
            poller.register(self.conn.fileno(), getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR)
            return any(flags & ~select.POLLNVAL for _, flags in poller.poll(0))
        except (OSError, ValueError):
            return True

    def lose(self) -> None:
        """The driver went away: the ``on_lost`` callback runs once, on the thread that saw it first."""
        with self.lock_watch:
            self.broken = True
            on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost()

    def on_lost(self, callback) -> None:
        """Call ``callback`` once when the driver goes away (at once if it has); None to stop."""
        with self.lock_watch:
            self._on_lost = callback
            lost = self.broken
        if lost and callback is not None:
            callback()

    @classmethod
    def to(cls, link: dict) -> DriverLink:
        key = (tuple(link["address"]), link["authkey"])
        found = cls._current
        if found is None or found.broken or found.key != key:
            if found is not None:  # an earlier sweep's driver (or a lost one): done with it
                found.conn.close()
            try:
                found = cls._current = cls(*key, driver_pid=link.get("pid"))
            except ConnectionError as e:
                raise ObserverStartError(str(e)) from e
        return found

    def send(self, token: str, kind: str, payload: Any) -> None:
        """Send without waiting; a driver that has gone away is not the run's problem."""
        data = protocol.envelope(token, kind, payload, self.renames)
        try:
            with self.lock:
                self.conn.send_bytes(data)
        except (OSError, ValueError):
            self.broken = True

    def ask(self, token: str, kind: str, payload: Any, timeout: float = protocol.ANSWER_SECONDS) -> Any:
        """Send and wait (at most ``timeout`` seconds) for the driver's answer to this token."""
        data = protocol.envelope(token, kind, payload, self.renames)
        deadline = time.monotonic() + timeout
        with self.lock:
            try:
                self.conn.send_bytes(data)
                while token not in self.stash:
                    if not self.conn.poll(max(0.0, deadline - time.monotonic())):
                        raise ObserverStartError(f"the sweep driver did not answer within {timeout:g}s")
                    answered, answer = self.conn.recv()
                    self.stash[answered] = answer
            except (OSError, EOFError, ValueError) as e:
                self.broken = True
                raise ObserverStartError(f"lost the connection to the sweep driver: {e}") from e
            return self.stash.pop(token)


class MetaFlags(RunObserver):
    """First at a run's start: puts the sweep's observer flags in meta.options, so observers
    recording in the worker store them as they would for the run alone (the driver does the
    same for its own)."""

    priority = float("inf")

    def __init__(self, flags: dict):
        self.flags = flags

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        meta_info.setdefault("options", {}).update(self.flags)
        return None


class RayObserver(RunObserver):
    """Relay a run's events to the sweep driver (see module docstring).

    ``link`` is the driver's hub address and key, ``token`` names the trial attempt,
    ``worker`` is where it runs ({node_id, node_ip, pid}: the driver signals it there).
    The final event (completed, failed or interrupted) is kept in ``final`` as well,
    so the run's ``RunEnd`` can carry it.
    """

    priority = 100
    LIVE_AFTER = 1.0  # seconds into a run after which heartbeats are relayed as they happen

    def __init__(self, link: dict, token: str, worker: Optional[dict] = None, worker_records: bool = False,
                 driver_records: bool = True, priority: Optional[float] = None):
        """``worker_records``: observers in this worker record the run too (the driver is on
        this machine); ``driver_records``: the driver still has observers of its own for it,
        so the start is a round trip and files travel; ``priority``: where this observer
        stands among the run's observers (Sacred calls them in priority order)."""
        self.link = DriverLink.to(link)
        self.token = token
        self.worker_records = worker_records
        self.driver_records = driver_records
        if priority is not None:
            self.priority = priority
        self.worker = worker or {"pid": os.getpid()}
        self.run_id = None
        self.final: Optional[Final] = None
        self.on_continue = None  # called with the start's answer when the run goes on an earlier one
        self.posted = 0
        self._pending_metrics: dict = {}
        self._held: Optional[Heartbeat] = None
        self._sent_out = ""
        self._started = time.monotonic()

    def _post(self, kind: str, payload: Any) -> None:
        self.posted += 1
        self.link.send(self.token, kind, payload)

    def _release_held(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._post(HEARTBEAT, held)

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        self._started = time.monotonic()
        renames = self.link.renames
        start = RunStart(start_time=start_time, config=protocol.snapshot(config, renames), worker=self.worker,
                         run_id=_id, worker_records=self.worker_records)
        if not self.driver_records:  # this worker's observers record the run: the driver keeps score
            self.run_id = _id
            self._post(STARTED, start)
            return None
        start.ex_info, start.command, start.host_info = ex_info, command, host_info
        start.meta_info = protocol.snapshot(meta_info, renames)
        answer: StartAnswer = self.link.ask(self.token, START, start)
        if answer.error is not None:
            raise ObserverStartError(answer.error)
        self.run_id = answer.run_id
        if answer.continues is not None and self.on_continue is not None:
            self.on_continue(answer.continues)
        return self.run_id

    def log_metrics(self, metrics_by_name, info):
        for name, series in metrics_by_name.items():
            if not self.driver_records:  # this worker's observers have the series: the driver keeps score
                if series["values"]:
                    count = self._pending_metrics.get(name, {}).get("count", 0) + len(series["values"])
                    self._pending_metrics[name] = {field: series[field][-1:] for field in ("steps", "values", "timestamps")}
                    self._pending_metrics[name]["count"] = count
                continue
            held = self._pending_metrics.setdefault(name, {"steps": [], "values": [], "timestamps": []})
            for field in ("steps", "values", "timestamps"):
                held[field].extend(series[field])

    def heartbeat_event(self, info, captured_out, beat_time, result):
        replaces = not captured_out.startswith(self._sent_out)
        out = captured_out if replaces else captured_out[len(self._sent_out):]
        self._sent_out = captured_out
        metrics, self._pending_metrics = self._pending_metrics, {}
        beat = Heartbeat(info=protocol.snapshot(info, self.link.renames), beat_time=beat_time, result=result,
                         metrics=metrics, out=out, out_replaces=replaces)
        self._release_held()
        if time.monotonic() - self._started >= self.LIVE_AFTER:
            self._post(HEARTBEAT, beat)
        else:
            self._held = beat

    def resource_event(self, filename):
        if not self.driver_records:
            return
        self._release_held()
        self._post(RESOURCE, FileEvent(filename=filename, content=_read(filename)))

    def artifact_event(self, name, filename, metadata=None, content_type=None):
        if not self.driver_records:
            return
        self._release_held()
        self._post(ARTIFACT, FileEvent(filename=os.path.basename(filename), content=_read(filename), name=name,
                                       metadata=metadata, content_type=content_type))

    def completed_event(self, stop_time, result):
        self.final = Final("completed", stop_time, result=result)

    def interrupted_event(self, interrupt_time, status):
        self.final = Final("interrupted", interrupt_time, status=status)

    def failed_event(self, fail_time, fail_trace):
        self.final = Final("failed", fail_time, fail_trace=fail_trace)

    def end(self, outcome: RunEnd) -> RunEnd:
        """``outcome`` completed with what the driver still needs after the posted events: the
        run's final event, a held-back heartbeat, and how many events were posted before."""
        held, self._held = self._held, None
        outcome.final, outcome.heartbeat, outcome.posted = self.final, held, self.posted
        outcome.run_id = self.run_id
        return outcome

    def flush(self, end: Optional[RunEnd] = None) -> None:
        """Send the held heartbeat (and ``end``, the run's end), then wait until the driver
        holds everything sent so far."""
        self._release_held()
        if end is not None:
            self.link.send(self.token, END, self.end(end))
        try:
            self.link.ask(self.token, SYNC, None)
        except ObserverStartError:  # the driver is gone: nothing left to wait for
            pass

    def __eq__(self, other):
        return isinstance(other, RayObserver) and other.token == self.token

    __hash__ = object.__hash__
