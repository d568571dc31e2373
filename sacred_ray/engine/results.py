"""What a sweep or a search leaves behind, for both commands: each trial's result, the
ledger line of every finished run, the ranking, the end table, summary.csv and best.yaml.

One ledger schema (``ledger_entry``; every field is described in README) serves
``ray_sweep`` and ``tune_with``: a line per Sacred run, written the moment it ends, from
which ``--resume`` knows what is done.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from ..display import format_table, format_value, varying_keys
from ..spec import Trial
from ..spec.settings import default_mode
from .folder import SweepFolder
from .groups import best_group_line, group_lines, has_repeats, rank_groups, seed_groups

DONE = ("COMPLETED", "SKIPPED")  # a trial with a result: its run completed, or an earlier run holds it (--skip-done)


@dataclass
class TrialResult:
    """How one trial ended (its last attempt or run), as recorded by the observers."""

    trial: Trial
    status: str
    run_id: Any = None
    result: Any = None
    metrics: dict = field(default_factory=dict)  # name -> last value logged
    duration: Optional[float] = None
    node: dict = field(default_factory=dict)
    error: Optional[str] = None  # why it did not complete (the traceback's last line, a stop reason)
    attempts: int = 1
    config: Optional[dict] = None
    trial_id: Optional[str] = None  # Tune's trial id (tune_with)
    iterations: Optional[int] = None  # Tune's training_iteration (tune_with)
    runs: list = field(default_factory=list)  # every Sacred run id of the trial, when it had several
    done_in: Optional[dict] = None  # SKIPPED: the earlier run that holds it ({where, run_id, sweep})

    @property
    def label(self) -> Any:
        """How the trial is named in tables: Tune's trial id, or the sweep's trial number."""
        return self.trial_id if self.trial_id is not None else self.trial.index


class RunLike:
    """What code written for a Sacred ``Run`` reads, on a sweep's or a search's outcome (what
    ``ex.run_commandline()`` returns after one): ``status`` (COMPLETED when every trial is
    done, INTERRUPTED after Ctrl-C / SIGTERM / a cancel, else FAILED), ``result`` and
    ``config`` (the best trial's, as best.yaml holds it; None without one) and ``captured_out``
    (the sweep's own end text: its table, summary and best)."""

    exit_code: int
    report: str

    @property
    def status(self) -> str:
        return "COMPLETED" if self.exit_code == 0 else "INTERRUPTED" if self.exit_code in (130, 143) else "FAILED"

    @property
    def captured_out(self) -> str:
        return self.report

    @property
    def result(self) -> Any:
        best = self.best_trial
        return best.result if best is not None else None

    @property
    def config(self) -> Optional[dict]:
        best = self.best_trial
        return best.config if best is not None else None


@dataclass
class SweepResult(RunLike):
    """Every trial's result, in trial order, and where the sweep's files are."""

    name: str
    folder: str
    results: list
    interrupted: Optional[str] = None
    observer_errors: list = field(default_factory=list)
    exit_code: int = 0
    report: str = ""
    best_trial: Optional[TrialResult] = None  # the best trial by the sweep's metric (``summarize`` finds it)

    @property
    def ok(self) -> bool:
        return all(r.status in DONE for r in self.results)

    @property
    def counts(self) -> dict:
        return dict(collections.Counter(r.status for r in self.results))


def ledger_entry(result: TrialResult, steps: Optional[dict] = None, retrying: bool = False) -> dict:
    """One line of ``ledger.jsonl`` (the same fields for both commands; see README)."""
    t = result.trial
    return {
        "key": t.key, "index": t.index, "trial_id": result.trial_id, "variant": t.variant,
        "attempt": result.attempts, "status": result.status, "run_id": result.run_id, "result": result.result,
        "metrics": result.metrics, "steps": steps or {},
        "duration": round(result.duration, 3) if result.duration is not None else None,
        "node": result.node.get("node_ip"), "node_id": result.node.get("node_id"), "error": result.error,
        "retrying": retrying, "config": result.config, "time": time.time(),
        **({"done_in": result.done_in} if result.done_in else {}),
    }


def from_ledger(trial: Trial, entry: dict) -> TrialResult:
    """A trial's result as an earlier run of the sweep recorded it (for --resume)."""
    return TrialResult(trial=trial, status=entry.get("status"), run_id=entry.get("run_id"), result=entry.get("result"),
                       metrics=entry.get("metrics") or {}, duration=entry.get("duration"),
                       node={"node_ip": entry.get("node"), "node_id": entry.get("node_id")},
                       error=entry.get("error"), attempts=entry.get("attempt") or 1, config=entry.get("config"),
                       trial_id=entry.get("trial_id"), done_in=entry.get("done_in"))


def score(result: TrialResult, metric: str) -> Optional[float]:
    """The number a trial is ranked by: its result (or result[metric]) or a metric's last value;
    None unless finite (inf, -inf and NaN are shown, as ``value_of`` has them, never ranked
    best: a run that diverged is not the configuration to pick)."""
    value = value_of(result, metric)
    return value if value is not None and math.isfinite(value) else None


def value_of(result: TrialResult, metric: str) -> Optional[float]:
    """The trial's number as the table shows it: its result (or result[metric]) or a metric's last value."""
    if metric == "result":
        value = result.result
        if isinstance(value, dict):
            value = value.get("result")
        if value is None:
            value = result.metrics.get("result")
    else:
        value = result.metrics.get(metric)
        if value is None and isinstance(result.result, dict):
            value = result.result.get(metric)
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def rank(results: list, metric: str, mode: str) -> list:
    """Completed trials with a score first, best first; then the rest in trial order."""
    def key(r):
        s = score(r, metric)
        ok = r.status in DONE and s is not None
        return (0 if ok else 1, (-s if mode == "max" else s) if ok else 0, r.trial.index)

    return sorted(results, key=key)


def summarize(result: SweepResult, metric: Optional[str], mode: Optional[str], folder: Optional[SweepFolder],
              top: int = 20) -> str:
    """Write summary.csv and best.yaml; return the text to show the user."""
    metric = metric or "result"
    mode = mode or default_mode(metric)
    ranked = rank(result.results, metric, mode)
    groups = seed_groups(ranked, lambda r: score(r, metric))
    grouped = has_repeats(groups)
    if grouped:
        groups = rank_groups(groups, mode)
        order = {id(r): i for i, g in enumerate(groups) for r in g.members}
        ranked = sorted(ranked, key=lambda r: order[id(r)])  # by group, best trial first within one
    keys = varying_keys([r.trial.values for r in ranked]) if len(ranked) > 1 else []
    has_variants = any(r.trial.variant for r in ranked)
    tuned = any(r.trial_id is not None for r in ranked)
    headers = (["trial" if tuned else "#"] + (["variant"] if has_variants else []) + keys + ["status", metric]
               + (["iters"] if tuned else []) + ["run id", "time"])
    rows = []
    for r in ranked:
        values = r.trial.values
        rows.append([r.label] + ([r.trial.variant] if has_variants else []) + [values.get(k) for k in keys]
                    + [r.status, value_of(r, metric)] + ([r.iterations] if tuned else [])
                    + [r.done_in["where"] if r.done_in else r.run_id, f"{r.duration:.1f}s" if r.duration else None])
    if folder is not None:
        _write_summary(folder, ranked, metric, keys, groups if grouped else None)
    if grouped:
        lines, best_group = group_lines(groups, metric, mode, folder, top)
        lines += _failures(ranked, folder)
        lines += best_group_line(best_group, metric, folder, mode) if best_group is not None else []
        return _closing(lines, result, folder)
    lines = [format_table(headers, rows[:top])]
    if len(rows) > top:
        lines.append(f"... {len(rows) - top} more in {folder.file('summary.csv') if folder else 'the results'}")
    lines += _failures(ranked, folder)
    best = result.best_trial = best_of(ranked, metric)
    if best is not None:
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in best.trial.values.items()) or "the defaults"
        run = f"run {best.run_id}" if best.run_id is not None else "no observer recorded it: add -F runs or -m"
        if best.done_in:
            run = f"done before: {best.done_in['where']}"
        lines.append(f"best: trial {best.label} ({run}), {metric} = {format_value(score(best, metric))}: {shown}")
        if folder is not None and best.config is not None:
            folder.write_best(best.config, f"config of the best trial ({metric} {mode}): run {best.run_id}, "
                                           f"trial {best.label}; load with: with {folder.file('best.yaml')}")
            if folder.write_error is None:
                lines.append(f"best config: {folder.file('best.yaml')}")
    return _closing(lines, result, folder)


def _closing(lines: list, result: SweepResult, folder: Optional[SweepFolder]) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items()))
    lines.append(f"{len(result.results)} trials: {counts}; sweep folder {folder.path if folder else result.folder}")
    return "\n".join(lines)


def _write_summary(folder: SweepFolder, ranked: list, metric: str, keys: list, groups: Optional[list]) -> None:
    """summary.csv: a row per trial, best first (with seed groups: by group, and the group's numbers)."""
    of_group = {id(r): (i, g.spread) for i, g in enumerate(groups or []) for r in g.members}
    group_headers = ["group", "group_n", "group_mean", "group_std", "group_ci95_low", "group_ci95_high"]
    folder.write_summary(
        ["index", "key", "trial_id", "variant", "status", "run_id", metric, "iterations", "runs", "duration_s",
         "node", "attempts", "error"] + keys + (group_headers if groups else []),
        [[r.trial.index, r.trial.key, r.trial_id, r.trial.variant, r.status, r.run_id, value_of(r, metric),
          r.iterations, r.runs or None, round(r.duration, 3) if r.duration else None, r.node.get("node_ip"),
          r.attempts, r.error] + [r.trial.values.get(k) for k in keys]
         + (_group_cells(*of_group[id(r)]) if groups else []) for r in ranked],
    )


def _group_cells(index: int, s) -> list:
    return [index, s.n, s.mean, s.std, s.low, s.high]


def _failures(ranked: list, folder: Optional[SweepFolder], shown: int = 5) -> list:
    """A line for each of the first failed trials: why (the traceback's last line) and its run."""
    failed = [r for r in ranked if r.status in ("FAILED", "TIMEOUT")]
    lines = []
    for r in failed[:shown]:
        why = (r.error or "no reason recorded").strip().splitlines()[-1] if (r.error or "").strip() else "no reason recorded"
        run = f"run {r.run_id}" if r.run_id is not None else "no run"
        lines.append(f"{r.status.lower()}: trial {r.label} ({run}): {why[:200]}")
    if len(failed) > shown:
        lines.append(f"... and {len(failed) - shown} more: see {folder.file('summary.csv') if folder else 'the results'}")
    return lines


def best_of(ranked: list, metric: str) -> Optional[TrialResult]:
    """The first of ``rank``'s order, if it completed with a score."""
    if ranked and ranked[0].status in DONE and score(ranked[0], metric) is not None:
        return ranked[0]
    return None
