"""A sweep as a pandas DataFrame, read back from what its observers recorded.

    df = sacred_ray.load_sweep("sweeps/digits-grid")                     # a sweep run here
    df = sacred_ray.load_sweep("mongodb://host:27017/sweeps", "digits-grid")  # from anywhere
    curves = sacred_ray.load_metrics("sweeps/digits-grid", "val_loss")

One row per trial (its last attempt, or its last Sacred run for a Tune trial): ``trial``,
``variant``, every config key the sweep set that differs between trials (dotted names, as
in the sweep file; ``named_configs`` when trials differ in them), ``status``, ``result``,
the last value of each metric logged with ``_run.log_scalar``, ``duration_s``, ``node``,
``run_id`` and ``attempts``. Runs are found by ``meta.sweep.name``, in the file storage
folders the sweep recorded to (its ``spec.yaml`` says which) or in a MongoDB database, so the
frame is the same whichever observer recorded the sweep. Works for ``ray_sweep`` and
``tune_with`` sweeps alike.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import warnings
from typing import Any, Optional

from .records import MONGO_SCHEMES, file_run, file_runs, object_id, read_json, read_jsonl, read_spec_header, scrub
from .spec import SpecError


def load_sweep(source: str, name: Optional[str] = None, sweep_id: Optional[str] = None):
    """The sweep ``name`` as a DataFrame (see the module docstring).

    ``source`` is a sweep folder (``sweeps/<name>``; ``name`` is then optional), or a MongoDB
    address as ``-m`` takes it (``mongodb://...`` or ``host:port:db``) with the sweep's name.
    Only the runs of that one sweep are read: a folder's own (its spec.yaml has the sweep's id),
    or in MongoDB the newest sweep of the name, or the one ``sweep_id`` names (a warning says
    when the database holds several). Raises SpecError (one line) for a missing folder, a bad
    or unreachable database address, or a name with no runs. ``frame.attrs`` names the
    ``params`` and ``metrics`` columns."""
    return Sweep.load(source, name, sweep_id=sweep_id).frame()


def load_metrics(source: str, metric: str, name: Optional[str] = None, sweep_id: Optional[str] = None):
    """Every value of ``metric`` each trial's run logged, in long form: trial, run_id, step, value."""
    return Sweep.load(source, name, sweep_id=sweep_id).metrics(metric)


class Sweep:
    """A sweep's runs as its observers recorded them, read once: ``frame()`` and ``metrics(name)``."""

    def __init__(self, runs: list, metrics_of):
        self.latest = _latest_per_trial(runs)
        self._metrics_of = metrics_of
        self._series = {}

    @classmethod
    def load(cls, source: str, name: Optional[str] = None, mongo: Optional[str] = None,
             sweep_id: Optional[str] = None) -> Sweep:
        """``mongo``: the database's full address, for a sweep folder whose runs are there (its
        spec.yaml keeps the address without credentials)."""
        if os.path.isdir(source):
            return cls(*_from_folder(source, name, mongo))
        if not is_mongo_address(source):
            raise SpecError(source, "", "no such sweep folder; give sweeps/<name>, or a MongoDB address "
                                        "(mongodb://HOST/DB or HOST:PORT:DB) and the sweep's name")
        return cls(*_from_mongo(source, name, sweep_id))

    def series(self, run: dict) -> dict:
        if run["_id"] not in self._series:
            self._series[run["_id"]] = self._metrics_of(run)
        return self._series[run["_id"]]

    def frame(self):
        return _frame(self.latest, self.series)

    def metrics(self, metric: str):
        import pandas as pd

        rows = []
        for run in self.latest:
            series = self.series(run).get(metric) or {}
            for step, value in zip(series.get("steps", []), series.get("values", [])):
                rows.append({"trial": _trial(run), "run_id": run["_id"], "step": step, "value": value})
        return pd.DataFrame(rows, columns=["trial", "run_id", "step", "value"])


# -- where the runs are ------------------------------------------------------------
def _from_folder(folder: str, name: Optional[str], mongo: Optional[str] = None) -> tuple:
    header = spec_header(folder)
    name = name or header.get("name") or os.path.basename(os.path.abspath(folder))
    sweep_id = header.get("id")  # None for a sweep begun before sweeps had ids: its name alone then
    recorded = header.get("recorded_by") or {}
    runs: list = []
    for base in recorded.get("file_storage") or []:
        runs += file_runs(base, name, sweep_id)
    if not runs and recorded.get("mongo_db") and mongo:
        from .records import mongo_uri

        db = database(mongo, mongo_uri)
        skipped = _skipped(folder, name, lambda run_id: db.runs.find_one({"_id": run_id}))
        try:
            runs, metrics_of = _from_mongo(mongo, name, sweep_id, quiet=True)
        except SpecError:
            if not skipped:
                raise
            runs, metrics_of = [], _mongo_metrics(db)
        return runs + skipped, metrics_of
    runs += _skipped(folder, name)
    if not runs and recorded.get("mongo_db"):
        raise SpecError(folder, "", f"the runs of {name!r} are in MongoDB ({recorded['mongo_db']}); "
                                    f"load them with load_sweep(MONGO_URL, {name!r})")
    if not runs:
        raise SpecError(folder, "", f"no observer recorded the runs of {name!r}; run the sweep with -F or -m "
                                    f"(its summary.csv holds what the driver saw)")
    return runs, lambda run: read_json(os.path.join(run["_folder"], "metrics.json")) if "_folder" in run else {}


def _skipped(folder: str, name: str, fetch=None) -> list:
    """The trials a --skip-done sweep did not run, as the earlier runs that hold them, under this
    sweep's trial numbers and config columns: status SKIPPED, ``_done_in`` where that run is."""
    latest = {e["key"]: e for e in read_jsonl(os.path.join(folder, "ledger.jsonl")) if "key" in e}
    trials = None
    out = []
    for key, entry in latest.items():
        done_in = entry.get("done_in")
        if entry.get("status") != "SKIPPED" or not isinstance(done_in, dict):
            continue
        if trials is None:
            trials = {t.get("key"): t for t in read_jsonl(os.path.join(folder, "trials.jsonl"))}
        run = file_run(done_in["folder"]) if done_in.get("folder") else None
        if run is None and fetch is not None and not done_in.get("folder"):
            run = fetch(done_in.get("run_id"))
        run = dict(run or {"_id": entry.get("run_id"), "config": entry.get("config") or {},
                           "result": entry.get("result")})
        values = (trials.get(key) or {}).get("values") or {}
        meta = dict(run.get("meta") or {})
        meta["sweep"] = {"name": name, "trial": entry.get("index"), "key": key, "variant": entry.get("variant")}
        meta["config_updates"] = {k: v for k, v in values.items() if not k.startswith("+")}
        run.update(meta=meta, status="SKIPPED", _done_in=done_in.get("where"))
        out.append(run)
    return out


def spec_header(folder: str) -> dict:
    """The header of a sweep folder's spec.yaml (command, spec file, name, where runs are, the spec);
    SpecError for a folder that is not a sweep's."""
    header = read_spec_header(folder)
    if "command" not in header:
        raise SpecError(folder, "", "is not a sweep folder (no spec.yaml of sacred-ray); give sweeps/<name>")
    return header


def _from_mongo(address: str, name: Optional[str], sweep_id: Optional[str] = None, quiet: bool = False) -> tuple:
    """The runs of the sweep ``name`` in the database: of ``sweep_id``, else of the newest sweep
    of that name (by its runs' start), warning that there are others unless ``quiet``."""
    from .records import mongo_uri, redact

    if not name:
        raise SpecError(redact(address), "", "give the sweep's name too: load_sweep(MONGO_URL, 'my-sweep')")
    db = database(address, mongo_uri)
    query = {"meta.sweep.name": name, **({"meta.sweep.id": sweep_id} if sweep_id else {})}
    try:
        runs = list(db.runs.find(query))
    except Exception as e:
        raise SpecError(redact(address), "", f"cannot reach MongoDB ({e.__class__.__name__}); start the server or "
                                             f"fix the address") from None
    if not runs:
        what = f"of the sweep {sweep_id!r} " if sweep_id else ""
        raise SpecError(redact(address), name, f"no runs {what}of a sweep of this name in this database")
    newest, runs, others = newest_sweep(runs)
    if others and not quiet:
        warnings.warn(f"{redact(address)}: {len(others) + 1} sweeps named {name!r}; read the newest (id {newest}); "
                      f"for another give its id (sweep_id=, or --sweep-id): {', '.join(map(str, others))}",
                      stacklevel=4)
    return runs, _mongo_metrics(db)


def newest_sweep(runs: list) -> tuple:
    """(id, runs, the other ids) of the newest sweep among ``runs`` of one name, by ``meta.sweep.id``
    (None: runs of a sweep begun before ids), newest by its runs' latest start."""
    sweeps: dict = {}
    for run in runs:
        sweeps.setdefault(((run.get("meta") or {}).get("sweep") or {}).get("id"), []).append(run)
    newest = max(sweeps, key=lambda i: max(str(r.get("start_time") or "") for r in sweeps[i]))
    return newest, sweeps[newest], [i for i in sweeps if i != newest]


def _mongo_metrics(db):
    def metrics_of(run: dict) -> dict:
        ids = [m["id"] for m in (run.get("info") or {}).get("metrics", []) if "id" in m]
        return {m["name"]: m for m in db.metrics.find({"_id": {"$in": [object_id(i) for i in ids]}})}

    return metrics_of


def is_mongo_address(source: str) -> bool:
    """Whether ``source`` is meant as a MongoDB address (a URL, or ``[HOST:PORT:]DB`` as -m
    takes it) rather than a folder path: bad addresses of either form are then said as such."""
    return source.startswith(MONGO_SCHEMES) or ":" in source or (os.sep not in source and not source.startswith((".", "~")))


def database(address: str, mongo_uri):
    """The database at ``address`` (as -m takes it); SpecError naming it when it is no address
    pymongo can use or a name MongoDB refuses. (Reaching the server is tried on first use.)"""
    import pymongo
    from pymongo.errors import ConfigurationError, InvalidName

    from .records import redact

    shown = redact(address)
    example = "use mongodb://HOST:PORT/DB or HOST:PORT:DB (e.g. localhost:27017:sweeps)"
    try:
        uri = mongo_uri(address)
    except SpecError as e:  # -m's own words, said of this address
        raise SpecError(shown, "", f"{e.message.rstrip('.')}; {example}") from None
    try:
        if uri is not None:
            return pymongo.MongoClient(uri["url"], serverSelectionTimeoutMS=5000)[uri["db_name"]]
        match = re.match(MONGO_PATTERN, address)
        if match is None:
            raise SpecError(shown, "", f"is not a MongoDB address; {example}")
        host, port = match.group("host") or "localhost", int(match.group("port") or 27017)
        return pymongo.MongoClient(host, port, serverSelectionTimeoutMS=5000)[match.group("db")]
    except SpecError:
        raise
    except (InvalidName, ConfigurationError, ValueError, TypeError) as e:
        raise SpecError(shown, "", f"MongoDB refuses it: {scrub(str(e), address)}; {example}") from None


# [HOST:PORT:]DB[.COLLECTION], as Sacred's -m takes it (DB: the characters MongoDB allows in a name)
MONGO_PATTERN = r"^(?:(?P<host>[^:/\s]+):(?P<port>\d+):)?(?P<db>[^:/\\. \"$]+)(?:\.[^:]+)?$"


# -- one row per trial ------------------------------------------------------------------
def _trial(run: dict) -> Any:
    sweep = (run.get("meta") or {}).get("sweep") or {}
    return sweep.get("trial")


def _latest_per_trial(runs: list) -> list:
    by_trial: dict = {}
    for run in sorted(runs, key=lambda r: (str(r.get("start_time")), str(r["_id"]))):
        sweep = (run.get("meta") or {}).get("sweep") or {}
        key = sweep.get("key")
        by_trial.setdefault(key, []).append(run)
    latest = []
    for group in by_trial.values():
        run = dict(group[-1])
        run["_attempts"] = len(group)
        latest.append(run)
    return sorted(latest, key=lambda r: (str(type(_trial(r))), _trial(r) if _trial(r) is not None else ""))


def _dotted(value: Any, prefix: str = "") -> dict:
    if not isinstance(value, dict) or not value:
        return {prefix: value} if prefix else {}
    out: dict = {}
    for k, v in value.items():
        out.update(_dotted(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _frame(latest: list, metrics_of):
    import pandas as pd

    swept = [_dotted((r.get("meta") or {}).get("config_updates") or {}) for r in latest]
    keys = _varying(swept)
    named = [tuple((r.get("meta") or {}).get("named_configs") or ()) for r in latest]
    rows, metrics = [], {}
    for run, values, names in zip(latest, swept, named):
        sweep = (run.get("meta") or {}).get("sweep") or {}
        row = {"trial": sweep.get("trial"), "variant": sweep.get("variant")}
        row.update({k: values.get(k) for k in keys})
        if len(set(named)) > 1:
            row["named_configs"] = ", ".join(names)
        row.update(status=run.get("status"), result=run.get("result"), duration_s=_duration(run),
                   node=((run.get("info") or {}).get("ray") or {}).get("node_ip"), run_id=run["_id"],
                   attempts=run["_attempts"], error=_why(run))
        if run.get("_done_in"):
            row["done_in"] = run["_done_in"]
        for metric, series in sorted(metrics_of(run).items()):
            if series.get("values"):
                column = metric if metric not in row else f"metric:{metric}"
                row[column] = series["values"][-1]
                metrics[column] = None
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs.update(params=keys + (["named_configs"] if len(set(named)) > 1 else []), metrics=list(metrics))
    return frame


def _why(run: dict) -> Optional[str]:
    """Why a run did not complete: its traceback's last line, or the stop reason recorded."""
    trace = run.get("fail_trace")
    if trace:
        lines = "".join(trace if isinstance(trace, list) else [str(trace)]).strip().splitlines()
        return lines[-1] if lines else None
    info = run.get("info") or {}
    return (info.get("sacred_ray") or {}).get("stop_reason")


def _varying(dicts: list) -> list:
    order: dict = {}
    for d in dicts:
        order.update(dict.fromkeys(d))
    # sorted: file storage writes run.json with sorted keys, MongoDB keeps the order given
    return sorted(k for k in order if len({json.dumps(d.get(k), sort_keys=True, default=str) for d in dicts}) > 1)


def _duration(run: dict) -> Optional[float]:
    start, stop = run.get("start_time"), run.get("stop_time")
    try:
        start, stop = (v if isinstance(v, datetime.datetime) else datetime.datetime.fromisoformat(str(v))
                       for v in (start, stop))
    except (TypeError, ValueError):
        return None
    return round((stop - start).total_seconds(), 3)


__all__ = ["Sweep", "load_metrics", "load_sweep", "spec_header"]
