"""From a grid file's resolved levels to its trials, one at a time.

``iter_trials`` yields the numbered, keyed trials (exclusions applied, repeats of a config
dropped) without holding them all; ``scan`` walks them once for what a grid needs before
anything runs (the count, the first and last trials, which keys vary, the config keys each
named-config combination uses), so a 900,000-trial ``--dry-run`` runs in seconds in flat
memory. Repeats are looked for only where the file can make them (variants, random draws,
repeated axis values, command-line updates of swept keys), with a set of digests.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from .trial import Trial, canonical, identity, key_digest
from .vocabulary import is_named_key, named_value

HEAD, TAIL = 990, 10  # the trials a dry run shows of a long grid


@dataclass
class Level:
    """One leaf of the variant tree: everything it sweeps, after inheritance."""

    fixed: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    zips: list = field(default_factory=list)
    samples: Optional[int] = None
    random_seed: int = 0
    params: dict = field(default_factory=dict)
    seeds: Optional[list] = None
    exclude: list = field(default_factory=list)

    def keys(self) -> set:
        keys = set(self.fixed) | set(self.grid) | set(self.params)
        for group in self.zips:
            keys |= set(group)
        return keys

    def drop(self, keys: set) -> None:
        """Forget this level's definition of ``keys`` (a child level redefines them)."""
        for k in keys:
            self.fixed.pop(k, None)
            self.grid.pop(k, None)
            self.params.pop(k, None)
        self.zips = [{k: v for k, v in group.items() if k not in keys} for group in self.zips]
        self.zips = [g for g in self.zips if g]

    def size(self) -> int:
        """How many trials it expands to, before exclusions and repeats (counted, not built)."""
        n = math.prod(len(v) for v in self.grid.values())
        n *= math.prod(len(next(iter(g.values()))) for g in self.zips)
        n *= self.samples or 1
        return n * len(self.seeds or [None])


@dataclass
class Scan:
    """One pass over a grid's trials: what the checks and a dry run need."""

    count: int = 0
    excluded: int = 0
    repeats: int = 0
    head: list = field(default_factory=list)
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL))
    keys_by_named: dict = field(default_factory=dict)  # named configs -> the config keys their trials set
    has_variants: bool = False
    _first: dict = field(default_factory=dict)  # key -> (value, repr) in the first trial
    _varying: dict = field(default_factory=dict)  # keys seen to differ, in first-seen order
    _shape: Any = None  # named configs and update keys of the trial before

    def add(self, trial: Trial) -> None:
        values = trial.values
        if self.count < HEAD:
            self.head.append(trial)
        else:
            self.tail.append(trial)
        self.count += 1
        self.has_variants = self.has_variants or trial.variant is not None
        shape = (trial.named, tuple(trial.updates))
        if shape != self._shape:  # most trials set the same keys as the one before
            self._shape = shape
            self.keys_by_named.setdefault(trial.named_configs, set()).update(trial.updates)
        if any(isinstance(v, dict) for v in trial.updates.values()):
            self.keys_by_named[trial.named_configs].update(_inside(trial.updates))
        if self.count == 1:
            self._first = {k: (v, repr(v)) for k, v in values.items()}
            return
        for k, v in values.items():
            if k in self._varying:
                continue
            first = self._first.get(k)
            # fixed values are the same object in every trial: no repr needed
            if first is None or (v is not first[0] and repr(v) != first[1]):
                self._varying[k] = None
        if len(values) != len(self._first):
            self._varying.update({k: None for k in self._first if k not in values})

    @property
    def varying(self) -> list:
        """The keys whose values differ between trials, in the order the trials hold them."""
        ordered = [k for k in self._first if k in self._varying]
        return ordered + [k for k in self._varying if k not in self._first]

    def common(self) -> dict:
        """The values every trial has alike (from the first trial)."""
        first = self.head[0].values if self.head else {}
        return {k: v for k, v in first.items() if k not in self._varying}



def _inside(updates: dict, prefix: str = "") -> set:
    """The dotted paths inside dict values (``opt: {lrr: 7}`` -> ``opt.lrr``): checked as keys too."""
    paths = set()
    for key, value in updates.items():
        if isinstance(value, dict):
            for inner, sub in value.items():
                path = f"{prefix}{key}.{inner}"
                paths.add(path)
                if isinstance(sub, dict):
                    paths |= _inside({inner: sub}, f"{prefix}{key}.")
    return paths


def iter_trials(levels: list, overrides: Optional[dict] = None, named_configs: tuple = (),
                scan: Optional[Scan] = None, keyed: bool = True) -> Iterator[Trial]:
    """The grid's trials in order; ``scan`` (if given) counts what was excluded or repeated.
    ``keyed=False`` leaves a trial's key empty where no repeat has to be looked for (the caller
    keys the few it keeps with ``keyed``)."""
    overrides = overrides or {}
    seen: Optional[set] = set() if _may_repeat(levels, overrides) else None
    index = 0
    for variant, level in levels:
        for values, seed in _expand(level, variant):
            updates, named, seed = _split(values, seed, overrides, named_configs)
            names = tuple(n for group in named.values() for n in group)
            if level.exclude:
                flat = Trial(0, variant, updates, named, seed).values
                if any(_matches(flat, rule) for rule in level.exclude):
                    if scan is not None:
                        scan.excluded += 1
                    continue
            if seen is None and not keyed:
                yield Trial(index, variant, updates, named, seed)
                index += 1
                continue
            digest = key_digest(updates, names, seed)
            if seen is not None:
                if digest in seen:
                    if scan is not None:
                        scan.repeats += 1
                    continue
                seen.add(digest)
            yield Trial(index, variant, updates, named, seed, digest.hex()[:12])
            index += 1


def keyed(trial: Trial) -> Trial:
    """The trial with its key, if it was made without one."""
    if trial.key:
        return trial
    return dataclasses.replace(trial, key=key_digest(trial.updates, trial.named_configs, trial.seed).hex()[:12])


def scan(levels: list, overrides: Optional[dict] = None, named_configs: tuple = ()) -> Scan:
    """One pass over the trials (see ``Scan``); the trials it keeps have their keys."""
    out = Scan()
    for trial in iter_trials(levels, overrides, named_configs, out, keyed=False):
        out.add(trial)
    out.head = [keyed(t) for t in out.head]
    out.tail = collections.deque((keyed(t) for t in out.tail), maxlen=TAIL)
    return out


def _may_repeat(levels: list, overrides: dict) -> bool:
    """Whether two of the grid's points can run the same config (else no digest set is kept)."""
    if len(levels) > 1:
        return True
    for _, level in levels:
        if level.params:
            return True  # random draws (choice, randint ...) can repeat
        swept = set(level.grid) | {k for g in level.zips for k in g}
        if any(o == k or o.startswith(k + ".") or k.startswith(o + ".") for o in overrides for k in swept | {"seed"}):
            return True
        for values in level.grid.values():
            if len({canonical(v) for v in values}) < len(values):
                return True
        for group in level.zips:
            rows = list(zip(*group.values()))
            if len({canonical(list(r)) for r in rows}) < len(rows):
                return True
    return False


def _matches(trial_values: dict, rule: dict) -> bool:
    for key, wanted in rule.items():
        if key not in trial_values:
            return False
        have = trial_values[key]
        options = wanted if isinstance(wanted, list) and not isinstance(have, list) else [wanted]
        if not any(_same(have, w) for w in options):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _draw(level: Level, point: dict, variant: Optional[str]) -> list:
    """``samples`` draws of every random parameter for one grid point.

    Every parameter has its own stream, seeded by the random seed, its key and the
    grid point, so adding a grid value or a parameter leaves other draws unchanged.
    """
    if not level.params:
        return [{}]
    columns = {}
    for key, dist in level.params.items():
        rng = random.Random(f"{level.random_seed}|{variant}|{key}|{identity(point, (), None)}")
        columns[key] = [dist.sample(rng) for _ in range(level.samples or 1)]
    return [{k: col[i] for k, col in columns.items()} for i in range(level.samples or 1)]


def _expand(level: Level, variant: Optional[str]):
    axes = [[{k: v} for v in values] for k, values in level.grid.items()]
    axes += [[dict(zip(group, row)) for row in zip(*group.values())] for group in level.zips]
    for combo in itertools.product(*axes):
        point: dict = {}
        for part in combo:
            point.update(part)
        for draw in _draw(level, point, variant):
            values = {**level.fixed, **point}
            for k, v in draw.items():
                values[k] = named_value(v, "", "") if is_named_key(k) else v
            for seed in level.seeds or [None]:
                yield values, seed


def _split(values: dict, seed: Optional[int], overrides: dict, named_configs: tuple) -> tuple:
    """(updates, named configs by label, seed) of one grid point, the command line's over the file's."""
    updates, named = {}, {}
    for k, v in values.items():
        if is_named_key(k):
            named[k] = v
        elif k == "seed":
            seed = v
        else:
            updates[k] = v
    updates.update(overrides)
    if "seed" in updates:
        seed = updates.pop("seed")
    if named_configs:
        named["+command line"] = tuple(named_configs)
    return updates, named, seed


__all__ = ["HEAD", "Level", "Scan", "TAIL", "iter_trials", "keyed", "scan"]
