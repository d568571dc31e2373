"""What a Tune search yields: its table, best trial and files, from Tune's results and the
runs' ledger lines (``lineage.csv`` for a population-based search)."""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Optional

from ..spec import SpaceSpec, Trial
from ..spec.space import SearchPlan
from .folder import SweepFolder
from .results import DONE, RunLike, SweepResult, TrialResult, best_of, rank, score, summarize
from .session import Interrupted


@dataclass
class TuneResult(RunLike):
    """The search's outcome: the best trial, every Tune trial's row, and every Sacred run."""

    name: str
    folder: str
    metric: str
    mode: str
    best: Optional[dict]
    trials: list
    runs: list
    exit_code: int = 0
    report: str = ""
    observer_errors: list = field(default_factory=list)
    best_trial: Optional[TrialResult] = None  # ``best``'s trial, as the results know trials


def tune_result(space: SpaceSpec, plan: SearchPlan, folder: SweepFolder, grid, runs: list, exit_code: int,
                observer_errors: list, new_runs: list, interrupted: Optional[Interrupted] = None,
                sort: Optional[str] = None) -> TuneResult:
    """The table, best trial and files of a search; ``runs`` includes a resumed search's earlier runs."""
    s = space.settings
    results = [trial_result(i, plan, outcome, runs, s.metric, interrupted) for i, outcome in enumerate(grid or [])]
    out = SweepResult(s.name, folder.path, results)
    report = summarize(out, sort or s.metric, s.mode if not sort else None, folder, top=10)
    counts = collections.Counter(r["status"] for r in runs)
    report += (f"\n{len(runs)} Sacred runs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
               if len(runs) != len(results) else "")
    ranked = rank(results, s.metric, s.mode)
    rows = [trial_row(r, s.metric) for r in ranked]
    best = best_of(ranked, s.metric)
    # as for ray_sweep: a trial that failed and then completed (max_failures) is not a failure
    failed = any(getattr(t, "error", None) for t in (grid or [])) or any(r.status == "FAILED" for r in results)
    if exit_code == 0 and failed:
        exit_code = 1
    return TuneResult(s.name, folder.path, s.metric, s.mode, trial_row(best, s.metric) if best else None, rows, new_runs,
                      exit_code, report, observer_errors, best)


def trial_result(index: int, plan: SearchPlan, outcome, runs: list, metric: str,
                 interrupted: Optional[Interrupted]) -> TrialResult:
    """One Tune trial as the shared results know trials: its values, last run and last report."""
    reported = outcome.metrics or {}
    trial_id = reported.get("trial_id") or _trial_id_from_path(outcome.path)
    try:
        variant, updates, labels = plan.decode_labelled(outcome.config or {})
    except (KeyError, IndexError, TypeError, ValueError):  # a trial Tune made but never ran
        variant, updates, labels = None, {}, {}
    trial = Trial(index=index, variant=variant, updates=dict(updates), named=labels, key=trial_id or "")
    trial_runs = [r for r in runs if r.get("trial_id") == trial_id]
    last = trial_runs[-1] if trial_runs else {}
    metrics = dict(last.get("metrics") or {})
    if reported.get(metric) is not None:
        metrics[metric] = reported[metric]  # the last report Tune ranked it by
    if trial_runs:
        status, error = last.get("status"), last.get("error")
    elif interrupted is not None:
        status, error = "INTERRUPTED", "not run"
    else:
        status, error = "FAILED", str(outcome.error) if outcome.error else "no Sacred run was recorded"
    return TrialResult(trial=trial, status=status, trial_id=trial_id, run_id=last.get("run_id"), result=last.get("result"), metrics=metrics,
                       duration=last.get("duration"), node={"node_ip": last.get("node")}, error=error,
                       config=last.get("config"), iterations=reported.get("training_iteration"),
                       runs=[r.get("run_id") for r in trial_runs], attempts=max(len(trial_runs), 1),
                       done_in=last.get("done_in"))


def _trial_id_from_path(path: Optional[str]) -> Optional[str]:
    parts = os.path.basename(path or "").split("_")
    return "_".join(parts[1:3]) if len(parts) > 2 else None


def trial_row(r: TrialResult, metric: str) -> dict:
    return {"trial_id": r.trial_id, "variant": r.trial.variant, "values": r.trial.values, "metric": score(r, metric),
            "status": r.status, "run_id": r.run_id, "runs": r.runs, "reason": r.error, "iterations": r.iterations,
            "config": r.config}


LINEAGE = "lineage.csv"


def write_lineage(folder: SweepFolder, runs: list, metric: str, label: str = "PBT") -> str:
    """``lineage.csv``: one row per Sacred run of a PBT search, naming the run whose checkpoint it
    started from (its parent: run, trial, step) and the keys the exploit changed; ``ancestry``
    is the chain of runs from the first to this one, ``final`` marks each trial's last run."""
    by_run = {str(r.get("run_id")): r for r in runs if r.get("run_id") is not None}
    last_of_trial = {r.get("trial_id"): str(r.get("run_id")) for r in runs}
    rows = []
    for r in runs:
        parent = r.get("parent") or {}
        chain, seen, at = [str(r.get("run_id"))], set(), parent.get("run_id")
        while at is not None and str(at) not in seen:  # a cycle cannot happen; never loop on one
            seen.add(str(at))
            chain.append(str(at))
            at = (by_run.get(str(at), {}).get("parent") or {}).get("run_id")
        rows.append([r.get("run_id"), r.get("trial_id"), parent.get("run_id"), parent.get("trial_id"),
                     parent.get("step"), parent.get("changed") or {}, r.get("status"), (r.get("metrics") or {}).get(metric),
                     (r.get("steps") or {}).get(metric), " > ".join(reversed(chain)),
                     last_of_trial.get(r.get("trial_id")) == str(r.get("run_id"))])
    folder.write_csv(LINEAGE, ["run_id", "trial_id", "parent_run_id", "parent_trial_id", "parent_step", "changed",
                               "status", metric, "steps", "ancestry", "final"], rows)
    exploits = sum(1 for r in runs if r.get("parent"))
    return f"\n{label}: {exploits} exploits over {len(last_of_trial)} trials; family trees in {folder.file(LINEAGE)}"


def completed_trials(earlier: list, metric: str) -> dict:
    """Tune trials of a resumed search whose run COMPLETED (or that an earlier run held,
    --skip-done): trial id -> its last result."""
    done = {}
    for entry in earlier:
        metrics = dict(entry.get("metrics") or {})
        if metric == "result" and "result" not in metrics:  # main's return value, which the ledger keeps
            value = entry.get("result")
            value = value.get("result") if isinstance(value, dict) else value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics["result"] = value
        if entry.get("status") in DONE and metric in metrics:
            steps = (entry.get("steps") or {}).get(metric, 1)
            done[entry["trial_id"]] = {"metrics": metrics, "step": max(steps - 1, 0)}
    return done


__all__ = ["LINEAGE", "TuneResult", "completed_trials", "tune_result", "write_lineage"]
