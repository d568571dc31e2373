"""What a report shows, gathered from a sweep's records: the trials' frame (from the
observers, or the driver's ledger when no observer recorded the runs), the chosen metric's
curves, seed groups, and the spec and command line the sweep ran with."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from ..analysis import Sweep, spec_header
from ..records import read_jsonl
from ..spec import SpecError
from ..spec.settings import default_mode
from ..stats import spread

FIXED_COLUMNS = ("trial", "variant", "status", "result", "duration_s", "node", "run_id", "attempts", "error")


@dataclass
class SweepData:
    """One sweep, ready to draw."""

    name: str
    frame: Any  # pandas DataFrame, one row per trial (see sacred_ray.load_sweep)
    params: list  # the swept columns of ``frame``
    metric: str  # the column trials are ranked by
    mode: str
    curve_metric: Optional[str] = None  # the logged metric whose curves are drawn
    curves: Any = None  # long form: trial, run_id, step, value
    spec_text: str = ""
    notes: list = field(default_factory=list)

    @property
    def seed_groups(self) -> bool:
        """Whether some configurations ran with more than one seed."""
        return "seed" in self.params and len(self.frame) > 0 and self._group_ids().value_counts().max() > 1

    def group_keys(self) -> list:
        return [c for c in ["variant"] + self.params if c != "seed" and c in self.frame.columns]

    def _group_ids(self):
        """A string per trial, equal for trials that differ only in their seed (values may be lists)."""
        keys = self.group_keys()
        if not keys:
            return self.frame["trial"].map(lambda _: "")
        return self.frame[keys].apply(lambda column: column.map(repr)).agg("|".join, axis=1)

    def scores(self):
        """The ranking metric of each trial, NaN where it did not complete with a finite number."""
        import pandas as pd

        values = pd.to_numeric(self.frame.get(self.metric), errors="coerce") if self.metric in self.frame else None
        if values is None:
            return pd.Series([float("nan")] * len(self.frame), index=self.frame.index)
        return values.where((self.frame["status"] == "COMPLETED") & values.abs().lt(float("inf")))

    def groups(self):
        """One row per configuration: its trials, n, mean, std and 95% interval of the metric."""
        import pandas as pd

        frame = self.frame.assign(_score=self.scores(), _group=self._group_ids())
        rows = []
        for _, part in frame.groupby("_group", sort=False):
            s = spread(part["_score"].dropna())
            first = part.iloc[0]
            rows.append({**{k: first[k] for k in self.group_keys()}, "n": s.n, "failed": len(part) - s.n,
                         "mean": s.mean, "std": s.std, "ci95_low": s.low, "ci95_high": s.high,
                         "trials": list(part["trial"])})
        out = pd.DataFrame(rows)
        return out.sort_values("mean", ascending=self.mode == "min", na_position="last", kind="stable")


def gather(source: str, name: Optional[str] = None, mongo: Optional[str] = None, metric: Optional[str] = None,
           mode: Optional[str] = None, sweep_id: Optional[str] = None) -> SweepData:
    """Read a sweep folder (or a MongoDB address with the sweep's name) into ``SweepData``."""
    header = spec_header(source) if os.path.isdir(source) else {}
    spec = header.get("spec") or {}
    settings = spec.get("tune") if isinstance(spec.get("tune"), dict) else spec.get("sweep")
    settings = settings if isinstance(settings, dict) else {}
    notes = []
    try:
        sweep = Sweep.load(source, name, mongo, sweep_id=sweep_id)
        frame = sweep.frame()
    except SpecError:
        if not os.path.isdir(source) or header.get("recorded_by"):
            raise
        sweep, frame = None, _ledger_frame(source)
        notes.append("no observer recorded the runs (add -F runs or -m), so this page shows what the driver's "
                     "ledger kept: no curves")
    labels = _labels(spec)
    if len(labels) == 1 and "named_configs" in frame:  # the file's own name for its named-config axis
        attrs = dict(frame.attrs)
        frame = frame.rename(columns={"named_configs": labels[0]})
        frame.attrs.update(attrs, params=[labels[0] if p == "named_configs" else p for p in attrs.get("params", [])])
    name = name or header.get("name") or os.path.basename(os.path.abspath(source))
    metric = metric or settings.get("metric") or "result"
    mode = mode or settings.get("mode") or ("max" if "tune" in spec else default_mode(metric))
    metrics = frame.attrs.get("metrics", [])
    curve_metric = metric if metric in metrics else (metrics[0] if metrics else None)
    data = SweepData(name, frame, list(frame.attrs.get("params", [])), metric, mode, curve_metric,
                     sweep.metrics(curve_metric) if sweep is not None and curve_metric else None,
                     _spec_text(source, header), notes)
    if metric not in frame.columns:
        notes.append(f"no trial recorded {metric!r}; the page ranks nothing")
    return data


def _labels(value) -> list:
    """The ``+label`` keys of a spec, wherever they are (grid, space, variants)."""
    found: dict = {}
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and k.startswith("+"):
                found[k] = None
            found.update(dict.fromkeys(_labels(v)))
    return list(found)


def _spec_text(source: str, header: dict) -> str:
    if not header:
        return f"(loaded from MongoDB: {source.split('@')[-1]}; the spec is in the sweep folder where it ran)"
    try:
        with open(os.path.join(source, "spec.yaml"), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def _ledger_frame(folder: str):
    """A frame of the same columns from ledger.jsonl and trials.jsonl (the driver's own records)."""
    import pandas as pd

    values = {t.get("key"): t.get("values") or {} for t in read_jsonl(os.path.join(folder, "trials.jsonl"))}
    last: dict = {}
    for entry in read_jsonl(os.path.join(folder, "ledger.jsonl")):
        if "control" not in entry:  # a control action (sweep_cancel, ...), not a trial
            last[entry.get("key")] = entry
    params: dict = {}
    rows = []
    for key, e in last.items():
        row = {"trial": e.get("index") if e.get("index") is not None else e.get("trial_id"),
               "variant": e.get("variant")}
        for k, v in values.get(key, {}).items():
            row[k] = v
            params[k] = None
        row.update(status=e.get("status"), result=e.get("result"), duration_s=e.get("duration"), node=e.get("node"),
                   run_id=e.get("run_id"), attempts=e.get("attempt"), error=e.get("error"))
        row.update(e.get("metrics") or {})
        rows.append(row)
    frame = pd.DataFrame(rows)
    varying = [p for p in params if p in frame and frame[p].map(repr).nunique() > 1]
    frame.attrs.update(params=varying, metrics=sorted({m for e in last.values() for m in (e.get("metrics") or {})}))
    return frame
