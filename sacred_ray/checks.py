"""Check a resolved spec against the experiment it will run, before anything starts.

Keys must be entries of the experiment's real configuration (computed by Sacred, with
the trial's named configs applied) and named configs must exist; each problem is a
one-line SpecError with a close-match suggestion.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable
from typing import Optional

from sacred import Experiment
from sacred.initialize import create_run

from .spec import SpecError
from .spec.distributions import DISTRIBUTIONS, GENERATORS

CONFIG_FILE_EXTENSIONS = (".json", ".yaml", ".yml", ".pickle", ".pkl", ".jsonpickle")
SECTIONS = ("fixed", "grid", "zip", "random", "exclude", "space")


def experiment_name(ex: Experiment) -> str:
    return ex.path


def named_config_names(ex: Experiment) -> list:
    return [name for name, _ in ex.gather_named_configs()]


def config_paths(config: dict, prefix: str = "") -> set:
    """Every dotted path of a config: leaves and the dicts above them."""
    paths = set()
    for key, value in config.items():
        path = f"{prefix}{key}"
        paths.add(path)
        if isinstance(value, dict):
            paths |= config_paths(value, path + ".")
    return paths


def resolved_config(ex: Experiment, named_configs: tuple = ()) -> dict:
    """The configuration Sacred computes for the main command; nothing is run."""
    run = create_run(ex, ex.default_command, {}, named_configs=named_configs)
    return copy.deepcopy(run.config)


def _section_bodies(raw: dict):
    """(section, mapping) for every mapping of keys a spec file's sections hold."""
    for section in SECTIONS:
        body = raw.get(section)
        if section == "random" and isinstance(body, dict):
            body = body.get("params")
        for b in body if isinstance(body, list) else [body]:
            if isinstance(b, dict):
                yield section, b


def locate(raw, key: str, where: str = "") -> str:
    """Where in a parsed spec file ``key`` is written (e.g. ``variants: rnn: grid``)."""
    if not isinstance(raw, dict):
        return ""
    for section, body in _section_bodies(raw):
        if _has(body, key):
            return f"{where}{section}"
    for name, sub in (raw.get("variants") or {}).items() if isinstance(raw.get("variants"), dict) else []:
        found = locate(sub, key, f"{where}variants: {name}: ")
        if found:
            return found
    return ""


def _locate_within(raw, key: str) -> str:
    """Where ``key`` is written, or else the entry whose dict value holds it (``opt: [{lrr: 7}]``)."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        found = locate(raw, ".".join(parts[:n]))
        if found:
            return found
    return ""


def _has(mapping: dict, key: str) -> bool:
    if key in mapping:
        return True
    head, _, rest = key.partition(".")
    return bool(rest) and isinstance(mapping.get(head), dict) and _has(mapping[head], rest)


def _suggest(word: str, candidates: Iterable[str]) -> str:
    candidates = list(candidates)
    head, _, last = word.rpartition(".")
    typo = difflib.get_close_matches(last, GENERATORS + tuple(DISTRIBUTIONS), n=1, cutoff=0.7)
    if head in candidates and typo:
        return f"; did you mean {{{typo[0]}: ...}} for {head!r}?"
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def check_named_configs(ex: Experiment, names: Iterable[str], source: str, raw) -> None:
    known = named_config_names(ex)
    for name in names:
        if name in known:
            continue
        if name.endswith(CONFIG_FILE_EXTENSIONS) and os.path.isfile(name):
            continue
        label_where = _named_where(raw, name)
        choices = ", ".join(known) if known else "none defined"
        raise SpecError(
            source, label_where,
            f"{name!r} is not a named config of {experiment_name(ex)!r}{_suggest(name, known)} (named configs: {choices})",
        )


def _named_where(raw, name: str, where: str = "") -> str:
    if not isinstance(raw, dict):
        return ""
    for section, body in _section_bodies(raw):
        for k, v in body.items():
            if isinstance(k, str) and k.startswith("+") and name in repr(v):
                return f"{where}{section}: {k}"
    variants = raw.get("variants")
    if isinstance(variants, dict):
        for vname, sub in variants.items():
            found = _named_where(sub, name, f"{where}variants: {vname}: ")
            if found:
                return found
    return "command line"


def check_keys(
    ex: Experiment,
    groups: dict,
    source: str,
    raw,
    overrides: Iterable[str] = (),
) -> None:
    """``groups`` maps a tuple of named configs to the keys used together with it."""
    all_named = {n for combo in groups for n in combo}
    check_named_configs(ex, sorted(all_named), source, raw)
    overrides = set(overrides)
    for combo, keys in groups.items():
        try:
            config = resolved_config(ex, combo)
        except Exception as e:  # a config scope of the user's failed
            names = ", ".join(combo) or "no named configs"
            raise SpecError(source, "", f"the experiment's config fails with {names}: {e.__class__.__name__}: {e}") from None
        paths = config_paths(config)
        for key in keys:
            if key in paths or key == "seed":
                continue
            where = "command line" if key in overrides else _locate_within(raw, key)
            raise SpecError(
                source, where,
                f"{key!r} is not a config entry of {experiment_name(ex)!r}{_suggest(key, paths)}",
            )


def _resolve(kind, load, check, ex, spec, updates, named_configs):
    """A spec of ``kind`` from a path, a dict or an already resolved one, with the updates and
    named configs applied (over a resolved one's own: its file is resolved again with both) and
    checked by ``check`` against ``ex``; a resolved spec with nothing added is returned as is."""
    from .spec.vocabulary import flatten

    overrides = flatten(updates or {}, "updates", "")
    if isinstance(spec, kind):
        if not overrides and not named_configs:
            return spec
        resolved = load(spec.raw, {**spec.overrides, **overrides}, spec.named_configs + tuple(named_configs),
                        source=spec.source)
        resolved.path = spec.path
    else:
        resolved = load(spec, overrides, tuple(named_configs))
    if ex is not None:
        check(ex, resolved, overrides)
    return resolved


def resolve_grid(ex: Optional[Experiment], spec, updates: Optional[dict] = None, named_configs: tuple = ()):
    """A grid (path, dict or GridSpec) resolved and checked against ``ex``; ``updates`` nested or dotted."""
    from .spec import GridSpec, load_grid

    return _resolve(GridSpec, load_grid, check_grid, ex, spec, updates, named_configs)


def resolve_space(ex: Experiment, spec, updates: Optional[dict] = None, named_configs: tuple = ()):
    """A space (path, dict or SpaceSpec) resolved and checked against ``ex``."""
    from .spec import SpaceSpec, load_space

    return _resolve(SpaceSpec, load_space, check_space, ex, spec, updates, named_configs)


def check_grid(ex: Experiment, grid, overrides: Iterable[str] = ()) -> None:
    """Every key and named config of a resolved grid exists in the experiment (dotted paths
    inside dict values included: ``opt: {lrr: 7}`` is checked as ``opt.lrr``)."""
    check_keys(ex, grid.scan.keys_by_named, grid.source, grid.raw, overrides)
    _check_skip_ignore(ex, grid.settings.skip_ignore, grid.source, "sweep")


def _check_skip_ignore(ex: Experiment, ignored: tuple, source: str, section: str) -> None:
    """Every key ``skip_ignore`` names is a config entry of the experiment."""
    if ignored:
        paths = config_paths(resolved_config(ex))
        for key in ignored:
            if key not in paths:
                raise SpecError(source, f"{section}: skip_ignore",
                                f"{key!r} is not a config entry of {experiment_name(ex)!r}{_suggest(key, paths)}")


def check_space(ex: Experiment, space, overrides: Iterable[str] = ()) -> None:
    """Every key and named config any sample of a space could use exists."""
    groups: dict = {}
    for v in space.variants:
        fixed_named = tuple(n for k, names in v.fixed.items() if k.startswith("+") for n in names)
        keys = {k for k in list(v.fixed) + list(v.space) if not k.startswith("+")}
        searched = [d.args for k, d in v.space.items() if k.startswith("+")]
        combos = [fixed_named]
        for options in searched:
            combos = [c + names for c in combos for names in options]
        for combo in combos:
            groups.setdefault(combo, set()).update(keys)
    check_keys(ex, groups, space.source, space.raw, overrides)
    _check_skip_ignore(ex, space.settings.skip_ignore, space.source, "tune")
