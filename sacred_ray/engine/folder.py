"""The sweep folder: the resolved spec, a ledger of finished trials, summary.csv, best.yaml."""

from __future__ import annotations

import csv
import datetime
import fcntl
import json
import os
import shutil
import time
from typing import Any, Optional

import yaml

from ..records import append_lines, read_jsonl, redact_all
from ..spec import SpecError

LEDGER = "ledger.jsonl"
SYNC_SECONDS = 1.0  # the ledger is synced to disk at most this often


def jsonable(value: Any) -> Any:
    """Plain JSON types for a trial's result (numpy scalars, tuples ...), else its repr. inf,
    -inf and NaN stay floats: Python's json writes and reads them back (Infinity, NaN), and
    YAML as .inf / .nan, so best.yaml gives Sacred the float the run had, not a string."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return repr(value)


def trial_line(t) -> dict:
    """A trial as trials.jsonl lists it."""
    return {"index": t.index, "key": t.key, "variant": t.variant, "values": jsonable(t.values)}


MARKER = ".sacred-ray-sweep"  # in every folder this tool made: only such a folder is moved aside or reused
_EARLIER_SPEC_HEADER = "# the sweep as run:"  # spec.yaml of a sweep folder made before the marker existed


def is_sweep_folder(path: str) -> bool:
    """Whether ``path`` is a sweep folder that sacred-ray made (now or in an earlier version)."""
    if os.path.isfile(os.path.join(path, MARKER)):
        return True
    try:
        with open(os.path.join(path, "spec.yaml"), encoding="utf-8") as f:
            return f.readline().startswith(_EARLIER_SPEC_HEADER) and os.path.exists(os.path.join(path, LEDGER))
    except (OSError, UnicodeDecodeError):
        return False


def check_folder(path: str, source: str, where: str) -> None:
    """Refuse, before anything starts, a sweep folder that would write into or move a folder
    this tool did not make (``dir: .``, ``/etc``, a home folder), a path that is a file, or
    one that cannot be created or written."""
    path = os.path.abspath(path)
    fix = f"choose a new or empty folder with {where.split(':')[0]}: dir (or another name)"
    if os.path.isdir(path):
        try:
            entries = os.listdir(path)
        except OSError as e:
            raise SpecError(source, where, f"cannot read {path} ({e.strerror}); {fix}") from None
        if entries and not is_sweep_folder(path):
            raise SpecError(source, where, f"{path} holds files that are not a sweep's; sacred-ray writes into "
                                           f"(and moves aside) only folders it made; {fix}")
    check_writable(path, source, where, fix)


def check_writable(path: str, source: str, where: str, fix: str) -> None:
    """Refuse a folder that is a file, or that cannot be written or created."""
    path = os.path.abspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise SpecError(source, where, f"{path} is a file, not a folder; {fix}")
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise SpecError(source, where, f"cannot write in {path} (permission denied); {fix}")
        return
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise SpecError(source, where, f"cannot create {path}: {parent} is a file; {fix}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError(source, where, f"cannot create {path}: {parent} is not writable; {fix}")


class FolderInUse(SpecError):
    """The sweep folder is locked by a running sweep's driver."""


def _lock(marker: str) -> int:
    """An open, exclusively locked descriptor of a sweep folder's marker; a sweep that is
    still running holds it, and a second one is refused in one line."""
    fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 4096).decode("utf-8", "replace").rpartition("pid ")[2].strip()
        os.close(fd)
        raise FolderInUse("sweep folder", os.path.dirname(marker),
                        f"is in use by another sweep that is still running{f' (pid {holder})' if holder else ''}; "
                        f"wait for it to end, or give this sweep another name") from None
    return fd


class SweepFolder:
    """``sweeps/<name>/`` by default; see ``check_folder`` for what it refuses. A fresh (not
    resumed) sweep moves an older sweep's folder aside."""

    def __init__(self, path: str, resume: bool = False):
        self.path = os.path.abspath(path)
        self.moved_aside: Optional[str] = None
        self.existed = os.path.exists(os.path.join(self.path, LEDGER))
        self.made = not os.path.isdir(self.path)  # by this sweep (``abandon`` removes it again)
        if os.path.isdir(self.path) and os.listdir(self.path) and not is_sweep_folder(self.path):
            raise SpecError("sweep folder", self.path, "holds files that are not a sweep's; it is left as it is")
        earlier = _lock(self.file(MARKER)) if os.path.isdir(self.path) else None  # refused while another sweep runs
        try:
            if not resume and self.existed:
                stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
                self.moved_aside = f"{self.path}.{stamp}"
                os.rename(self.path, self.moved_aside)
            os.makedirs(self.path, exist_ok=True)
            # the folder's own lock is kept; a folder made anew gets one of its own
            self._lock = _lock(self.file(MARKER)) if earlier is None or self.moved_aside else earlier
        except BaseException:
            if earlier is not None:
                os.close(earlier)
            self._lock = None
            self.abandon()
            raise
        if earlier is not None and self.moved_aside:
            os.close(earlier)  # the moved folder's lock: its sweep is over
        try:
            self._mark()
        except OSError:
            self.abandon()
            raise
        self._ledger = None  # opened on the first record
        self.write_error: Optional[str] = None  # the first write that failed (a full disk), if any
        self._synced = 0.0

    def _mark(self) -> None:
        os.ftruncate(self._lock, 0)
        os.write(self._lock, f"made by sacred-ray: a sweep's folder (moved aside or reused by later sweeps of this "
                             f"name); in use by pid {os.getpid()}\n".encode())

    def abandon(self) -> None:
        """Undo the opening of a sweep that could not write its first files (a full disk):
        the folder it made is removed and an earlier sweep it moved aside is put back, so
        nothing is left as if a sweep had started."""
        if getattr(self, "_lock", None) is not None:
            os.close(self._lock)
            self._lock = None
        if self.made or self.moved_aside:
            shutil.rmtree(self.path, ignore_errors=True)
        if self.moved_aside and not os.path.exists(self.path):
            try:
                os.rename(self.moved_aside, self.path)
                self.moved_aside = None
            except OSError:
                pass

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def write_spec(self, command: list, spec_path: Optional[str], raw: dict, trials: list,
                   recorded_by: Optional[dict] = None, name: Optional[str] = None,
                   sources: Optional[dict] = None, sweep_id: Optional[str] = None) -> None:
        """``recorded_by``: where the observers put the runs ({"file_storage": [folders],
        "mongo_db": address without credentials}), so the sweep can be loaded back from them;
        ``sweep_id``: the id its runs carry in meta.sweep.id, so only they are."""
        header = {"command": command, "spec_file": spec_path, "name": name, "id": sweep_id, "trials": len(trials),
                  "recorded_by": recorded_by or {}, "sources": sources or {}}
        name = "spec.yaml"
        try:
            with open(self.file(name), "w", encoding="utf-8") as f:
                f.write("# the sweep as run: the command line, then the spec it read\n")
                yaml.safe_dump(header, f, sort_keys=False)
                yaml.safe_dump({"spec": redact_all(raw)}, f, sort_keys=False)  # no credential of a storage URI
            name = "trials.jsonl"
            with open(self.file(name), "w", encoding="utf-8") as f:
                for t in trials:
                    f.write(json.dumps(trial_line(t)) + "\n")
        except OSError as e:  # a full disk: the file it was writing, for the one line that says so
            raise OSError(e.errno, e.strerror, self.file(name)) from None

    def record(self, entry: dict) -> bool:
        """Append one finished trial attempt as it ends; False if it could not be written
        (``write_error`` says why, and nothing more is written to the ledger).

        Each line reaches the OS at once, so a killed driver loses nothing; it is synced
        to disk at most once a second (and at the end), so thousands of short trials do
        not wait on the disk one by one."""
        if self.write_error is not None:
            return False
        try:
            if self._ledger is None:
                self._ledger = append_lines(self.file(LEDGER))
            self._ledger.write(json.dumps(jsonable(entry)) + "\n")
            self._ledger.flush()
            if time.monotonic() - self._synced >= SYNC_SECONDS:
                os.fsync(self._ledger.fileno())
                self._synced = time.monotonic()
        except OSError as e:  # a full disk: the caller stops the sweep and says so
            self._failed(LEDGER, e)
            return False
        return True

    def _failed(self, name: str, error: OSError) -> None:
        if self.write_error is None:
            self.write_error = f"cannot write {self.file(name)}: {error.strerror or error}"
        if name != LEDGER and os.path.exists(self.file(name)):
            try:
                os.remove(self.file(name))  # not a file cut short
            except OSError:
                pass
        if name == LEDGER and self._ledger is not None:
            try:
                self._ledger.close()
            except OSError:
                pass  # what it still held is lost with the disk's space
            self._ledger = None

    def read_numbers(self) -> dict:
        """Trial key -> the number an earlier run of this sweep gave it (trials.jsonl, ledger)."""
        numbers = {e.get("key"): e.get("index") for e in read_jsonl(self.file("trials.jsonl"))}
        for entry in self.read_ledger():
            numbers.setdefault(entry.get("key"), entry.get("index"))
        return {k: i for k, i in numbers.items() if isinstance(i, int)}

    def read_ledger(self, say_torn: bool = False) -> list:
        """The ledger's trial lines (without the control actions it also records). A line a
        killed driver left cut short is skipped; with ``say_torn`` it is said on the screen."""
        torn: list = []
        entries = [e for e in read_jsonl(self.file(LEDGER), torn) if "control" not in e]
        if say_torn:
            for number in torn:
                print(f"{os.path.relpath(self.file(LEDGER))}: line {number} was cut short (a driver stopped while "
                      f"writing it); skipped it")
        return entries

    def add_trials(self, trials: list) -> None:
        """Trials handed to the running sweep: appended to trials.jsonl with their numbers."""
        try:
            with append_lines(self.file("trials.jsonl")) as f:
                for t in trials:
                    f.write(json.dumps(trial_line(t)) + "\n")
        except OSError as e:
            self._failed("trials.jsonl", e)

    def write_summary(self, headers: list, rows: list) -> None:
        self.write_csv("summary.csv", headers, rows)

    def write_csv(self, name: str, headers: list, rows: list) -> None:
        try:
            with open(self.file(name), "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(headers)
                for row in rows:
                    writer.writerow([json.dumps(jsonable(c)) if isinstance(c, (list, dict)) else jsonable(c)
                                     for c in row])
        except OSError as e:
            self._failed(name, e)

    def write_best(self, config: dict, comment: str) -> None:
        try:
            with open(self.file("best.yaml"), "w", encoding="utf-8") as f:
                f.write(f"# {comment}\n")
                yaml.safe_dump(jsonable(config), f, sort_keys=False)
        except OSError as e:
            self._failed("best.yaml", e)

    def close(self) -> None:
        if self._ledger is not None:
            try:
                os.fsync(self._ledger.fileno())
                self._ledger.close()
            except OSError as e:
                self._failed(LEDGER, e)
            self._ledger = None
        if self._lock is not None:
            os.close(self._lock)  # and with it the lock: another sweep of this name may start
            self._lock = None
