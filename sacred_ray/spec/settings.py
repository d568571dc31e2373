"""The how-to-run sections: ``sweep`` (ray_sweep) and ``tune`` (tune_with), and resources."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import SpecError
from .resources import Resources, parse_resources


def default_mode(metric: str) -> str:
    """How a metric ranks when the file does not say: ``min`` for names that read as a loss
    or an error, else ``max``."""
    lowered = metric.lower()
    return "min" if any(w in lowered for w in ("loss", "error", "err", "mse", "mae", "rmse", "perplexity")) else "max"


_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _check(raw: dict, key: str, kind, source: str, where: str, what: str):
    value = raw[key]
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise SpecError(source, f"{where}: {key}", f"must be {what}, got {value!r}")
    return value


def _whole(raw: dict, key: str, source: str, where: str, minimum: int) -> Optional[int]:
    """``raw[key]`` as a whole number of at least ``minimum`` (None when unset)."""
    if raw.get(key) is None:
        return None
    n = _check(raw, key, int, source, where, f"a whole number of at least {minimum}")
    if n < minimum:
        raise SpecError(source, f"{where}: {key}", f"must be at least {minimum}, got {n}")
    return n


def _seconds(raw: dict, key: str, source: str, where: str) -> Optional[float]:
    """``raw[key]`` as a finite number of seconds above 0 (None when unset)."""
    if raw.get(key) is None:
        return None
    t = _check(raw, key, float, source, where, "seconds above 0")
    if not (0 < t < float("inf")):
        raise SpecError(source, f"{where}: {key}", f"must be seconds above 0, got {t}")
    return float(t)


def _set(out: dict, key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


@dataclass(frozen=True)
class SweepSettings:
    """How to run a sweep (never what): the ``sweep`` section of a grid file."""

    name: str
    max_concurrent: Optional[int] = None
    resources: Resources = field(default_factory=Resources)
    retries: int = 0
    timeout: Optional[float] = None
    address: Optional[str] = None
    runtime_env: dict = field(default_factory=dict)
    dir: Optional[str] = None
    metric: Optional[str] = None
    mode: Optional[str] = None
    fail_fast: bool = False
    max_restarts: int = 3  # restarts from the last checkpoint of a trial whose worker died
    retry_from: str = "checkpoint"  # where a retry after an exception starts: checkpoint or start
    checkpoint_keep: int = 2  # checkpoints kept per trial
    storage: Optional[str] = None  # where checkpoints go: <storage>/<name>/checkpoints/ (a shared path or a URI)
    skip_done: bool = False  # skip a trial an earlier COMPLETED run (same config and source) already ran
    skip_ignore: tuple = ()  # config keys that do not make a run another (a log folder, a worker count)


SWEEP_KEYS = ("name", "max_concurrent", "resources", "retries", "timeout", "address", "runtime_env", "dir", "metric",
              "mode", "fail_fast", "max_restarts", "retry_from", "checkpoint", "storage", "skip_done", "skip_ignore")


def _storage(raw: dict, source: str, where: str) -> Optional[str]:
    if raw.get("storage") is None:
        return None
    storage = _check(raw, "storage", str, source, where, "a folder every node can reach or a URI like s3://bucket/prefix")
    if not storage.strip():
        raise SpecError(source, f"{where}: storage", "must be a folder every node can reach or a URI like "
                                                     "s3://bucket/prefix; got ''")
    return storage if "://" in storage else os.path.expanduser(storage)  # a folder: ~ as a shell reads it


def _common(raw: dict, source: str, where: str, default_name: str) -> dict:
    out: dict = {}
    if "name" in raw:
        name = _check(raw, "name", str, source, where, "a name of letters, digits, _ . -")
        if not _NAME.match(name):
            raise SpecError(source, f"{where}: name", f"{name!r} may hold only letters, digits, _ . - (it names a folder)")
        out["name"] = name
    else:
        out["name"] = default_name
    if raw.get("address") is not None:
        out["address"] = _check(raw, "address", str, source, where, "a Ray address like auto or 10.0.0.5:6379")
    if raw.get("runtime_env") is not None:
        out["runtime_env"] = _check(raw, "runtime_env", dict, source, where, "a mapping (Ray's runtime_env)")
    if raw.get("dir") is not None:
        out["dir"] = os.path.expanduser(_check(raw, "dir", str, source, where, "a folder path"))  # ~ as a shell reads it
    _set(out, "storage", _storage(raw, source, where))
    if raw.get("resources") is not None:
        out["resources"] = parse_resources(raw["resources"], source, f"{where}: resources")
    if raw.get("mode") is not None:
        mode = raw["mode"]
        if mode not in ("min", "max"):
            raise SpecError(source, f"{where}: mode", f"must be min or max, got {mode!r}")
        out["mode"] = mode
    if raw.get("metric") is not None:
        out["metric"] = _check(raw, "metric", str, source, where, "a metric name logged with _run.log_scalar, or result")
        if not out["metric"].strip():
            raise SpecError(source, f"{where}: metric", "must be a metric name logged with _run.log_scalar, or result; got ''")
    out.update(_skip(raw, source, where))
    return out


def _skip(raw: dict, source: str, where: str) -> dict:
    """``skip_done`` and ``skip_ignore``, which both sections take."""
    out: dict = {}
    if raw.get("skip_done") is not None:
        out["skip_done"] = _check(raw, "skip_done", bool, source, where, "true or false")
    if raw.get("skip_ignore") is not None:
        keys = raw["skip_ignore"]
        if not isinstance(keys, list) or not all(isinstance(k, str) and k.strip() for k in keys):
            raise SpecError(source, f"{where}: skip_ignore", f"must be a list of config keys (dotted, like "
                                                             f"trainer.workers), got {keys!r}")
        out["skip_ignore"] = tuple(keys)
    return out


def _open_section(raw: Any, source: str, where: str, accepted: tuple, default_name: str) -> tuple:
    """``(the section's mapping, the settings both sections share)``; unknown keys refused."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(source, where, f"expected a mapping with keys {', '.join(accepted)}")
    for key in raw:
        if key not in accepted:
            raise SpecError(source, f"{where}: {key}", f"unknown key; accepted: {', '.join(accepted)}")
    return raw, _common(raw, source, where, default_name)


def parse_sweep_settings(raw: Any, source: str, default_name: str) -> SweepSettings:
    where = "sweep"
    raw, out = _open_section(raw, source, where, SWEEP_KEYS, default_name)
    _set(out, "max_concurrent", _whole(raw, "max_concurrent", source, where, 1))
    _set(out, "retries", _whole(raw, "retries", source, where, 0))
    _set(out, "timeout", _seconds(raw, "timeout", source, where))
    if raw.get("fail_fast") is not None:
        out["fail_fast"] = _check(raw, "fail_fast", bool, source, where, "true or false")
    _set(out, "max_restarts", _whole(raw, "max_restarts", source, where, 0))
    if raw.get("retry_from") is not None:
        if raw["retry_from"] not in ("checkpoint", "start"):
            raise SpecError(source, f"{where}: retry_from", f"must be checkpoint or start, got {raw['retry_from']!r}")
        out["retry_from"] = raw["retry_from"]
    if raw.get("checkpoint") is not None:
        checkpoint = _check(raw, "checkpoint", dict, source, where, "a mapping like {keep: 2}")
        unknown = sorted(set(map(str, checkpoint)) - {"keep"})
        if unknown:
            raise SpecError(source, f"{where}: checkpoint: {unknown[0]}", "unknown key; accepted: keep")
        _set(out, "checkpoint_keep", _whole(checkpoint, "keep", source, f"{where}: checkpoint", 1))
    return SweepSettings(**out)


SEARCHERS = ("random", "grid", "optuna", "hyperopt")


@dataclass(frozen=True)
class Scheduler:
    """What sacred-ray knows of a Tune scheduler a space file may name: the one table the
    spec checks, the engine and the workers read (``engine.searchers`` builds each)."""

    label: str  # its name in stop reasons ("stopped by ASHA at step 3")
    options: tuple = ()  # the keys ``tune.scheduler`` takes besides ``type``
    max_t: Optional[int] = None  # Ray's default budget of iterations per trial (None: it sets none)
    hands_over: bool = False  # exploits: a trial's checkpoint becomes another's state (mutations, lineage.csv)
    packages: tuple = ()  # modules it needs beyond ray[tune]
    missing: str = ""  # the fix when one of them is not installed


SCHEDULERS: dict = {
    "fifo": Scheduler("Tune"),
    "asha": Scheduler("ASHA", ("max_t", "grace_period", "reduction_factor", "brackets", "time_attr"), max_t=100),
    "hyperband": Scheduler("HyperBand", ("max_t", "reduction_factor", "time_attr"), max_t=81),
    "median": Scheduler("MedianStoppingRule",
                        ("grace_period", "min_samples_required", "min_time_slice", "hard_stop", "time_attr")),
    "pbt": Scheduler("PBT", ("perturbation_interval", "mutations", "quantile_fraction", "resample_probability",
                             "burn_in_period", "synch"), hands_over=True),
    "pb2": Scheduler("PB2", ("perturbation_interval", "mutations", "quantile_fraction", "burn_in_period", "synch"),
                     hands_over=True, packages=("GPy", "sklearn"),
                     missing='pb2 needs GPy and scikit-learn; pip install "sacred-ray[pb2]"'),
}
POPULATION = tuple(name for name, s in SCHEDULERS.items() if s.hands_over)  # schedulers that exploit and explore
NOT_NUMBERS = ("time_attr", "hard_stop", "mutations", "synch")  # scheduler options that are not positive numbers
FRACTIONS = {"quantile_fraction": 0.5, "resample_probability": 1.0}  # options up to this bound
ZERO_OK = ("burn_in_period", "resample_probability", "min_time_slice")  # 0 is what Ray's default means
WHOLE = ("brackets", "min_samples_required")  # counts
ABOVE_ONE = ("reduction_factor",)  # a rung keeps 1 / reduction_factor of the trials: 1 keeps them all, forever
TUNE_KEYS = ("metric", "mode", "num_samples", "search", "scheduler", "max_concurrent_trials",
             "resources", "time_budget_s", "max_failures", "name", "dir", "address", "runtime_env", "storage",
             "skip_done", "skip_ignore")


@dataclass(frozen=True)
class TuneSettings:
    """How to run a Tune search: the ``tune`` section of a space file."""

    name: str
    metric: str = "result"
    mode: str = "max"
    num_samples: int = 10
    search: str = "random"
    search_options: dict = field(default_factory=dict)
    scheduler: str = "fifo"
    scheduler_options: dict = field(default_factory=dict)
    max_concurrent_trials: Optional[int] = None
    resources: Resources = field(default_factory=Resources)
    time_budget_s: Optional[float] = None
    max_failures: int = 0
    dir: Optional[str] = None
    address: Optional[str] = None
    runtime_env: dict = field(default_factory=dict)
    storage: Optional[str] = None  # where checkpoints and Tune's own state go (a shared path or a URI)
    skip_done: bool = False  # a trial whose sampled config an earlier COMPLETED run (same source) ran is not run
    skip_ignore: tuple = ()  # config keys that do not make a run another (a log folder, a worker count)


def _typed(raw: Any, source: str, where: str, accepted: tuple) -> tuple:
    """``name`` or ``{type: name, option: value}`` -> (name, options)."""
    if isinstance(raw, str):
        name, options = raw, {}
    elif isinstance(raw, dict) and isinstance(raw.get("type"), str):
        options = {k: v for k, v in raw.items() if k != "type"}
        name = raw["type"]
    else:
        raise SpecError(source, where, f"expected a name or {{type: name, ...}}; accepted: {', '.join(accepted)}")
    if name not in accepted:
        raise SpecError(source, where, f"unknown {where.split(': ')[-1]} {name!r}; accepted: {', '.join(accepted)}")
    return name, options


def _search(raw: Any, source: str, where: str) -> tuple:
    name, options = _typed(raw, source, where, SEARCHERS)
    for k, v in options.items():
        if k != "seed":
            raise SpecError(source, f"{where}: {k}", "unknown option; accepted: type, seed")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise SpecError(source, f"{where}: seed", f"must be a whole number, got {v!r}")
    return name, options


def _scheduler(raw: Any, source: str, where: str) -> tuple:
    name, options = _typed(raw, source, where, tuple(SCHEDULERS))
    for k, v in options.items():
        if k not in SCHEDULERS[name].options:
            accepted = ", ".join(SCHEDULERS[name].options) or "none"
            raise SpecError(source, f"{where}: {k}", f"unknown option for {name}; accepted: {accepted}")
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if k in ZERO_OK and not (number and 0 <= v < float("inf")):
            raise SpecError(source, f"{where}: {k}", f"must be a number of at least 0, got {v!r}")
        if k not in NOT_NUMBERS and k not in ZERO_OK and not (number and 0 < v < float("inf")):
            raise SpecError(source, f"{where}: {k}", f"must be a number above 0, got {v!r}")
        if k in FRACTIONS and v > FRACTIONS[k]:
            raise SpecError(source, f"{where}: {k}", f"must be at most {FRACTIONS[k]:g}, got {v!r}")
        if k in WHOLE and not isinstance(v, int):
            raise SpecError(source, f"{where}: {k}", f"must be a whole number, got {v!r}")
        if k in ABOVE_ONE and v <= 1:
            raise SpecError(source, f"{where}: {k}", f"must be above 1 (a rung keeps 1/{k} of its trials), "
                                                     f"got {v!r}")
        if k in ("synch", "hard_stop") and not isinstance(v, bool):
            raise SpecError(source, f"{where}: {k}", f"must be true or false, got {v!r}")
    _together(name, options, source, where)
    return name, options


def _together(name: str, options: dict, source: str, where: str) -> None:
    """Options each valid that are wrong together, refused here rather than by Ray once the search runs."""
    if name == "asha":
        max_t, grace = options.get("max_t", SCHEDULERS[name].max_t), options.get("grace_period", 1)
        if grace > max_t:
            given = "" if "max_t" in options else " (ASHA's default max_t)"
            raise SpecError(source, f"{where}: grace_period", f"must be at most max_t, {max_t:g}{given}, "
                                                              f"got {grace:g}: raise max_t or lower grace_period")


def parse_tune_settings(raw: Any, source: str, default_name: str) -> TuneSettings:
    where = "tune"
    raw, out = _open_section(raw, source, where, TUNE_KEYS, default_name)
    _set(out, "num_samples", _whole(raw, "num_samples", source, where, 1))
    _set(out, "max_concurrent_trials", _whole(raw, "max_concurrent_trials", source, where, 1))
    # Tune reads -1 as "retry forever": every retry is a new Sacred run, so a bound is required
    _set(out, "max_failures", _whole(raw, "max_failures", source, where, 0))
    _set(out, "time_budget_s", _seconds(raw, "time_budget_s", source, where))
    if raw.get("search") is not None:
        out["search"], out["search_options"] = _search(raw["search"], source, f"{where}: search")
    if raw.get("scheduler") is not None:
        out["scheduler"], out["scheduler_options"] = _scheduler(raw["scheduler"], source, f"{where}: scheduler")
    return TuneSettings(**out)
