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

from ..spec import SpecError

OBSERVER_FLAGS = ("--mongo_db", "--file_storage", "--sql", "--tiny_db", "--s3", "--gcs")


def split_options(options: dict) -> tuple:
    """(observer flags for the driver, every other Sacred flag for the workers)."""
    observer = {k: v for k, v in options.items() if k in OBSERVER_FLAGS and v}
    rest = {k: v for k, v in options.items() if k not in OBSERVER_FLAGS}
    return observer, rest


def check_observer_flags(options: dict) -> None:
    """Refuse flag values Sacred would crash on, before anything starts."""
    value = options.get("--mongo_db")
    if value:
        from sacred.observers.mongo import get_pattern

        match = re.match(get_pattern(), value)
        if match is None:
            raise SpecError(
                "command line", "-m",
                f"cannot parse {redact(value)!r}; use [host:port:]db_name[.collection] (e.g. localhost:27017:sweeps)",
            )
        if match.groupdict().get("overwrite"):
            raise SpecError("command line", "-m", "a run id to overwrite (:ID) makes no sense for a sweep; drop it")


def redact(text: str) -> str:
    """Hide a password in anything that looks like a URL with credentials."""
    return re.sub(r"(//[^:/@\s]+:)[^@/\s]+@", r"\1***@", text)


def build_prototypes(ex: Experiment, observer_options: dict, failure_dir: Optional[str] = None) -> list:
    """One instance of every observer the user chose: flags first, then ex.observers."""
    holder = SimpleNamespace(observers=[])
    by_flag = {opt.get_flag(): opt for opt in ex.all_cli_options}
    for flag, value in observer_options.items():
        by_flag[flag].apply(value, holder)
    prototypes = list(holder.observers) + list(ex.observers)
    if failure_dir:
        for obs in prototypes:
            if hasattr(obs, "failure_dir") and getattr(obs, "failure_dir", None) is None:
                obs.failure_dir = failure_dir
    return prototypes


def fresh(observer):
    """A new instance for one trial: shared connections, private per-run state."""
    if hasattr(type(observer), "__copy__"):
        return copy.copy(observer)
    clone = copy.copy(observer)
    for name, value in vars(clone).items():
        if type(value) in (dict, list, set):
            setattr(clone, name, copy.copy(value))
    return clone


def observers_for_trial(prototypes: list) -> list:
    return [fresh(p) for p in prototypes]


def describe(prototypes: list) -> str:
    names = []
    for obs in prototypes:
        name = type(obs).__name__
        where = getattr(obs, "basedir", None)
        if where:
            name += f"({os.path.relpath(where)})"
        runs = getattr(obs, "runs", None)
        if runs is not None and hasattr(runs, "database"):
            name += f"({runs.database.name})"
        names.append(name)
    return ", ".join(names) or "no observers"
