"""The sweep folder: the resolved spec, a ledger of finished trials, summary.csv, best.yaml."""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import time
from typing import Any, Optional

import yaml

LEDGER = "ledger.jsonl"
SYNC_SECONDS = 1.0  # the ledger is synced to disk at most this often


def jsonable(value: Any) -> Any:
    """Plain JSON types for a trial's result (numpy scalars, tuples ...), else its repr."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
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


class SweepFolder:
    """``sweeps/<name>/`` by default. A fresh (not resumed) sweep moves an older one aside."""

    def __init__(self, path: str, resume: bool = False):
        self.path = os.path.abspath(path)
        self.moved_aside: Optional[str] = None
        if not resume and os.path.exists(os.path.join(self.path, LEDGER)):
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            self.moved_aside = f"{self.path}.{stamp}"
            os.rename(self.path, self.moved_aside)
        os.makedirs(self.path, exist_ok=True)
        self._ledger = None  # opened on the first record
        self._synced = 0.0

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def write_spec(self, command: list, spec_path: Optional[str], raw: dict, trials: list) -> None:
        header = {"command": command, "spec_file": spec_path, "trials": len(trials)}
        with open(self.file("spec.yaml"), "w", encoding="utf-8") as f:
            f.write("# the sweep as run: the command line, then the spec it read\n")
            yaml.safe_dump(header, f, sort_keys=False)
            yaml.safe_dump({"spec": raw}, f, sort_keys=False)
        with open(self.file("trials.jsonl"), "w", encoding="utf-8") as f:
            for t in trials:
                f.write(json.dumps({"index": t.index, "key": t.key, "variant": t.variant,
                                    "values": jsonable(t.values)}) + "\n")

    def record(self, entry: dict) -> None:
        """Append one finished trial attempt as it ends.

        Each line reaches the OS at once, so a killed driver loses nothing; it is synced
        to disk at most once a second (and at the end), so thousands of short trials do
        not wait on the disk one by one."""
        if self._ledger is None:
            self._ledger = open(self.file(LEDGER), "a", encoding="utf-8")
        self._ledger.write(json.dumps(jsonable(entry)) + "\n")
        self._ledger.flush()
        if time.monotonic() - self._synced >= SYNC_SECONDS:
            os.fsync(self._ledger.fileno())
            self._synced = time.monotonic()

    def read_ledger(self) -> list:
        path = self.file(LEDGER)
        if not os.path.exists(path):
            return []
        entries = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        entries.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue  # a line cut short by a crash
        return entries

    def write_summary(self, headers: list, rows: list) -> None:
        with open(self.file("summary.csv"), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(headers)
            for row in rows:
                writer.writerow([json.dumps(jsonable(c)) if isinstance(c, (list, dict)) else jsonable(c) for c in row])

    def write_best(self, config: dict, comment: str) -> None:
        with open(self.file("best.yaml"), "w", encoding="utf-8") as f:
            f.write(f"# {comment}\n")
            yaml.safe_dump(jsonable(config), f, sort_keys=False)

    def close(self) -> None:
        if self._ledger is not None:
            os.fsync(self._ledger.fileno())
            self._ledger.close()
            self._ledger = None
