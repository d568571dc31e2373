"""A running sweep seen and steered from elsewhere: two files beside its ledger.

``status.json`` is what ``sweep_status`` shows: counts by status, the running trials, the
best so far, the failed ones, the driver's pid, host and last sign of life. The driver
keeps it from the events it already handles (what each of them changes, never a re-read
of the records) and rewrites it at most once a second, atomically.

``control.jsonl`` is how ``sweep_cancel``, ``sweep_pause``, ``sweep_continue`` and the same
command given again with a widened grid reach the driver: one JSON request a line,
appended. The driver reads what was appended since it last looked (one ``stat`` every
half second), acts, records the action in the ledger and acknowledges it in
``status.json``. The file is made by the driver readable and writable by its owner alone,
so only someone who may write the sweep's folder as its owner steers it.

Both commands' drivers use one ``Beacon`` (see ``Runs``, which tells it what every run does).
"""

from __future__ import annotations

import collections
import getpass
import json
import os
import socket
import time
import uuid
from typing import Any, Optional

from .results import TrialResult, score

STATUS = "status.json"
CONTROL = "control.jsonl"
ACTIONS = ("cancel", "cancel_trials", "pause", "continue", "add")
WRITE_SECONDS = 1.0  # status.json is rewritten at most this often (and at once after an action)
POLL_SECONDS = 0.5  # control.jsonl is looked at this often
KEEP_FAILED = 20  # the failed trials status.json lists (the newest)
KEEP_ACTED = 50  # the actions it acknowledges (the newest)


def who() -> str:
    """Who asks, as the ledger records it: user@host, pid."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}, pid {os.getpid()}"


def request(action: str, **fields: Any) -> dict:
    """A control request as ``control.jsonl`` holds it."""
    return {"id": uuid.uuid4().hex[:12], "action": action, "by": who(), "at": time.time(), **fields}


def last_line(text: Optional[str]) -> Optional[str]:
    """The last non-empty line of an error (a traceback's exception line)."""
    if not text:
        return text
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def read_status(folder: str) -> Optional[dict]:
    """The sweep's status.json, or None (a sweep made before it existed, or not started yet)."""
    try:
        with open(os.path.join(folder, STATUS), encoding="utf-8") as f:
            status = json.load(f)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


class NotHeard(Exception):
    """The driver did not acknowledge a request in time."""


def send(folder: str, req: dict, wait: float = 15.0) -> Optional[str]:
    """Append ``req`` to the sweep's control.jsonl; return the driver's outcome, or None when
    ``wait`` is 0. Raises PermissionError when this user may not steer the sweep, NotHeard
    when its driver did not answer within ``wait`` seconds (the request stays: a driver that
    is busy takes it when it next looks)."""
    path = os.path.join(folder, CONTROL)
    line = (json.dumps(req) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)  # made by the driver, for its owner alone
    try:
        os.write(fd, line)  # one write of one line: appends from several shells do not interleave
    finally:
        os.close(fd)
    deadline = time.monotonic() + wait
    while wait:
        status = read_status(folder) or {}
        for acted in status.get("acted") or []:
            if acted.get("id") == req["id"]:
                return acted.get("outcome")
        if time.monotonic() > deadline:
            raise NotHeard(f"the sweep's driver did not answer within {wait:g}s")
        time.sleep(0.1)
    return None


class Beacon:
    """The driver's side of the two files (see the module docstring)."""

    def __init__(self, folder: str, name: str, command: str, metric: str, mode: str, total: Optional[int],
                 earlier: list = ()):
        """``earlier``: the ledger lines of an earlier sweep of this name (--resume), counted as they ended."""
        self.folder = folder
        self.name, self.command = name, command
        self.metric, self.mode = metric, mode
        self.total = total
        self.state = "running"  # running, paused, stopping, ended
        self.paused_by: Optional[str] = None
        self.stopping: Optional[str] = None
        self.ended: Optional[dict] = None
        self.latest: dict = {}  # trial key -> status of its latest finished run
        self.counts: collections.Counter = collections.Counter()
        self.best: Optional[dict] = None
        self.failed: collections.deque = collections.deque(maxlen=KEEP_FAILED)
        self.acted: collections.deque = collections.deque(maxlen=KEEP_ACTED)
        self.running: dict = {}  # Run -> when it started (wall clock)
        self.started = time.time()
        self.finished_here = 0  # runs this driver ended (the time-left estimate's rate)
        self._written = 0.0
        self._polled = 0.0
        self._offset = 0
        self._size = -1
        self.mailbox = None  # an engine.mailbox.DriverMailbox: the same status and requests on the Ray cluster
        for entry in earlier:
            if "key" in entry and not entry.get("retrying"):
                self._count(entry["key"], entry.get("status") or "FAILED")
        self._open_control()

    # -- what the runs tell it ----------------------------------------------------------
    def run_started(self, run) -> None:
        self.running[run] = time.time()

    def run_ended(self, run) -> None:
        self.running.pop(run, None)

    def result(self, result: TrialResult, retrying: bool = False) -> None:
        """A trial's run ended (its ledger line was written)."""
        if retrying:
            return
        self.finished_here += 1
        self._count(result.trial.key, result.status)
        label = result.label
        if result.status == "COMPLETED":
            value = score(result, self.metric)
            if value is not None and (self.best is None or (value > self.best["value"] if self.mode == "max"
                                                            else value < self.best["value"])):
                self.best = {"trial": label, "run_id": result.run_id, "metric": self.metric, "value": value}
        elif result.status in ("FAILED", "TIMEOUT"):
            self.failed.append({"trial": label, "run_id": result.run_id, "status": result.status,
                                "error": last_line(result.error)})

    def skipped(self, results: list) -> None:
        """Trials an earlier run holds (--skip-done): counted as SKIPPED, never run here."""
        for r in results:
            self._count(r.trial.key, r.status)

    def _count(self, key: str, status: str) -> None:
        earlier = self.latest.get(key)
        if earlier is not None:
            self.counts[earlier] -= 1
        self.latest[key] = status
        self.counts[status] += 1

    def grew(self, added: int) -> None:
        if self.total is not None:
            self.total += added

    # -- the status file ------------------------------------------------------------------
    def snapshot(self) -> dict:
        now = time.time()
        running = []
        for run, began in self.running.items():
            value = run.recorder.metrics.get(self.metric) if self.metric != "result" else None
            running.append({"trial": run.trial_id if run.trial_id is not None else run.trial.index,
                            "run_id": run.recorder.run_id, "node": (run.worker or {}).get("node_ip"),
                            "started": began, "last": {self.metric: value} if value is not None else {}})
        done = sum(n for status, n in self.counts.items() if n > 0)
        left = None
        if self.total is not None and self.finished_here and self.state != "ended":
            rate = self.finished_here / max(now - self.started, 1e-9)
            left = max(self.total - done, 0) / rate
        return {
            "name": self.name, "command": self.command, "folder": self.folder, "state": self.state,
            "paused_by": self.paused_by, "stopping": self.stopping, "ended": self.ended,
            "driver": {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started, "alive_at": now},
            "total": self.total, "done": done, "counts": {s: n for s, n in self.counts.items() if n > 0},
            "running": sorted(running, key=lambda r: str(r["trial"])), "best": self.best,
            "failed": list(self.failed), "left_seconds": left, "acted": list(self.acted),
        }

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < WRITE_SECONDS:
            return
        self._written = now
        path = os.path.join(self.folder, STATUS)
        temporary = f"{path}.{os.getpid()}.tmp"
        status = _plain(self.snapshot())
        if self.mailbox is not None:
            self.mailbox.publish(status)
        try:
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(status, f)
            os.replace(temporary, path)  # a reader never sees half of it
        except OSError:  # a full disk: the sweep goes on, its status is older
            try:
                os.remove(temporary)
            except OSError:
                pass

    # -- the control file -----------------------------------------------------------------
    def _open_control(self) -> None:
        """Make control.jsonl (owner only) and start reading after what it already holds: the
        requests of an earlier driver of this sweep were its own."""
        path = os.path.join(self.folder, CONTROL)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.close(fd)
            self._offset = os.path.getsize(path)
        except OSError:
            self._offset = 0

    def poll(self, force: bool = False) -> list:
        """The requests appended since the last look (at most every POLL_SECONDS), and those
        sent through the cluster."""
        now = time.monotonic()
        if not force and now - self._polled < POLL_SECONDS:
            return []
        self._polled = now
        sent = self.mailbox.requests() if self.mailbox is not None else []
        return [req for req in self._appended() + sent
                if isinstance(req, dict) and req.get("action") in ACTIONS and isinstance(req.get("id"), str)]

    def _appended(self) -> list:
        path = os.path.join(self.folder, CONTROL)
        try:
            size = os.stat(path).st_size
            if size <= self._offset:
                return []
            with open(path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read(size - self._offset)
        except OSError:
            return []
        complete = chunk.rfind(b"\n") + 1  # a line still being written waits for the next look
        self._offset += complete
        out = []
        for line in chunk[:complete].splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def did(self, req: dict, outcome: str) -> dict:
        """Acknowledge a request (in status.json, at once); return its ledger line."""
        self.acted.append({"id": req["id"], "action": req["action"], "by": req.get("by"), "outcome": outcome,
                           "at": time.time()})
        self.write(force=True)
        return {"control": req["action"], "id": req["id"], "by": req.get("by"), "at": req.get("at"),
                "trials": req.get("trials"), "outcome": outcome, "time": time.time()}

    def close(self, how: str) -> None:
        self.state = "ended"
        self.ended = {"how": how, "at": time.time()}
        self.running.clear()
        self.write(force=True)


def _plain(value: Any) -> Any:
    """JSON's own types (a metric may be a numpy scalar; inf is written as null)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _plain(item())
        except (TypeError, ValueError):
            pass
    return repr(value)


__all__ = ["ACTIONS", "Beacon", "CONTROL", "NotHeard", "STATUS", "last_line", "read_status", "request", "send", "who"]
