"""The vocabulary both sweep files share: dotted config keys, ``+label`` named configs,
distributions and generators written as one-key mappings, ``fixed`` sections, and the
default sweep name. Pure data, like the rest of ``spec``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from .distributions import DISTRIBUTIONS, GENERATORS
from .errors import SpecError


def is_named_key(key: str) -> bool:
    return key.startswith("+")


def check_key(key: Any, source: str, where: str) -> str:
    if not isinstance(key, str):
        raise SpecError(source, where, f"key {key!r} must be a config path like optimizer.lr")
    if is_named_key(key):
        if len(key) < 2:
            raise SpecError(source, where, "'+' needs a label, e.g. +size: [small, large]")
        return key
    if not all(part.isidentifier() for part in key.split(".")):  # Python names, as Sacred's config entries
        raise SpecError(
            source, where,
            f"{key!r} is not a config path; write dotted names like optimizer.lr",
        )
    return key


def named_value(value: Any, source: str, where: str) -> tuple:
    """A named-config value: one name or a list of names applied together."""
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise SpecError(
            source, where,
            f"named configs are given by name, e.g. small or [small, fast], got {value!r}",
        )
    return tuple(names)


def is_distribution(value: Any) -> bool:
    """``{name: args}`` with non-mapping args: a distribution (maybe a misspelt one)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (name, args), = value.items()
    return name in DISTRIBUTIONS or not isinstance(args, dict)


def generator_of(value: Any) -> Optional[str]:
    if isinstance(value, dict) and len(value) == 1:
        (name,) = value
        if name in GENERATORS:
            return name
    return None


def flatten(mapping: Any, source: str, where: str, leaf=None) -> dict:
    """Flatten nested mappings to dotted keys, stopping at ``leaf(value)`` values."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise SpecError(source, where, f"expected a mapping of config paths, got {mapping!r}")
    out: dict = {}
    for key, value in mapping.items():
        key = check_key(key, source, where)
        if (
            isinstance(value, dict)
            and value
            and not is_named_key(key)
            and not (leaf and leaf(value))
        ):
            for sub, subvalue in flatten(value, source, f"{where}: {key}", leaf).items():
                out[f"{key}.{sub}"] = subvalue
        else:
            out[key] = value
    return out


def parse_fixed(mapping: Any, source: str, where: str) -> dict:
    out = {}
    for key, value in flatten(mapping, source, where, leaf=generator_of).items():
        if is_named_key(key):
            out[key] = named_value(value, source, f"{where}: {key}")
        elif generator_of(value) == "value":
            out[key] = value["value"]
        elif generator_of(value):
            raise SpecError(source, f"{where}: {key}", "a generator makes an axis; move it to grid")
        else:
            out[key] = value
    return out


def default_name(source: str) -> str:
    stem = os.path.splitext(os.path.basename(source))[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "sweep"



@dataclass
class SweepFile:
    """A sweep file, resolved: what a grid file and a space file have in common."""

    source: str  # the file's name as errors show it
    settings: Any  # how to run it: SweepSettings or TuneSettings
    raw: dict  # the file as parsed
    warnings: list = field(default_factory=list)
    path: Optional[str] = None  # the file it was read from (absolute), if any
    overrides: dict = field(default_factory=dict)  # the command line's updates, dotted
    named_configs: tuple = ()  # the command line's named configs
