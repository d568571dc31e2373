"""Seed groups: trials that differ only in their Sacred seed are one group, ranked by the mean.

A sweep with ``seeds: 3`` runs every configuration three times; what the user compares is
the configuration, so the end table, summary.csv (with groups.csv) and best.yaml speak of
groups: n, mean, std and a 95% confidence interval of the metric (``sacred_ray.stats``).
Only COMPLETED trials with a score count towards a group's numbers; the rest are counted
as ``failed`` next to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..display import format_table, format_value, varying_keys
from ..stats import Spread, spread
from .folder import SweepFolder

SEED = "seed"


@dataclass
class SeedGroup:
    """Trials with the same values apart from the seed."""

    values: dict  # the trials' values without the seed
    variant: Optional[str]
    members: list = field(default_factory=list)  # TrialResults, in the order given (best first)
    spread: Spread = Spread(0, None)  # of the COMPLETED members' scores


def seed_groups(results: list, score) -> list:
    """Group ``results`` by their values without the seed; ``score(r)`` is a trial's number."""
    groups: dict = {}
    for r in results:
        values = {k: v for k, v in r.trial.values.items() if k != SEED}
        key = repr((r.trial.variant, sorted((k, repr(v)) for k, v in values.items())))
        group = groups.setdefault(key, SeedGroup(values, r.trial.variant))
        group.members.append(r)
    for group in groups.values():
        group.spread = spread(score(r) for r in group.members if r.status == "COMPLETED")
    return list(groups.values())


def has_repeats(groups: list) -> bool:
    """Whether any configuration ran with more than one seed (else groups add nothing)."""
    return any(len({repr(r.trial.values.get(SEED)) for r in g.members}) > 1 for g in groups)


def rank_groups(groups: list, mode: str) -> list:
    """Groups with a mean first, best mean first; then the rest in their first trial's order."""
    def key(g):
        m = g.spread.mean
        return (0 if m is not None else 1, (-m if mode == "max" else m) if m is not None else 0,
                g.members[0].trial.index)

    return sorted(groups, key=key)


def _in_order(group: SeedGroup) -> list:
    return sorted(group.members, key=lambda r: r.trial.index)


def _ci(s: Spread) -> Optional[str]:
    return None if s.low is None else f"[{format_value(s.low)}, {format_value(s.high)}]"


def group_lines(ranked: list, metric: str, mode: str, folder: Optional[SweepFolder], top: int) -> tuple:
    """(the end table's lines, the best group or None) for a sweep with seed groups; writes
    groups.csv, and best.yaml from the best group's config without its seed."""
    keys = varying_keys([g.values for g in ranked]) if len(ranked) > 1 else []
    has_variants = any(g.variant for g in ranked)
    headers = (["variant"] if has_variants else []) + keys + ["n", "failed", f"{metric} mean", "std", "95% CI",
                                                              "trials"]
    rows = [([g.variant] if has_variants else []) + [g.values.get(k) for k in keys]
            + [g.spread.n, len(g.members) - g.spread.n, g.spread.mean, g.spread.std, _ci(g.spread),
               ", ".join(str(r.label) for r in _in_order(g))] for g in ranked]
    if folder is not None:
        folder.write_csv("groups.csv", ["group", "variant"] + keys + ["n", "failed", "mean", "std", "ci95_low",
                                                                       "ci95_high", "trials", "run_ids"],
                         [[i, g.variant] + [g.values.get(k) for k in keys]
                          + [g.spread.n, len(g.members) - g.spread.n, g.spread.mean, g.spread.std, g.spread.low,
                             g.spread.high, [r.label for r in _in_order(g)], [r.run_id for r in _in_order(g)]]
                          for i, g in enumerate(ranked)])
    lines = [f"{len(ranked)} configurations x seeds, ranked by the mean {metric} ({mode}) of their completed runs",
             format_table(headers, rows[:top])]
    if len(rows) > top:
        lines.append(f"... {len(rows) - top} more in {folder.file('groups.csv') if folder else 'the results'}")
    best = ranked[0] if ranked and ranked[0].spread.mean is not None else None
    return lines, best


def best_group_line(best: SeedGroup, metric: str, folder: Optional[SweepFolder], mode: str) -> list:
    """The best line, and best.yaml: the config its runs share, without the seed."""
    s = best.spread
    shown = ", ".join(f"{k}={format_value(v)}" for k, v in best.values.items()) or "the defaults"
    runs = [r.run_id for r in _in_order(best) if r.run_id is not None]
    where = f"runs {', '.join(map(str, runs))}" if runs else "no observer recorded them: add -F runs or -m"
    interval = f", 95% CI {_ci(s)}" if s.low is not None else ""
    spread_text = f" +- {format_value(s.std)} std" if s.std is not None else ""
    lines = [f"best: {shown} ({where}), {metric} mean {format_value(s.mean)}{spread_text} over {s.n} seed(s)"
             f"{interval}"]
    config = next((r.config for r in best.members if r.config is not None), None)
    if folder is not None and config is not None:
        config = {k: v for k, v in config.items() if k != SEED}
        folder.write_best(config, f"config of the best configuration ({metric} {mode}, mean over {s.n} seed(s)): "
                                  f"trials {', '.join(str(r.label) for r in _in_order(best))}; no seed, so Sacred "
                                  f"draws one; load with: with {folder.file('best.yaml')}")
        if folder.write_error is None:
            lines.append(f"best config: {folder.file('best.yaml')}")
    return lines


__all__ = ["SeedGroup", "best_group_line", "group_lines", "has_repeats", "rank_groups", "seed_groups"]
