"""The end of a sweep: trials ranked by result (or a metric), summary.csv and best.yaml."""

from __future__ import annotations

import math
from typing import Any, Optional

from ..display import format_table, varying_keys
from .folder import SweepFolder


def default_mode(metric: str) -> str:
    """``min`` for names that read as a loss or an error, else ``max``."""
    lowered = metric.lower()
    return "min" if any(w in lowered for w in ("loss", "error", "err", "mse", "mae", "rmse", "perplexity")) else "max"


def score(result, metric: str) -> Optional[float]:
    """The number a trial is ranked by: its result (or result[metric]) or a metric's last value."""
    if metric == "result":
        value = result.result
        if isinstance(value, dict):
            value = value.get("result")
    else:
        value = result.metrics.get(metric)
        if value is None and isinstance(result.result, dict):
            value = result.result.get(metric)
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def rank(results: list, metric: str, mode: str) -> list:
    def key(r):
        s = score(r, metric)
        ok = r.status == "COMPLETED" and s is not None
        return (0 if ok else 1, (-s if mode == "max" else s) if ok else 0, r.trial.index)

    return sorted(results, key=key)


def summarize(result, metric: Optional[str], mode: Optional[str], folder: Optional[SweepFolder], top: int = 20) -> str:
    """Write summary.csv and best.yaml; return the text to show the user."""
    metric = metric or "result"
    mode = mode or default_mode(metric)
    ranked = rank(result.results, metric, mode)
    keys = varying_keys([r.trial.values for r in ranked]) if len(ranked) > 1 else []
    has_variants = any(r.trial.variant for r in ranked)
    headers = ["#"] + (["variant"] if has_variants else []) + keys + ["status", metric, "run id", "time"]
    rows = []
    for r in ranked:
        values = r.trial.values
        rows.append([r.trial.index] + ([r.trial.variant] if has_variants else []) + [values.get(k) for k in keys]
                    + [r.status, score(r, metric), r.run_id, f"{r.duration:.1f}s" if r.duration else None])
    if folder is not None:
        folder.write_summary(
            ["index", "key", "variant", "status", "run_id", metric, "duration_s", "node", "attempts", "error"] + keys,
            [[r.trial.index, r.trial.key, r.trial.variant, r.status, r.run_id, score(r, metric),
              round(r.duration, 3) if r.duration else None, r.node.get("node_ip"), r.attempts, r.error]
             + [r.trial.values.get(k) for k in keys] for r in ranked],
        )
    lines = [format_table(headers, rows[:top])]
    if len(rows) > top:
        lines.append(f"... {len(rows) - top} more in {folder.file('summary.csv') if folder else 'the results'}")
    best = ranked[0] if ranked and ranked[0].status == "COMPLETED" and score(ranked[0], metric) is not None else None
    if best is not None:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in best.trial.values.items()) or "the defaults"
        lines.append(f"best: trial {best.trial.index} (run {best.run_id}), {metric} = {_fmt(score(best, metric))}: {shown}")
        if folder is not None and best.config is not None:
            folder.write_best(best.config, f"config of the best trial ({metric} {mode}): run {best.run_id}, "
                                           f"trial {best.trial.index}; load with: with {folder.file('best.yaml')}")
            lines.append(f"best config: {folder.file('best.yaml')}")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items()))
    lines.append(f"{len(result.results)} trials: {counts}; sweep folder {folder.path if folder else result.folder}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    from ..display import format_value

    return format_value(value)
