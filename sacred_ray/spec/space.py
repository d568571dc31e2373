"""The space-file language of ``tune_with``: fixed, space, variants, tune.

A space file describes a search, not a list: ``load_space`` resolves it into one
``SpaceVariant`` per leaf of the variant tree (what each may set and sample) and the
Tune settings. The engine compiles that into Tune's param_space; nothing here
imports Ray or Sacred.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

from .distributions import DISTRIBUTIONS, Distribution, parse_distribution
from .errors import SpecError
from .settings import POPULATION, TuneSettings, parse_tune_settings
from .vocabulary import (
    SweepFile,
    check_key,
    default_name,
    flatten,
    is_distribution,
    is_named_key,
    named_value,
    parse_fixed,
)
from .yaml_file import read_spec

SPACE_SECTIONS = ("fixed", "space", "variants")
TOP_SECTIONS = SPACE_SECTIONS + ("tune",)
SPACE_DISTRIBUTIONS = tuple(DISTRIBUTIONS)


@dataclass
class SpaceVariant:
    """One leaf of the variant tree: constants and distributions, by dotted key."""

    name: Optional[str]
    fixed: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)

    @property
    def grid_size(self) -> int:
        n = 1
        for dist in self.space.values():
            if dist.name == "grid":
                n *= len(dist.args)
        return n


@dataclass
class SpaceSpec(SweepFile):
    """A space file, resolved: one variant per leaf of its variant tree, and the Tune settings."""

    variants: list = field(default_factory=list)


def _space(raw, source: str, where: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise SpecError(source, where, "expected a non-empty mapping of config paths to distributions")
    out = {}
    for key, value in flatten(raw, source, where, leaf=lambda v: is_distribution(v) or not v).items():
        check_key(key, source, where)
        dist = parse_distribution(value, source, f"{where}: {key}", SPACE_DISTRIBUTIONS)
        if is_named_key(key):
            if dist.name not in ("choice", "grid", "value"):
                raise SpecError(source, f"{where}: {key}", "named configs are searched with choice: [...] or grid: [...]")
            dist = Distribution(dist.name, tuple(named_value(c, source, f"{where}: {key}") for c in dist.args))
        out[key] = dist
    return out


def _leaves(raw: dict, fixed: dict, space: dict, source: str, where: str, variant):
    allowed = TOP_SECTIONS if not where else SPACE_SECTIONS
    prefix = f"{where}: " if where else ""
    for key in raw:
        if key not in allowed:
            hint = " ('grid', 'zip' and 'random' are ray_sweep sections; use space: with {grid: [...]} or a distribution)" if key in ("grid", "zip", "random", "seeds", "exclude") else ""
            raise SpecError(source, f"{prefix}{key}", f"unknown key; accepted: {', '.join(allowed)}{hint}")
    new_fixed = parse_fixed(raw.get("fixed"), source, f"{prefix}fixed")
    new_space = _space(raw.get("space"), source, f"{prefix}space")
    both = set(new_fixed) & set(new_space)
    if both:
        raise SpecError(source, f"{prefix}space: {sorted(both)[0]}", "also set in fixed; set each key in one place")
    fixed = {k: v for k, v in fixed.items() if k not in new_space}
    space = {k: v for k, v in space.items() if k not in new_fixed}
    fixed.update(new_fixed)
    space.update(new_space)
    variants = raw.get("variants")
    if variants is None:
        yield SpaceVariant(variant, fixed, space)
        return
    if not isinstance(variants, dict) or not variants:
        raise SpecError(source, f"{prefix}variants", "expected a mapping of variant names to sub-spaces")
    for name, sub in variants.items():
        if not isinstance(name, str) or not name:
            raise SpecError(source, f"{prefix}variants", f"variant names are strings, got {name!r}")
        sub = sub or {}
        if not isinstance(sub, dict):
            raise SpecError(source, f"{prefix}variants: {name}", "a variant is a mapping like {fixed: {model: LSTM}}")
        path = name if variant is None else f"{variant}/{name}"
        yield from _leaves(sub, dict(fixed), dict(space), source, f"{prefix}variants: {name}", path)


def _apply_command_line(variants: list, overrides: dict, named_configs: tuple, source: str) -> list:
    """Fix every variant's keys the command line sets (over the file's search); return warnings."""
    warnings = []
    for v in variants:
        for key, value in overrides.items():
            if key in v.space:
                warnings.append(f"{source}: {key}={value!r} from the command line replaces the file's search over {key}")
            v.space.pop(key, None)
            v.fixed[key] = value
        if named_configs:
            v.fixed["+command line"] = tuple(named_configs)
    return warnings


def _check_for_search(variants: list, search: str, source: str) -> None:
    for v in variants:
        for key, dist in v.space.items():
            where = f"variants: {v.name}: space: {key}" if v.name else f"space: {key}"
            if search == "grid" and dist.name not in ("grid", "value", "choice"):
                raise SpecError(source, where, f"search: grid enumerates only grid/choice values, not {dist.name}; use search: random")
            if search in ("optuna", "hyperopt") and dist.name == "grid":
                raise SpecError(source, where, f"{search} cannot enumerate grid values; write {{choice: [...]}} or use search: random")


PB2_BOUNDED = ("uniform", "quniform", "loguniform", "qloguniform")  # kinds whose first two args bound them


def _mutations(raw, sampled: dict, space: dict, source: str, where: str) -> dict:
    """PBT's ``mutations`` as {key: Distribution}: a list of sampled keys, or keys with distributions."""
    if isinstance(raw, list) and all(isinstance(k, str) for k in raw):
        for key in raw:
            if key not in sampled:
                why = ("is a grid key; pbt mutates sampled keys: write it as {choice: [...]}" if key in space
                       else "is not a key the space samples; mutate keys under space:")
                raise SpecError(source, f"{where}: {key}", why)
        return {key: sampled[key] for key in raw}
    if isinstance(raw, dict):
        mutations = {}
        for key, value in raw.items():
            if not isinstance(key, str) or key not in sampled:
                raise SpecError(source, f"{where}: {key}", "is not a key the space samples; mutate keys under space:")
            mutations[key] = parse_distribution(value, source, f"{where}: {key}", SPACE_DISTRIBUTIONS)
        return mutations
    raise SpecError(source, where, "expected a list of space keys ([lr, momentum]) or a mapping "
                                   "of keys to distributions ({lr: {loguniform: [0.0001, 0.1]}})")


def _check_pbt(variants: list, settings: TuneSettings, source: str) -> TuneSettings:
    """PBT's mutations, in the space file's vocabulary: ``mutations: [lr, ...]`` (keys the space
    samples, drawn again from their distributions), ``{lr: {loguniform: [...]}}``, or absent (every
    key the space samples). Returned in the settings as {key: Distribution}."""
    if settings.scheduler not in POPULATION:
        return settings
    kind = settings.scheduler
    where = "tune: scheduler"
    options = dict(settings.scheduler_options)
    if settings.search not in ("random", "grid"):
        raise SpecError(source, "tune: search", f"{kind} explores from the trials it runs; {settings.search} cannot "
                                                "search beside it: use search: random")
    if len(variants) > 1:
        raise SpecError(source, "variants", f"{kind} mutates one space; write the search without variants")
    if "perturbation_interval" not in options:
        raise SpecError(source, where, f"{kind} needs perturbation_interval: the reports of the metric between "
                                       "explorations (e.g. perturbation_interval: 4)")
    space = variants[0].space
    sampled = {k: d for k, d in space.items() if d.name not in ("grid", "value") and not is_named_key(k)}
    raw = options.get("mutations")
    mutations = sampled if raw is None else _mutations(raw, sampled, space, source, f"{where}: mutations")
    if not mutations:
        raise SpecError(source, f"{where}: mutations" if raw is not None else where,
                        f"nothing to mutate: {kind} changes keys the space samples (uniform, loguniform, choice, ...); "
                        "add one under space:, e.g. lr: {loguniform: [0.0001, 0.1]}")
    if kind == "pb2":
        for key, dist in mutations.items():
            if dist.name not in PB2_BOUNDED:
                raise SpecError(source, f"{where}: mutations: {key}" if raw is not None else f"space: {key}",
                                f"pb2 searches between two bounds ({', '.join(PB2_BOUNDED)}), not {dist.name}; "
                                "use type: pbt, or leave the key out of mutations")
    options["mutations"] = mutations
    return TuneSettings(**{**settings.__dict__, "scheduler_options": options})


def load_space(
    spec: Union[str, os.PathLike, dict],
    overrides: Optional[dict] = None,
    named_configs: tuple = (),
    source: Optional[str] = None,
) -> SpaceSpec:
    """Resolve a space file (path or dict) into its variants and Tune settings.

    ``overrides`` (dotted keys) and ``named_configs`` come from the command line;
    an override fixes a key the file would search.
    """
    raw, source, path = read_spec(spec, source, TOP_SECTIONS, "give at least a space: section")
    for section in ("grid", "zip", "random", "sweep"):
        if section in raw:
            raise SpecError(source, section, "is a ray_sweep section; run this file with ray_sweep, or write the search under space:")
    settings = parse_tune_settings(raw.get("tune"), source, default_name(source))
    variants = list(_leaves(raw, {}, {}, source, "", None))
    overrides = dict(overrides or {})
    warnings = _apply_command_line(variants, overrides, named_configs, source)
    if not any(v.space for v in variants) and len(variants) < 2:
        raise SpecError(source, "space", "nothing to search; add space: {name: {uniform: [0, 1]}} or use ray_sweep")
    search = settings.search
    _check_for_search(variants, search, source)
    if search == "grid":
        for v in variants:
            v.space = {k: Distribution("grid", d.args) if d.name == "choice" else d for k, d in v.space.items()}
    settings = _check_pbt(variants, settings, source)
    if "num_samples" not in (raw.get("tune") or {}) and search == "grid":
        settings = TuneSettings(**{**settings.__dict__, "num_samples": 1})
    return SpaceSpec(source=source, variants=variants, settings=settings, raw=raw, warnings=warnings, path=path,
                     overrides=dict(overrides), named_configs=tuple(named_configs))


def trial_count(space: SpaceSpec) -> tuple:
    """``(trials, how the count comes about)``: ``(12, "6 samples x 2 variants = 12 trials")``.
    Random and grid search run every variant and grid point ``num_samples`` times; a searcher
    (Optuna, hyperopt) runs ``num_samples`` trials in all."""
    s = space.settings
    cells = sum(v.grid_size for v in space.variants) if s.search in ("random", "grid") else 1
    total = s.num_samples * cells
    if cells == 1:
        return total, f"{total} trials"
    variants, points = len(space.variants), cells != len(space.variants)
    what = "variants x grid points" if variants > 1 and points else "variants" if variants > 1 else "grid points"
    samples = "sample" if s.num_samples == 1 else "samples"
    return total, f"{s.num_samples} {samples} x {cells} {what} = {total} trials"


@dataclass(frozen=True)
class SearchPlan:
    """A space file laid out for Tune: one cell per (variant, grid point).

    Tune's own generator enumerates ``cell`` with grid_search and samples the cell's
    variant's distributions; define-by-run searchers (Optuna) pick a ``variant`` and
    suggest its parameters under ``param_name``. ``decode`` turns the config Tune
    hands a trial back into what Sacred runs. Pure data: picklable, no Ray.
    """

    variants: tuple
    cells: tuple  # (variant index, {grid key: value})
    seed: int = 0

    @classmethod
    def of(cls, space: SpaceSpec) -> SearchPlan:
        cells = []
        for i, v in enumerate(space.variants):
            grid = [(k, d.args) for k, d in v.space.items() if d.name == "grid"]
            points = [{}]
            for key, options in grid:
                points = [{**p, key: o} for p in points for o in options]
            cells += [(i, p) for p in points]
        seed = space.settings.search_options.get("seed", 0)
        return cls(tuple(space.variants), tuple(cells), int(seed or 0))

    def sampled(self, variant_index: int) -> dict:
        v = self.variants[variant_index]
        return {k: d for k, d in v.space.items() if d.name != "grid"}

    def sample_cell(self, cell: int, draw: int) -> dict:
        """Values of a cell's sampled parameters for the ``draw``-th trial of that cell."""
        import random

        variant_index, _ = self.cells[cell]
        out = {}
        for key, dist in self.sampled(variant_index).items():
            rng = random.Random(f"{self.seed}|{cell}|{key}|{draw}")
            out[key] = dist.sample(rng)
        return out

    def param_name(self, variant_index: int, key: str) -> str:
        """One searcher parameter per key, unless variants give the key different distributions.

        Never contains '/': Tune reads it as nesting in a trial's config."""
        dist = self.variants[variant_index].space[key]
        others = [v.space.get(key) for v in self.variants if key in v.space]
        if all(o == dist for o in others):
            return key
        return f"{self.variants[variant_index].name.replace('/', '.')}:{key}"

    def decode(self, config: dict) -> tuple:
        """(variant name, dotted updates, named configs) for the config of one Tune trial."""
        variant, updates, labels = self.decode_labelled(config)
        return variant, updates, tuple(name for names in labels.values() for name in names)

    def decode_labelled(self, config: dict) -> tuple:
        """As ``decode``, with the named configs by the file's ``+label`` ({"+size": ("small",)})."""
        if "cell" in config:
            variant_index, grid = self.cells[config["cell"]]
            values = {**grid, **dict(config.get("params") or {})}
        else:  # a define-by-run searcher's config; hyperopt nests it in its chosen branch
            config = dict(config.get("branch") or config)
            variant_index = int(config.get("variant_index", 0))
            values = {}
            for key, dist in self.sampled(variant_index).items():
                values[key] = dist.kind.decode(dist.args, config[self.param_name(variant_index, key)])
        variant = self.variants[variant_index]
        values = {**variant.fixed, **values}
        updates, labels = {}, {}
        for key, value in values.items():
            if key.startswith("+"):
                labels[key] = tuple(value) if isinstance(value, tuple) else (value,)
            else:
                updates[key] = value
        return variant.name, updates, labels
