"""Which trials already ran (``--skip-done``): the COMPLETED runs, in the records of the
observers a sweep writes to, whose config and experiment source are a trial's.

"The same" is what Sacred would run: the config after the trial's updates and named configs,
and the md5 of every source file of the experiment. The seed only counts when the trial fixes
it, and the keys a user names as not mattering (``skip_ignore``) never do. Runs made alone
(``python exp.py with lr=0.1``) count as well as any sweep's.

The check reads each observer once: a MongoDB query on ``experiment.name`` and ``status``
(with an index on both), or the ``run.json`` of each run in a file storage folder. A run whose
recorded config updates and named configs are the trial's is the same at once; only a trial
that some earlier run agrees with on every key the trial sets has its full config computed
(Sacred's config scopes, nothing else of a run), so 10,000 earlier runs take well under 2 s.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from sacred import Experiment

from ..records import object_id, read_json
from ..spec import SpecError

DONE = "COMPLETED"
SEED = "seed"


@dataclass
class Done:
    """The earlier run that holds a trial's result."""

    where: str  # how the user finds it: "runs/17" or "MongoDB sweeps, run 5"
    run_id: Any
    folder: Optional[str]  # a file storage run's folder (absolute), None for a MongoDB run
    sweep: Optional[str]  # the sweep that ran it (meta.sweep.name), None for a run made alone
    result: Any = None
    metrics: dict = field(default_factory=dict)  # the ranking metric's last value, when it is not the result
    config: Optional[dict] = None

    def entry(self) -> dict:
        return {"where": self.where, "run_id": self.run_id, "sweep": self.sweep, "folder": self.folder}


@dataclass
class _Earlier:
    """One COMPLETED run of the experiment as an observer recorded it."""

    run_id: Any
    where: str
    folder: Optional[str]
    updates: dict  # flat
    named: tuple
    sweep: Optional[str]
    result: Any
    load_config: Callable[[], dict]
    load_metric: Callable[[str], Any]
    _config: Optional[dict] = None

    @property
    def config(self) -> dict:
        if self._config is None:
            self._config = self.load_config() or {}
        return self._config

    def done(self, metric: Optional[str]) -> Done:
        metrics = {}
        if metric and metric != "result":
            value = self.load_metric(metric)
            if value is not None:
                metrics[metric] = value
        return Done(self.where, self.run_id, self.folder, self.sweep, self.result, metrics, self.config)


class DoneIndex:
    """The COMPLETED runs of an experiment and its source in some observers' records, read once
    and then asked for trials as they come: a whole grid before a sweep, a Tune trial as it
    starts (``tune_with --skip-done``)."""

    def __init__(self, ex: Experiment, observers: list, sources: dict, ignore: tuple = (),
                 metric: Optional[str] = None):
        self.ex, self.ignore, self.metric = ex, tuple(ignore), metric
        self.earlier = [run for obs in observers for run in _runs_of(obs, ex.path, sources)]
        self._fast: dict = {}  # (named configs, fingerprint of the updates) -> a run
        for run in self.earlier:
            self._fast.setdefault((run.named, _fingerprint(run.updates, self.ignore)), run)
        self._groups: Optional[dict] = None  # the keys an earlier run set -> its runs
        self._indexes: dict = {}  # (a trial's keys, a group's keys) -> fingerprint of the keys both set -> runs

    def __len__(self) -> int:
        return len(self.earlier)

    def find(self, trials: list) -> dict:
        """Trial key -> ``Done`` for every trial an earlier COMPLETED run already ran."""
        if not self.earlier or not trials:
            return {}
        found, missed = {}, []
        for t in trials:
            run = self._fast.get((tuple(t.named_configs), _fingerprint(_flat(t.updates), self.ignore)))
            if run is not None and _same_seed(t, run):
                found[t.key] = run.done(self.metric)
            else:
                missed.append(t)
        for t in missed:
            run = self._by_config(t)
            if run is not None:
                found[t.key] = run.done(self.metric)
        return found

    def _keys(self, flat: dict) -> frozenset:
        return frozenset(k for k in flat if k != SEED and not _ignored(k, self.ignore))

    def _by_config(self, t) -> Optional[_Earlier]:
        """The earlier run whose full config is the trial's although their updates are not (a
        value set to its default, a named config's values given one by one). An earlier run is a
        candidate when it agrees on every key the trial sets: by its own updates where it set the
        key too (no file read), by its config where it did not; only a trial with a candidate has
        its config computed."""
        if self._groups is None:
            self._groups = {}
            for run in self.earlier:
                self._groups.setdefault(self._keys(run.updates), []).append(run)
        flat = _flat(t.updates)
        mine = self._keys(flat)
        candidates = []
        for theirs, runs in self._groups.items():
            both = tuple(sorted(mine & theirs))
            index = self._indexes.get((mine, theirs))
            if index is None:
                index = self._indexes[(mine, theirs)] = {}
                for run in runs:
                    index.setdefault(_fingerprint({k: run.updates[k] for k in both}, ()), []).append(run)
            rest = mine - theirs
            for run in index.get(_fingerprint({k: flat[k] for k in both}, ()), ()):
                config = _flat(run.config) if rest else {}
                if all(_plain(config.get(k, _MISSING)) == _plain(flat[k]) for k in rest):
                    candidates.append(run)
        if not candidates:
            return None
        computed = _fingerprint(_flat(config_of(self.ex, t.config_updates, t.named_configs)), self.ignore)
        for run in candidates:
            if _fingerprint(_flat(run.config), self.ignore) == computed and _same_seed(t, run):
                return run
        return None


def find_done(ex: Experiment, trials: list, observers: list, sources: dict, ignore: tuple = (),
              metric: Optional[str] = None) -> dict:
    """Trial key -> ``Done`` for every trial an earlier COMPLETED run already ran."""
    return DoneIndex(ex, observers, sources, ignore, metric).find(trials)


_MISSING = "\x00missing"


def config_of(ex: Experiment, updates: dict, named_configs: tuple = ()) -> dict:
    """The config Sacred computes for a run with these updates and named configs: its config
    scopes, named configs and config hooks as ``create_run`` runs them, without what else a run
    gathers (host info, source digests, logging, a seed: most of the 3 ms a run takes to create).
    The seed is left out (the caller compares a fixed one itself)."""
    import logging

    from sacred.initialize import (
        create_scaffolding,
        distribute_config_updates,
        distribute_presets,
        gather_ingredients_topological,
        get_configuration,
        get_scaffolding_and_config_name,
    )
    from sacred.utils import convert_to_nested_dict, iterate_flattened, join_paths, recursive_update, set_by_dotted_path

    scaffolding = create_scaffolding(ex, gather_ingredients_topological(ex))
    prefixes = sorted([s.split(".") for s in scaffolding if s != ""], reverse=True, key=len)
    updates = convert_to_nested_dict(dict(updates or {}))
    distribute_config_updates(prefixes, scaffolding, updates)
    for name in named_configs:
        scaffold, config_name = get_scaffolding_and_config_name(name, scaffolding)
        scaffold.gather_fallbacks()
        named = scaffold.run_named_config(config_name)
        distribute_presets(scaffold.path, prefixes, scaffolding, named)
        for key, value in iterate_flattened(named):
            set_by_dotted_path(updates, join_paths(scaffold.path, key), value)
    distribute_config_updates(prefixes, scaffolding, updates)
    logger = logging.getLogger(ex.path)
    for scaffold in scaffolding.values():
        scaffold.gather_fallbacks()
        scaffold.set_up_config()
        if scaffold.config_hooks:
            hooked = scaffold.run_config_hooks(get_configuration(scaffolding), ex.default_command, logger)
            recursive_update(scaffold.config, hooked)
    return get_configuration(scaffolding)


# -- comparing ---------------------------------------------------------------------
def _flat(value: Any, prefix: str = "") -> dict:
    """Dotted path -> leaf (an empty dict is a leaf); {"a": {"b": 1}} and {"a.b": 1} alike."""
    if not isinstance(value, dict) or (not value and prefix):
        return {prefix: value}
    out: dict = {}
    for k, v in value.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _ignored(key: str, ignore: tuple) -> bool:
    return any(key == i or key.startswith(i + ".") for i in ignore)


def _plain(value: Any) -> Any:
    """What a value is once an observer stored it: JSON's lists, floats for numbers (1 == 1.0)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def _fingerprint(flat: dict, ignore: tuple) -> str:
    kept = {k: _plain(v) for k, v in flat.items() if k != SEED and not _ignored(k, ignore)}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))


def _same_seed(trial, run: _Earlier) -> bool:
    """A trial that fixes its seed is only done by a run of that seed; any other by any seed."""
    seed = trial.seed if trial.seed is not None else _flat(trial.updates).get(SEED)
    return seed is None or run.config.get(SEED) == seed


# -- reading each observer's records -------------------------------------------------
def _runs_of(observer, name: str, sources: dict) -> list:
    runs = getattr(observer, "runs", None)
    if runs is not None and hasattr(runs, "find"):
        return _mongo_runs(observer, name, sources)
    basedir = getattr(observer, "basedir", None)
    if basedir:
        return _file_runs(str(basedir), name, sources)
    return []  # an observer whose records cannot be read back


def _file_runs(basedir: str, name: str, sources: dict) -> list:
    out = []
    if not os.path.isdir(basedir):
        return out
    shown = os.path.relpath(basedir) if not os.path.relpath(basedir).startswith("..") else basedir
    for entry in os.listdir(basedir):
        folder = os.path.join(basedir, entry)
        try:
            with open(os.path.join(folder, "run.json"), encoding="utf-8") as f:
                run = json.load(f)
        except (OSError, ValueError):
            continue
        experiment = run.get("experiment") or {}
        if run.get("status") != DONE or experiment.get("name") != name:
            continue
        md5s = {}
        for source in experiment.get("sources") or []:
            if isinstance(source, list) and len(source) == 2:
                stem = os.path.splitext(os.path.basename(str(source[1])))[0]
                md5s[source[0]] = stem.rpartition("_")[2]
        if md5s != sources:
            continue
        meta = run.get("meta") or {}
        out.append(_Earlier(
            run_id=int(entry) if entry.isdigit() else entry, where=os.path.join(shown, entry), folder=folder,
            updates=_flat(meta.get("config_updates") or {}), named=tuple(meta.get("named_configs") or ()),
            sweep=(meta.get("sweep") or {}).get("name"), result=run.get("result"),
            load_config=lambda folder=folder: read_json(os.path.join(folder, "config.json")),
            load_metric=lambda metric, folder=folder: _last(read_json(os.path.join(folder, "metrics.json")).get(metric)),
        ))
    return out


def _mongo_runs(observer, name: str, sources: dict) -> list:
    runs = observer.runs
    where = f"MongoDB {getattr(runs.database, 'name', 'database')}"
    try:
        runs.create_index([("experiment.name", 1), ("status", 1)])
        found = list(runs.find({"experiment.name": name, "status": DONE},
                               {"config": 1, "result": 1, "meta.config_updates": 1, "meta.named_configs": 1,
                                "meta.sweep.name": 1, "meta.sweep.sources": 1, "experiment.sources": 1,
                                "info.metrics": 1}))
    except Exception as e:
        raise SpecError("--skip-done", where, f"cannot read the earlier runs ({e.__class__.__name__}); start the "
                                              f"server or leave out --skip-done") from None
    digests: dict = {}
    out = []
    for run in found:
        meta = run.get("meta") or {}
        recorded = (meta.get("sweep") or {}).get("sources")
        if isinstance(recorded, list):
            recorded = {s[0]: s[1] for s in recorded if isinstance(s, (list, tuple)) and len(s) == 2}
        else:
            recorded = {s[0]: _gridfs_md5(observer, s[1], digests) for s in (run.get("experiment") or {}).get("sources") or []
                        if isinstance(s, (list, tuple)) and len(s) == 2}
        if recorded != sources:
            continue
        ids = {m.get("name"): m.get("id") for m in (run.get("info") or {}).get("metrics") or [] if isinstance(m, dict)}
        out.append(_Earlier(
            run_id=run["_id"], where=f"{where}, run {run['_id']}", folder=None, updates=_flat(meta.get("config_updates") or {}),
            named=tuple(meta.get("named_configs") or ()), sweep=(meta.get("sweep") or {}).get("name"),
            result=run.get("result"), load_config=lambda run=run: run.get("config") or {},
            load_metric=lambda metric, ids=ids: _mongo_last(observer, ids.get(metric)),
        ))
    return out


def _gridfs_md5(observer, file_id, digests: dict) -> Optional[str]:
    """The md5 of a source file a run made alone saved to GridFS (Sacred keeps its id, not its md5)."""
    if file_id not in digests:
        try:
            digests[file_id] = hashlib.md5(observer.fs.get(file_id).read(), usedforsecurity=False).hexdigest()
        except Exception:
            digests[file_id] = None
    return digests[file_id]


def _mongo_last(observer, metric_id) -> Any:
    if metric_id is None:
        return None
    entry = observer.metrics.find_one({"_id": object_id(metric_id)}, {"values": 1})
    return _last(entry)


def _last(series: Any) -> Any:
    values = (series or {}).get("values") if isinstance(series, dict) else None
    return values[-1] if values else None


def metric_value(done: Done, metric: str) -> Any:
    """The earlier run's value of what a search ranks by (main's result for ``result``); None
    when it has none a search can use."""
    value = done.result if metric == "result" else done.metrics.get(metric)
    if metric == "result" and isinstance(value, dict):
        value = value.get("result")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if number and math.isfinite(value) else None


def describe(done: dict, total: int) -> str:
    """The line a sweep (or --dry-run) says what --skip-done found."""
    if not done:
        return f"skip-done: none of the {total} trials has a COMPLETED run with this config and source; all run"
    shown = ", ".join(d.where for d in list(done.values())[:3]) + (", ..." if len(done) > 3 else "")
    return f"skip-done: {len(done)} of {total} trials already COMPLETED ({shown}); {total - len(done)} to run"


def preview(ex: Experiment, spec, options: dict) -> str:
    """What --skip-done would skip, for --dry-run: the observers the command line and the
    experiment name are read (nothing is written, Ray is not started). A search's trials are
    sampled as it runs: for one, how many earlier runs a trial may be found among."""
    from .observers import build_prototypes, check_observer_flags, check_reachable, resolve_file_storage, split_options

    options = dict(options)
    check_observer_flags(options)
    resolve_file_storage(options)
    observers = build_prototypes(ex, split_options(options)[0])
    if not observers:
        return "skip-done: no observer records runs (give -F or -m): nothing to compare with"
    check_reachable(observers)
    sources = {name: md5 for name, md5 in ex.get_experiment_info()["sources"]}
    index = DoneIndex(ex, observers, sources, spec.settings.skip_ignore)
    if not hasattr(spec, "trials"):
        return (f"skip-done: {len(index)} COMPLETED run(s) of this experiment and source in the observers' records; "
                f"a trial that samples one of their configs will not run")
    trials = spec.trials
    done = index.find(trials)
    lines = [describe(done, len(trials))]
    shown = [t for t in trials if t.key in done][:10]
    lines += [f"  #{t.index}: {done[t.key].where}" + (f" (sweep {done[t.key].sweep})" if done[t.key].sweep else
                                                     " (run alone)") for t in shown]
    if len(done) > len(shown):
        lines.append(f"  ... and {len(done) - len(shown)} more")
    return "\n".join(lines)
