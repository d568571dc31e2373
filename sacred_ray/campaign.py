"""A sweep seen and steered from another shell: ``sweep_status``, ``sweep_cancel``,
``sweep_pause`` and ``sweep_continue``, as commands of the experiment and from Python.

    python my_exp.py sweep_status sweeps/digits-grid [--json]
    python my_exp.py sweep_cancel digits-grid [--trial 3 --trial 7]
    python my_exp.py sweep_pause digits-grid ; python my_exp.py sweep_continue digits-grid

    sacred_ray.sweep_status("sweeps/digits-grid")  # the same, as a dict

A sweep is named by its folder or by its name (``sweeps/NAME`` under the current folder).
What a running driver keeps in ``status.json`` is read as it is (answering in milliseconds
however many trials the sweep has); a sweep whose driver died is found out here: its runs
left RUNNING are closed INTERRUPTED, as SEML's ``detect-killed`` does, and ``--resume``
picks it up. Steering goes through the driver (``engine.control``): only the sweep's owner
can write its control file.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from types import SimpleNamespace
from typing import Optional

from .display import format_table, format_value
from .engine.control import NotHeard, read_status, request, send, who
from .engine.folder import LEDGER, MARKER, is_sweep_folder
from .engine.mailbox import SILENT_SECONDS  # a driver not heard from for this long is taken for dead
from .engine.observers import close_stale_runs
from .engine.progress import duration
from .records import append_lines, read_jsonl, read_spec_header
from .spec import SpecError

STEER = {"sweep_cancel": "cancel", "sweep_pause": "pause", "sweep_continue": "continue"}
COMMANDS = ("sweep_status",) + tuple(STEER)


def locate(sweep: str) -> str:
    """The folder of the sweep named ``sweep`` (a folder, or a name under ./sweeps)."""
    for path in (sweep, os.path.join("sweeps", sweep)):
        if os.path.isdir(path) and is_sweep_folder(path):
            return os.path.abspath(path)
    if os.path.isdir(sweep):
        raise SpecError(sweep, "", "is not a sweep's folder (it has no spec.yaml and ledger); give sweeps/NAME")
    raise SpecError(sweep, "", "no such sweep: give its folder (sweeps/NAME) or its name (looked in ./sweeps)")


def sweep_status(sweep: str, mongo: Optional[str] = None, address: Optional[str] = None) -> dict:
    """What a sweep is doing (or did): its counts, running trials, best so far, failed trials,
    the time left and whether its driver is alive. A sweep whose driver died has its
    RUNNING runs closed INTERRUPTED here (``mongo``: the database's address with credentials,
    when spec.yaml could not keep them). With ``address`` the running sweep named ``sweep`` is
    asked through the Ray cluster there (its folder need not be seen from here)."""
    if address:
        from .engine.mailbox import remote_status

        status = remote_status(sweep, address)
    else:
        folder = locate(sweep)
        status = read_status(folder) or _from_ledger(folder)
        alive = driver_alive(folder, status)
        status["driver_alive"] = alive
        if not alive and status.get("state") not in ("ended", None):
            status.update(_detect_killed(folder, status, mongo))
    now = time.time()
    for run in status.get("running") or []:
        run["elapsed"] = now - run["started"] if run.get("started") else None
    total, done = status.get("total"), status.get("done") or 0
    busy = len(status.get("running") or []) + len(status.get("lost") or [])
    status["waiting"] = max(total - done - busy, 0) if total is not None else None
    return status


def looks_like_mongo(source: str) -> bool:
    """A MongoDB address as -m takes it (mongodb://... or host:port:db), not a sweep's folder or name."""
    return source.startswith(("mongodb://", "mongodb+srv://")) or (source.count(":") == 2 and not os.path.isdir(source))


def mongo_status(address: str, name: Optional[str]) -> dict:
    """A sweep's status from the runs MongoDB holds (``meta.sweep.name``), from anywhere that
    reaches the database: counts of each trial's last run, the RUNNING ones, the failed ones and
    the best result. Whether its driver lives is not known there: the runs' heartbeats say when
    they were last heard."""
    from .analysis import database, newest_sweep
    from .records import mongo_uri, redact

    if not name:
        raise SpecError(redact(address), "", "give the sweep's name too: sweep_status MONGO_URL NAME")
    try:
        runs = list(database(address, mongo_uri).runs.find(
            {"meta.sweep.name": name},
            {"status": 1, "meta.sweep": 1, "result": 1, "heartbeat": 1, "start_time": 1, "fail_trace": 1,
             "info.ray.node_ip": 1, "experiment.name": 1}))
    except SpecError:
        raise
    except Exception as e:
        raise SpecError(redact(address), name, f"cannot reach MongoDB ({e.__class__.__name__}); start the server or "
                                               f"fix the address") from None
    if not runs:
        raise SpecError(redact(address), name, "no runs of a sweep of this name in this database")
    sweep_id, runs, others = newest_sweep(runs)  # a rerun of the name months later: the newest sweep
    latest: dict = {}
    for run in sorted(runs, key=lambda r: (str(r.get("start_time")), str(r["_id"]))):
        latest[(run.get("meta") or {}).get("sweep", {}).get("key")] = run
    counts: dict = {}
    for run in latest.values():
        counts[run.get("status")] = counts.get(run.get("status"), 0) + 1
    trial = lambda run: (run.get("meta") or {}).get("sweep", {}).get("trial")  # noqa: E731
    done = [r for r in latest.values() if r.get("status") == "COMPLETED" and isinstance(r.get("result"), (int, float))]
    best = max(done, key=lambda r: r["result"], default=None)
    beats = [r.get("heartbeat") for r in latest.values() if r.get("status") == "RUNNING" and r.get("heartbeat")]
    return {
        "name": name, "command": None, "folder": redact(address), "state": "running" if beats else None,
        "total": None, "done": sum(n for s, n in counts.items() if s != "RUNNING"), "counts": counts,
        "running": [{"trial": trial(r), "run_id": r["_id"], "node": ((r.get("info") or {}).get("ray") or {}).get("node_ip"),
                     "started": None, "last": {}} for r in latest.values() if r.get("status") == "RUNNING"],
        "best": {"trial": trial(best), "run_id": best["_id"], "metric": "result", "value": best["result"]} if best else None,
        "failed": [{"trial": trial(r), "run_id": r["_id"], "status": r.get("status"),
                    "error": _last_line("".join(r.get("fail_trace") or []))}
                   for r in latest.values() if r.get("status") in ("FAILED", "TIMEOUT")],
        "left_seconds": None, "driver_alive": None, "last_heartbeat": str(max(beats)) if beats else None,
        "id": sweep_id, "other_sweeps_of_the_name": others,
    }


def _last_line(text: str) -> Optional[str]:
    lines = text.strip().splitlines()
    return lines[-1] if lines else None


def driver_alive(folder: str, status: dict) -> bool:
    """Whether the sweep's driver runs: it holds the folder's lock (seen from any machine the
    lock reaches), or, on another host, it wrote status.json within SILENT_SECONDS."""
    try:
        fd = os.open(os.path.join(folder, MARKER), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True  # held by the driver
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    driver = status.get("driver") or {}
    if driver.get("host") and driver["host"] != socket.gethostname() and status.get("state") != "ended":
        return time.time() - (driver.get("alive_at") or 0) < SILENT_SECONDS
    return False


def _detect_killed(folder: str, status: dict, mongo: Optional[str]) -> dict:
    """The driver died mid-sweep: close the runs it left RUNNING, say so in status.json and the ledger."""
    fd = os.open(os.path.join(folder, MARKER), os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no driver starts while this is written
        except OSError:
            return {}
        driver = status.get("driver") or {}
        gone = f"pid {driver.get('pid')} on {driver.get('host')}"
        reason = f"the sweep's driver ({gone}) died while this run was RUNNING (found by sweep_status)"
        closed, notes = 0, []
        for obs in _observers(folder, mongo, notes):
            try:
                closed += close_stale_runs([obs], status.get("name"), reason)
            except Exception as e:  # a MongoDB that does not answer
                notes.append(f"could not close its runs in MongoDB ({e.__class__.__name__})")
        if closed:
            notes.insert(0, f"closed {closed} run(s) it left RUNNING as INTERRUPTED")
        ended = {"how": f"its driver ({gone}) died; --resume continues the sweep", "at": time.time(),
                 "notes": notes}
        update = {"state": "ended", "ended": ended, "running": [], "lost": status.get("running") or []}
        _write_status(folder, {**status, **update})
        with append_lines(os.path.join(folder, LEDGER)) as f:
            f.write(json.dumps({"control": "detect_killed", "by": who(), "closed": closed, "time": time.time()}) + "\n")
        return {**update, "closed_runs": closed}
    finally:
        os.close(fd)


def _observers(folder: str, mongo: Optional[str], notes: list) -> list:
    """Stand-ins for the sweep's observers, as spec.yaml recorded where they write."""
    recorded = read_spec_header(folder).get("recorded_by") or {}
    out = [SimpleNamespace(basedir=d) for d in recorded.get("file_storage") or []]
    address = mongo or recorded.get("mongo_db")
    if address and "***" in address:
        notes.append("its MongoDB address has credentials spec.yaml does not keep: give -m to close its runs there")
    elif address:
        from .analysis import database
        from .records import mongo_uri

        try:
            out.append(SimpleNamespace(runs=database(address, mongo_uri).runs))
        except SpecError as e:
            notes.append(str(e))
    return out


def _write_status(folder: str, status: dict) -> None:
    path = os.path.join(folder, "status.json")
    with open(f"{path}.tmp", "w", encoding="utf-8") as f:
        json.dump(status, f)
    os.replace(f"{path}.tmp", path)


def _from_ledger(folder: str) -> dict:
    """The status of a sweep without status.json (made by an earlier version), from its ledger."""
    latest: dict = {}
    for entry in read_jsonl(os.path.join(folder, LEDGER)):
        if "control" not in entry and not entry.get("retrying"):
            latest[entry.get("key")] = entry
    counts: dict = {}
    for entry in latest.values():
        counts[entry.get("status")] = counts.get(entry.get("status"), 0) + 1
    trials = len(read_jsonl(os.path.join(folder, "trials.jsonl"))) or None
    return {"name": os.path.basename(folder), "folder": folder, "state": None, "total": trials, "done": len(latest),
            "counts": counts, "running": [], "best": None, "left_seconds": None,
            "failed": [{"trial": e.get("index"), "run_id": e.get("run_id"), "status": e.get("status"),
                        "error": e.get("error")} for e in latest.values() if e.get("status") in ("FAILED", "TIMEOUT")]}


def format_status(s: dict) -> str:
    """The status as sweep_status prints it."""
    driver = s.get("driver") or {}
    where = f"pid {driver.get('pid')} on {driver.get('host')}" if driver else "no driver recorded"
    if s.get("state") == "ended":
        state = f"ended: {(s.get('ended') or {}).get('how')}"
    elif s.get("driver_alive"):
        heard = time.time() - driver.get("alive_at", time.time())
        state = f"{s.get('state')}{' by ' + s['paused_by'] if s.get('paused_by') else ''}, driver {where} alive " \
                f"(heard {heard:.0f}s ago)"
    elif s.get("driver_alive") is None and s.get("last_heartbeat") is not None:
        state = f"runs RUNNING, last heard {s['last_heartbeat']} (from MongoDB: its driver is not known here)"
    elif s.get("driver_alive") is None and "last_heartbeat" in s:
        state = "no run RUNNING (from MongoDB: its driver is not known here)"
    else:
        state = "not running (no status.json: made by an earlier version)" if s.get("state") is None else \
            f"driver {where} is not running"
    lines = [f"sweep {s.get('name')!r} ({s.get('command') or 'sweep'}) in {_rel(s.get('folder', ''))}: {state}"]
    counts = ", ".join(f"{n} {k}" for k, n in sorted((s.get("counts") or {}).items()))
    total = s.get("total")
    parts = [f"{total} trials" if total is not None else f"{s.get('done', 0)} trials ended"]
    parts.append(counts or "none ended yet")
    if s.get("running"):
        parts.append(f"{len(s['running'])} RUNNING")
    if s.get("lost"):
        parts.append(f"{len(s['lost'])} were RUNNING when the driver died ({_trials(s['lost'])})")
    if s.get("waiting"):
        parts.append(f"{s['waiting']} {'not run' if s.get('state') == 'ended' else 'waiting'}")
    left = s.get("left_seconds")
    tail = f"; about {duration(left)} left" if left is not None and s.get("state") != "ended" else ""
    lines.append(f"{parts[0]}: {', '.join(parts[1:])}{tail}")
    if s.get("running"):
        metric = next((k for r in s["running"] for k in (r.get("last") or {})), None)
        headers = ["trial", "run", "node", "elapsed"] + ([f"last {metric}"] if metric else [])
        rows = [[r.get("trial"), r.get("run_id"), r.get("node"),
                 duration(r["elapsed"]) if r.get("elapsed") is not None else ""]
                + ([format_value((r.get("last") or {}).get(metric))] if metric else []) for r in s["running"]]
        lines += ["running:", _indent(format_table(headers, rows))]
    best = s.get("best")
    if best:
        lines.append(f"best so far: trial {best['trial']} (run {best.get('run_id')}) "
                     f"{best['metric']} {format_value(best['value'])}")
    if s.get("failed"):
        lines.append("failed:")
        lines += [f"  trial {f.get('trial')} (run {f.get('run_id')}) {f.get('status')}: {f.get('error')}"
                  for f in s["failed"]]
    lines += [f"note: {note}" for note in _notes(s)]
    return "\n".join(lines)


def _notes(s: dict) -> list:
    notes = list((s.get("ended") or {}).get("notes") or [])
    others = s.get("other_sweeps_of_the_name")
    if others:  # from MongoDB, where a rerun of the name months later also is
        notes.append(f"the newest of {len(others) + 1} sweeps of this name in the database (id {s.get('id')}); "
                     f"the others: {', '.join(map(str, others))}")
    return notes


def steer(sweep: str, action: str, trials: Optional[list] = None, address: Optional[str] = None) -> str:
    """Ask the running driver of ``sweep`` to ``cancel`` (the sweep, or ``trials``), ``pause``
    or ``continue``; return what it did. Raises SpecError when it cannot be asked. With
    ``address``, through the Ray cluster there (see ``sweep_status``)."""
    req = request("cancel_trials", trials=list(trials)) if trials else request(action)
    if address:
        from .engine.mailbox import remote_send

        return remote_send(sweep, address, req)
    folder = locate(sweep)
    status = read_status(folder) or {}
    if not driver_alive(folder, status) or status.get("state") == "ended":
        raise SpecError(_rel(folder), "", "its sweep is not running (sweep_status says how it ended); "
                                          "--resume continues it")
    try:
        return send(folder, req)
    except PermissionError:
        raise SpecError(_rel(folder), "control.jsonl", "permission denied: only the sweep's owner may steer it") from None
    except NotHeard as e:
        after = read_status(folder) or {}
        if after.get("state") == "ended" or not driver_alive(folder, after):
            raise SpecError(_rel(folder), "", "its sweep ended before its driver took the request "
                                              f"({(after.get('ended') or {}).get('how', 'sweep_status says how')})") from None
        raise SpecError(_rel(folder), "", f"{e}; the request stays and is carried out when it next looks") from None


def sweep_cancel(sweep: str, trials: Optional[list] = None, address: Optional[str] = None) -> str:
    """Cancel the running sweep (as Ctrl-C would), or only ``trials`` (numbers, or Tune trial ids)."""
    return steer(sweep, "cancel", trials, address)


def sweep_pause(sweep: str, address: Optional[str] = None) -> str:
    """Start no new trial of the running sweep until ``sweep_continue``; running ones go on."""
    return steer(sweep, "pause", address=address)


def sweep_continue(sweep: str, address: Optional[str] = None) -> str:
    """Let a paused sweep start trials again."""
    return steer(sweep, "continue", address=address)


def command(name: str, tokens: list, program: str) -> int:
    """One of the campaign commands from the command line; its exit status."""
    try:
        asked = _parse(name, tokens, program)
        if asked is None:
            print(HELP.format(prog=program))
            return 0
        if name == "sweep_status":
            if looks_like_mongo(asked.sweep):
                status = mongo_status(asked.sweep, asked.name)
            else:
                status = sweep_status(asked.sweep, mongo=asked.mongo, address=asked.address)
            print(json.dumps(status, default=str) if asked.json else format_status(status))
            return 0
        print(steer(asked.sweep, STEER[name], asked.trials, asked.address))
        return 0
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


# a campaign command's options that take a value: (the field they set, the command they are for, what is needed)
VALUE_OPTIONS = {
    "--address": ("address", None, "the Ray cluster's address (host:6379, ray://host:10001 or auto)"),
    "--trial": ("trials", "sweep_cancel", "a trial number (or Tune trial id)"),
    "-m": ("mongo", "sweep_status", "the MongoDB address the sweep's runs are in"),
    "--mongo_db": ("mongo", "sweep_status", "the MongoDB address the sweep's runs are in"),
}


def _parse(name: str, tokens: list, program: str) -> Optional[SimpleNamespace]:
    """A campaign command's arguments (None: it asked for help)."""
    asked = SimpleNamespace(sweep=None, name=None, trials=[], json=False, address=None, mongo=None)
    tokens = iter(tokens)
    for token in tokens:
        flag, has_value, value = token.partition("=")
        if flag in ("-h", "--help"):
            return None
        option = VALUE_OPTIONS.get(flag)
        if flag == "--json" and name == "sweep_status":
            asked.json = True
        elif option is not None and option[1] in (None, name):
            value = value if has_value else next(tokens, None)
            if not value:
                raise SpecError("command line", flag, f"needs {option[2]}")
            if option[0] == "trials":
                asked.trials += [int(v) if v.isdigit() else v for v in value.split(",") if v]
            else:
                setattr(asked, option[0], value)
        elif token.startswith("-"):
            raise SpecError("command line", flag, f"unknown option of {name}; see {program} {name} -h")
        elif asked.sweep is None:
            asked.sweep = token
        elif asked.name is None and name == "sweep_status" and looks_like_mongo(asked.sweep):
            asked.name = token
        else:
            raise SpecError("command line", name, f"takes one sweep, got {asked.sweep!r} and {token!r}")
    if asked.sweep is None:
        raise SpecError("command line", name, f"name a sweep: {program} {name} sweeps/NAME (or NAME)")
    return asked


HELP = """\
Usage:
  {prog} sweep_status SWEEP [--json] [--address ADDR] [-m MONGO_URL]
  {prog} sweep_status MONGO_URL NAME [--json]
  {prog} sweep_cancel SWEEP [--trial N ...] [--address ADDR]
  {prog} sweep_pause SWEEP [--address ADDR]
  {prog} sweep_continue SWEEP [--address ADDR]

SWEEP is a sweep's folder (sweeps/NAME) or its name; with --address (the Ray cluster's
head host:6379, ray://HEAD:10001 or auto) a running sweep of that name is reached through
the cluster, from a machine that does not see its folder (a sweep started with --submit).
MONGO_URL NAME reads a sweep's runs from MongoDB, from anywhere; -m gives a folder's sweep
the database address with its credentials (spec.yaml keeps none), to close a dead driver's
RUNNING runs there. sweep_status shows a running or ended
sweep; a sweep whose driver died has its RUNNING runs closed INTERRUPTED. sweep_cancel stops
the sweep as Ctrl-C would (or, with --trial, only those trials); sweep_pause starts no new
trial until sweep_continue. Give the same ray_sweep command with a widened grid while its
sweep runs to add the new trials to it."""


def _trials(runs: list) -> str:
    return "trial " + ", ".join(str(r.get("trial")) for r in runs)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _rel(path: str) -> str:
    rel = os.path.relpath(path) if path else path
    return path if not rel or rel.startswith("..") else rel


__all__ = ["COMMANDS", "command", "format_status", "locate", "steer", "sweep_cancel", "sweep_continue", "sweep_pause",
           "sweep_status"]
