"""The driver's observers: built once from the user's choices, copied fresh per trial.

The user chooses observers with Sacred's flags (-m, -F, -s, -t, -S, -G) and in code
(``ex.observers``). One observer instance holds one run's state, so every trial gets
its own shallow copy: connections (a MongoClient, a SQL engine) are shared, per-run
state is not. An observer class can define ``__copy__`` to control this.
"""

from __future__ import annotations

import copy
import os
import re
from types import SimpleNamespace
from typing import Optional

from sacred import Experiment

from ..records import mongo_uri, read_json, redact
from ..spec import SpecError
from ..worker.local import local_copy, plain_file_storage

OBSERVER_FLAGS = ("--mongo_db", "--file_storage", "--sql", "--tiny_db", "--s3", "--gcs")


def split_options(options: dict) -> tuple:
    """(observer flags for the driver, every other Sacred flag for the workers)."""
    observer = {k: v for k, v in options.items() if k in OBSERVER_FLAGS and v}
    rest = {k: v for k, v in options.items() if k not in OBSERVER_FLAGS}
    return observer, rest


def resolve_file_storage(options: dict) -> None:
    """``-F``'s folder as an absolute path, ``~`` read as a shell reads it (in place)."""
    if options.get("--file_storage"):
        options["--file_storage"] = os.path.abspath(os.path.expanduser(options["--file_storage"]))


def check_observer_flags(options: dict) -> None:
    """Refuse flag values Sacred would crash on, before anything starts."""
    value = options.get("--mongo_db")
    if value and mongo_uri(value) is None:
        from sacred.observers.mongo import get_pattern

        match = re.match(get_pattern(), value)
        if match is None:
            raise SpecError(
                "command line", "-m",
                f"cannot parse {redact(value)!r}; use [host:port:]db_name[.collection] (e.g. localhost:27017:sweeps)",
            )
        if match.groupdict().get("overwrite"):
            raise SpecError("command line", "-m", "a run id to overwrite (:ID) makes no sense for a sweep; drop it")


def build_prototypes(ex: Experiment, observer_options: dict, failure_dir: Optional[str] = None) -> list:
    """One instance of every observer the user chose: flags first, then ex.observers."""
    holder = SimpleNamespace(observers=[])
    by_flag = {opt.get_flag(): opt for opt in ex.all_cli_options}
    for flag, value in observer_options.items():
        uri = mongo_uri(value) if flag == "--mongo_db" else None
        if uri is not None:
            from sacred.observers import MongoObserver

            holder.observers.append(MongoObserver(**uri))
        else:
            by_flag[flag].apply(value, holder)
    prototypes = list(holder.observers) + list(ex.observers)
    if failure_dir:
        for obs in prototypes:
            if hasattr(obs, "failure_dir") and getattr(obs, "failure_dir", None) is None:
                obs.failure_dir = failure_dir
    return prototypes


def check_reachable(prototypes: list, timeout: float = 5.0) -> None:
    """Refuse to start when a MongoDB observer's server does not answer within ``timeout``."""
    import threading

    for obs in prototypes:
        runs = getattr(obs, "runs", None)
        client = getattr(getattr(runs, "database", None), "client", None)
        if client is None or not hasattr(client, "admin"):
            continue
        outcome: dict = {}
        thread = threading.Thread(target=_ping, args=(client, outcome), daemon=True)
        thread.start()
        thread.join(timeout)
        if not outcome.get("ok"):
            address = redact(_address(client))
            why = f"{outcome['error'].__class__.__name__}" if "error" in outcome else f"no answer in {timeout:g}s"
            raise SpecError("-m", address, f"cannot reach MongoDB ({why}); start the server or fix the -m address")


def _ping(client, outcome: dict) -> None:
    try:
        client.admin.command("ping")
        outcome["ok"] = True
    except Exception as e:
        outcome["error"] = e


def _address(client) -> str:
    try:
        nodes = client.topology_description.server_descriptions()
        return ", ".join(f"{host}:{port}" for host, port in nodes) or "MongoDB"
    except Exception:
        return "MongoDB"


def observer_flags_for_meta(observer_options: dict) -> dict:
    """The observer flags as a run's meta.options would show them, passwords hidden."""
    return {flag: redact(value) if isinstance(value, str) else value for flag, value in observer_options.items()}


def close_stale_runs(prototypes: list, sweep_name: str, reason: str) -> int:
    """Mark this sweep's runs still RUNNING (its driver was killed) INTERRUPTED; return how many."""
    import datetime
    import json

    closed = 0
    now = datetime.datetime.utcnow()
    for obs in prototypes:
        runs = getattr(obs, "runs", None)
        if runs is not None and hasattr(runs, "update_many"):
            result = runs.update_many(
                {"meta.sweep.name": sweep_name, "status": "RUNNING"},
                {"$set": {"status": "INTERRUPTED", "stop_time": now, "info.sacred_ray.stop_reason": reason}},
            )
            closed += result.modified_count
        basedir = getattr(obs, "basedir", None)
        if basedir and os.path.isdir(basedir):
            for name in os.listdir(basedir):
                path = os.path.join(basedir, name, "run.json")
                if not (name.isdigit() and os.path.exists(path)):
                    continue
                try:
                    with open(path) as f:
                        run = json.load(f)
                except (OSError, ValueError):
                    continue
                if run.get("status") == "RUNNING" and (run.get("meta") or {}).get("sweep", {}).get("name") == sweep_name:
                    amend_file_run(basedir, name, "INTERRUPTED", reason)  # the reason in info.json, as Sacred keeps info
                    closed += 1
    return closed


def worker_can_record(observer) -> bool:
    """Whether a worker on the driver's machine can record with this observer itself: a plain
    FileStorageObserver with an absolute folder (what -F gives) writes the same files there,
    without sending every event to the one driver process first."""
    return plain_file_storage(observer) and os.path.isabs(observer.basedir)


def reopen_file_run(prototype, run_id) -> Optional[object]:
    """A fresh copy of a FileStorageObserver that continues the run ``run_id`` it (or a worker)
    started: run.json back to RUNNING, cout.txt appended to. None when the observer is not a
    plain FileStorageObserver or the run's folder cannot be read."""
    import json

    if not plain_file_storage(prototype):
        return None
    obs = local_copy(prototype)
    obs.dir = os.path.join(obs.basedir, str(run_id))
    try:
        with open(os.path.join(obs.dir, "run.json")) as f:
            obs.run_entry = json.load(f)
        obs.config = read_json(os.path.join(obs.dir, "config.json"))
        obs.info = read_json(os.path.join(obs.dir, "info.json"))
        with open(os.path.join(obs.dir, "cout.txt"), encoding="utf-8", errors="replace") as f:
            obs.cout = f.read()
    except (OSError, ValueError):
        return None
    obs.cout_write_cursor = len(obs.cout)
    obs.run_entry["status"] = "RUNNING"
    for key in ("stop_time", "fail_trace"):
        obs.run_entry.pop(key, None)
    obs.save_json(obs.run_entry, "run.json")
    return obs


def amend_file_run(basedir: str, run_id, status: str, reason: Optional[str], if_running: bool = False) -> None:
    """Make a run a worker recorded in ``basedir`` end as the driver saw it end.

    The worker's own observer cannot record a worker that died (the run stays RUNNING) or
    a stop the driver decided (a timeout is INTERRUPTED to Sacred); this writes what the
    driver's observers get in those cases: the status, and the reason for a stop.
    ``if_running``: only a run still RUNNING (the worker's guard: the run may have ended)."""
    import datetime
    import json

    folder = os.path.join(basedir, str(run_id))
    try:
        with open(os.path.join(folder, "run.json")) as f:
            run = json.load(f)
    except (OSError, ValueError):
        return
    if if_running and run.get("status") != "RUNNING":
        return
    if run.get("status") != status:
        run["status"] = status
        run["stop_time"] = run.get("stop_time") or datetime.datetime.utcnow().isoformat()
        if status == "FAILED" and not run.get("fail_trace"):
            run["fail_trace"] = [reason or "the trial ended without reporting"]
        _write_json(os.path.join(folder, "run.json"), run)
    if reason and status in ("INTERRUPTED", "TIMEOUT"):
        try:
            with open(os.path.join(folder, "info.json")) as f:
                info = json.load(f)
        except (OSError, ValueError):
            info = {}
        info.setdefault("sacred_ray", {})["stop_reason"] = reason
        _write_json(os.path.join(folder, "info.json"), info)


def _write_json(path: str, obj) -> None:
    import json

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, sort_keys=True, indent=2)
    os.replace(tmp, path)


def fresh(observer):
    """A new instance for one trial: shared connections, private per-run state (a plain file
    storage observer writes its files whole, as a worker's does)."""
    if plain_file_storage(observer):
        return local_copy(observer)
    if hasattr(type(observer), "__copy__"):
        return copy.copy(observer)
    clone = copy.copy(observer)
    for name, value in vars(clone).items():
        if type(value) in (dict, list, set):
            setattr(clone, name, copy.copy(value))
    return clone


def observers_for_trial(prototypes: list) -> list:
    return [fresh(p) for p in prototypes]
