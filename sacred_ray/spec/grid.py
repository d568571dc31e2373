"""The grid-file language of ``ray_sweep``: fixed, grid, zip, random, seeds, exclude, variants.

``load_grid`` turns a file (or a dict) into the exact list of trials it means. It
imports neither Ray nor Sacred: a trial is only data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from .distributions import (
    GENERATORS,
    SAMPLED,
    Distribution,
    expand_generator,
    parse_distribution,
)
from .errors import SpecError
from .expand import Level, Scan, iter_trials, scan
from .settings import parse_sweep_settings
from .vocabulary import (
    SweepFile,
    default_name,
    flatten,
    generator_of,
    is_distribution,
    is_named_key,
    named_value,
    parse_fixed,
)
from .yaml_file import read_spec

GRID_SECTIONS = ("fixed", "grid", "zip", "random", "seeds", "exclude", "variants")
TOP_SECTIONS = GRID_SECTIONS + ("sweep",)
MAX_TRIALS = 1_000_000


@dataclass
class GridSpec(SweepFile):
    """A grid file, resolved: its trials, how to run them, and what to warn about.

    ``trials`` is built on first use; ``scan`` holds what one pass over them found (their
    count, the first and last, the keys that vary), which is all checks and a dry run need."""

    levels: list = field(default_factory=list)
    scan: Scan = field(default_factory=Scan)
    _trials: Optional[list] = field(default=None, repr=False)

    @property
    def trials(self) -> list:
        if self._trials is None:
            self._trials = list(iter_trials(self.levels, self.overrides, self.named_configs))
        return self._trials


def _axis(key: str, value: Any, source: str, where: str) -> list:
    gen = generator_of(value)
    if gen is not None:
        values = expand_generator(gen, value[gen], source, f"{where}: {key}: {gen}")
    elif isinstance(value, dict):
        raise SpecError(
            source, f"{where}: {key}",
            f"unknown value generator {sorted(map(str, value))}; accepted: {', '.join(GENERATORS)}",
        )
    elif isinstance(value, list):
        values = value
    else:
        values = [value]
    if not values:
        raise SpecError(source, f"{where}: {key}", "empty list; an axis needs at least one value")
    if is_named_key(key):
        return [named_value(v, source, f"{where}: {key}") for v in values]
    return values


def _zip(raw: Any, source: str, where: str) -> list:
    groups = raw if isinstance(raw, list) else [raw]
    out = []
    for i, group in enumerate(groups):
        here = where if not isinstance(raw, list) else f"{where}[{i}]"
        if not isinstance(group, dict) or not group:
            raise SpecError(source, here, "expected a mapping of keys to equal-length lists")
        axes = {k: _axis(k, v, source, here) for k, v in flatten(group, source, here, leaf=generator_of).items()}
        lengths = {k: len(v) for k, v in axes.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k} has {n}" for k, n in lengths.items())
            raise SpecError(source, here, f"zipped lists must have equal length ({detail})")
        out.append(axes)
    return out


def _seeds(raw: Any, source: str, where: str) -> list:
    if isinstance(raw, bool) or raw is None:
        raise SpecError(source, where, f"seeds is a count or a list of integers, got {raw!r}")
    if isinstance(raw, int):
        if raw < 1:
            raise SpecError(source, where, f"seeds must be at least 1, got {raw}")
        if raw > MAX_TRIALS:
            raise SpecError(source, where, f"{raw:,} seeds is more than the {MAX_TRIALS:,} trials a sweep may have")
        return list(range(raw))
    if isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool) for s in raw):
        if len(set(raw)) != len(raw):
            raise SpecError(source, where, "seeds lists a seed twice; list each seed once")
        return list(raw)
    raise SpecError(source, where, f"seeds is a count or a non-empty list of integers, got {raw!r}")


def _random(raw: Any, level: Level, source: str, where: str) -> None:
    if not isinstance(raw, dict):
        raise SpecError(source, where, "expected a mapping with samples, seed and params")
    unknown = set(raw) - {"samples", "seed", "params"}
    if unknown:
        raise SpecError(source, f"{where}: {sorted(map(str, unknown))[0]}", "unknown key; accepted: samples, seed, params")
    if "samples" in raw:
        samples = raw["samples"]
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise SpecError(source, f"{where}: samples", f"must be a whole number of at least 1, got {samples!r}")
        level.samples = samples
    if "seed" in raw:
        seed = raw["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise SpecError(source, f"{where}: seed", f"must be an integer, got {seed!r}")
        level.random_seed = seed

    params = flatten(raw.get("params"), source, f"{where}: params", leaf=is_distribution)
    for key, value in params.items():
        dist = parse_distribution(value, source, f"{where}: params: {key}", SAMPLED + ("value",))
        if is_named_key(key):
            for cat in dist.args if dist.name == "choice" else []:
                named_value(cat, source, f"{where}: params: {key}")
            if dist.name not in ("choice", "value"):
                raise SpecError(source, f"{where}: params: {key}", "named configs are drawn with choice: [a, b]")
        level.params[key] = dist


def _exclude(raw: Any, source: str, where: str) -> list:
    rules = raw if isinstance(raw, list) else [raw]
    out = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or not rule:
            raise SpecError(source, f"{where}[{i}]", "each rule is a mapping of keys to values, e.g. {optimizer.lr: 0.1}")
        out.append(flatten(rule, source, f"{where}[{i}]"))
    return out


def _merge(parent: Level, raw: dict, source: str, where: str) -> Level:
    """A child level: the parent's everything, with the child's keys replacing them."""
    child = Level(
        fixed=dict(parent.fixed), grid=dict(parent.grid), zips=[dict(g) for g in parent.zips],
        samples=parent.samples, random_seed=parent.random_seed, params=dict(parent.params),
        seeds=parent.seeds, exclude=list(parent.exclude),
    )
    prefix = f"{where}: " if where else ""
    fixed = parse_fixed(raw.get("fixed"), source, f"{prefix}fixed")
    grid_raw = raw.get("grid")
    if "grid" in raw and (not isinstance(grid_raw, dict) or not grid_raw):
        raise SpecError(source, f"{prefix}grid", "expected a non-empty mapping of keys to lists")
    grid = {
        k: _axis(k, v, source, f"{prefix}grid")
        for k, v in flatten(grid_raw, source, f"{prefix}grid", leaf=generator_of).items()
    }
    zips = _zip(raw["zip"], source, f"{prefix}zip") if "zip" in raw else []
    new_random = Level()
    if "random" in raw:
        _random(raw["random"], new_random, source, f"{prefix}random")

    sections = [("fixed", fixed), ("grid", grid), ("random", new_random.params)]
    sections += [("zip", g) for g in zips]
    seen: dict = {}
    for name, keys in sections:
        for k in keys:
            if k in seen:
                raise SpecError(source, f"{prefix}{name}: {k}", f"also set in {seen[k]}; set each key in one place")
            seen[k] = name
    child.drop(set(seen))
    child.fixed.update(fixed)
    child.grid.update(grid)
    child.zips.extend(zips)
    child.params.update(new_random.params)
    if "random" in raw:
        if new_random.samples is not None:
            child.samples = new_random.samples
        if "seed" in raw["random"]:
            child.random_seed = new_random.random_seed
    if "seeds" in raw:
        child.seeds = _seeds(raw["seeds"], source, f"{prefix}seeds")
    if "exclude" in raw:
        child.exclude.extend(_exclude(raw["exclude"], source, f"{prefix}exclude"))
    return child


def _leaves(raw: dict, parent: Level, source: str, where: str, variant: Optional[str]):
    """Yield (variant path, level) for every leaf of the variant tree."""
    allowed = TOP_SECTIONS if not where else GRID_SECTIONS
    for key in raw:
        if key not in allowed:
            hint = "; 'sweep' belongs at the top level" if key == "sweep" else ""
            raise SpecError(
                source, f"{where + ': ' if where else ''}{key}",
                f"unknown key; accepted: {', '.join(allowed)}{hint}",
            )
    level = _merge(parent, raw, source, where)
    variants = raw.get("variants")
    if variants is None:
        yield variant, level
        return
    prefix = f"{where}: " if where else ""
    if not isinstance(variants, dict) or not variants:
        raise SpecError(source, f"{prefix}variants", "expected a mapping of variant names to sub-sweeps")
    for name, sub in variants.items():
        if not isinstance(name, str) or not name:
            raise SpecError(source, f"{prefix}variants", f"variant names are strings, got {name!r}")
        if sub is None:
            sub = {}
        if not isinstance(sub, dict):
            raise SpecError(source, f"{prefix}variants: {name}", "a variant is a mapping like {fixed: {model: LSTM}}")
        path = name if variant is None else f"{variant}/{name}"
        yield from _leaves(sub, level, source, f"{prefix}variants: {name}", path)


def _check_overlaps(levels: list, source: str) -> None:
    """Refuse two definitions of one config entry (``opt: [{lr: 7}]`` beside ``opt.lr: [0.5]``):
    which one a trial ran would depend on their order in the file."""
    for variant, level in levels:
        keys = sorted(k for k in level.keys() if not is_named_key(k))
        for key in keys:
            inner = next((k for k in keys if k.startswith(key + ".")), None)
            if inner is not None:
                where = f"variants: {variant}: {_section_of(level, inner)}" if variant else _section_of(level, inner)
                raise SpecError(source, where, f"{key!r} and {inner!r} both set {inner}; set it once, either as "
                                               f"{inner} or inside {key}")


def _section_of(level: Level, key: str) -> str:
    for section, body in (("fixed", level.fixed), ("grid", level.grid), ("random", level.params)):
        if key in body:
            return section
    return "zip"


def _check_exclude_keys(levels: list, source: str) -> None:
    """Refuse an exclude rule that no part of the file can match. A rule written above the
    variants applies to each of them, and matches only in those that set its keys."""
    rules: dict = {}  # (position, rule) -> whether some variant sets all of its keys
    for _variant, level in levels:
        known = level.keys() | {"seed"}
        for i, rule in enumerate(level.exclude):
            entry = rules.setdefault((i, repr(rule)), [rule, False])
            entry[1] = entry[1] or all(_sets(known, key) for key in rule)
    every_key = set().union(*(level.keys() for _, level in levels)) | {"seed"}
    for (i, _), (rule, matchable) in rules.items():
        if matchable:
            continue
        unknown = next((key for key in rule if not _sets(every_key, key)), None)
        if unknown is not None:
            raise SpecError(source, f"exclude[{i}]: {unknown}",
                            "is not swept or fixed in this file, so the rule can never match; fix the key")
        raise SpecError(source, f"exclude[{i}]", f"no variant sets all of {', '.join(rule)}, so the rule can never "
                                                 f"match; split it or move it into the variant that sets them")


def _sets(known: set, key: str) -> bool:
    return key in known or any(key.startswith(k + ".") for k in known)


def load_grid(
    spec: Union[str, os.PathLike, dict],
    overrides: Optional[dict] = None,
    named_configs: tuple = (),
    source: Optional[str] = None,
) -> GridSpec:
    """Resolve a grid file (path or already-parsed dict) into its trials.

    ``overrides`` (dotted keys) and ``named_configs`` come from the command line and
    apply to every trial, over what the file says.
    """
    raw, source, path = read_spec(spec, source, TOP_SECTIONS, "give at least a grid: or fixed: section")
    if "space" in raw or "tune" in raw:
        raise SpecError(source, "space" if "space" in raw else "tune", "is a tune_with section; run this file with tune_with, or use grid: for ray_sweep")
    settings = parse_sweep_settings(raw.get("sweep"), source, default_name=default_name(source))
    levels = list(_leaves(raw, Level(), source, "", None))
    for variant, level in levels:
        if level.params and level.samples is None:
            level.samples = 1
        if level.samples and not level.params:
            where = f"variants: {variant}: random" if variant else "random"
            raise SpecError(source, where, "samples without params; add params: {name: {uniform: [0, 1]}}")
        if level.seeds and ("seed" in level.keys()):
            raise SpecError(source, "seeds", "the file also sets 'seed'; use one of seeds: or seed")
    _check_exclude_keys(levels, source)
    _check_overlaps(levels, source)
    total = sum(level.size() for _, level in levels)
    if total > MAX_TRIALS:
        raise SpecError(source, "", f"means {total:,} trials, more than {MAX_TRIALS:,}; split the sweep or use random "
                                    f"sampling")
    found = scan(levels, overrides, named_configs)
    if not found.count:
        why = f" (exclude removed all {found.excluded})" if found.excluded else ""
        raise SpecError(source, "", f"gives no trials{why}; loosen exclude or add values")
    warnings = [f"{source}: dropped {found.repeats} duplicate trial(s) that run the same config as another trial"
                ] if found.repeats else []
    return GridSpec(source=source, settings=settings, raw=raw, warnings=warnings, path=path,
                    overrides=dict(overrides or {}), named_configs=tuple(named_configs), levels=levels, scan=found)


__all__ = ["GridSpec", "load_grid", "Distribution"]
