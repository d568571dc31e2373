"""The report's plots, drawn with plotly: parallel coordinates, parameter importance and the
chosen metric's curves (one line per trial, or a mean and band per seed group).

Curves are drawn as a few traces (trials binned by their final value into colour bands, each
band one line trace with gaps between trials), so a sweep of thousands of trials stays
quick to open.
"""

from __future__ import annotations

import math
from typing import Optional

from .data import SweepData

COLORSCALE = "Viridis"
BANDS = 8  # colour bands of the curves
MAX_POINTS = 25_000  # curves of more points are drawn with every n-th step (and each one's last)
MIN_TRIALS_FOR_IMPORTANCE = 10
LOG_AXIS_RATIO = 100.0  # a positive numeric axis spanning more than this is drawn as log10


def _go():
    import plotly.graph_objects as go

    return go


def _colors(n: int) -> list:
    from plotly.colors import sample_colorscale

    return sample_colorscale(COLORSCALE, [i / max(n - 1, 1) for i in range(n)])


def _numeric(series) -> Optional[list]:
    """The values as floats if every one is a number (bools are not), else None."""
    out = []
    for v in series:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        out.append(float(v))
    return out


def _dimension(label: str, series) -> dict:
    """One parallel-coordinates axis: numeric (log10 where the values span decades), else categorical."""
    numbers = _numeric(series)
    if numbers is not None:
        low, high = min(numbers), max(numbers)
        if low > 0 and high / low > LOG_AXIS_RATIO:
            return {"label": f"log10({label})", "values": [math.log10(x) for x in numbers]}
        return {"label": label, "values": numbers}
    text = [str(v) for v in series]
    categories = sorted(set(text))
    code = {c: i for i, c in enumerate(categories)}
    return {"label": label, "values": [code[t] for t in text], "tickvals": list(range(len(categories))),
            "ticktext": [c if len(c) <= 20 else c[:19] + "…" for c in categories]}


def parallel(data: SweepData):
    """Parallel coordinates of the swept parameters against the metric, for trials that scored."""
    go = _go()
    scores = data.scores()
    done = data.frame[scores.notna()]
    if done.empty or not [p for p in data.params if p != "seed"]:
        return None
    dims = [_dimension(p, done[p]) for p in data.params if p in done and p != "seed"]
    dims.append({"label": data.metric, "values": list(scores[scores.notna()])})
    line = {"color": dims[-1]["values"], "colorscale": COLORSCALE, "showscale": True,
            "reversescale": data.mode == "min", "colorbar": {"title": {"text": data.metric}}}
    fig = go.Figure(go.Parcoords(line=line, dimensions=dims))
    fig.update_layout(title=f"Parameters against {data.metric} ({len(done)} completed trials; "
                            f"{'lower' if data.mode == 'min' else 'higher'} is better)", height=460,
                      margin={"l": 60, "r": 40, "t": 110, "b": 30}, title_y=0.97)
    return fig


def importance(data: SweepData) -> tuple:
    """(a bar chart of each parameter's importance, or None, and the note that says how or why not).

    The method: the share of the metric's variance that each parameter explains on its own
    (the correlation ratio, eta squared; numeric parameters with more than five values are
    cut into five quantile bins first). It sees each parameter alone, not interactions."""
    import pandas as pd

    scores = data.scores()
    scored = data.frame[scores.notna()]
    params = [p for p in data.params if p != "seed" and p in scored and scored[p].map(repr).nunique() > 1]
    method = ("importance: the share of the metric's variance each parameter explains on its own (eta squared, "
              "numeric parameters cut into 5 quantile bins); interactions are not counted")
    if len(scored) < MIN_TRIALS_FOR_IMPORTANCE or not params:
        why = (f"only {len(scored)} trials completed with {data.metric!r}" if len(scored) < MIN_TRIALS_FOR_IMPORTANCE
               else "no parameter varies among them")
        return None, f"Parameter importance needs at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials with " \
                     f"different values: {why}."
    y = scores[scores.notna()].astype(float)
    total = float(((y - y.mean()) ** 2).sum())
    shares = {}
    for p in params:
        x = scored[p]
        numbers = _numeric(x)
        if numbers is not None and len(set(numbers)) > 5:
            groups = pd.qcut(pd.Series(numbers, index=x.index), 5, duplicates="drop").astype(str)
        else:
            groups = x.map(repr)
        means = y.groupby(groups).transform("mean")
        shares[p] = float(((means - y.mean()) ** 2).sum()) / total if total > 0 else 0.0
    ordered = sorted(shares.items(), key=lambda kv: kv[1])
    go = _go()
    # horizontal bars drawn as thick lines (scatter): the page ships plotly.js's gl2d bundle, which
    # has scatter and parcoords and not the bar trace (see page.py)
    names = [k for k, _ in ordered]
    xs = [x for _, v in ordered for x in (0.0, v, None)]
    ys = [y for k, _ in ordered for y in (k, k, None)]
    color = _colors(3)[1]
    fig = go.Figure([go.Scatter(x=xs, y=ys, mode="lines", line={"width": 18, "color": color}, hoverinfo="skip"),
                     go.Scatter(x=[v for _, v in ordered], y=names, mode="markers", marker={"size": 1, "color": color},
                                hovertemplate="%{y}: %{x:.3f}<extra></extra>")])
    fig.update_layout(title=f"Parameter importance for {data.metric}", showlegend=False,
                      xaxis={"title": "share of variance", "range": [0, 1]},
                      yaxis={"type": "category", "categoryorder": "array", "categoryarray": names},
                      height=max(220, 60 + 36 * len(ordered)), margin={"l": 160, "r": 40, "t": 60, "b": 50})
    return fig, method[0].upper() + method[1:] + "."


def curves(data: SweepData):
    """The curve metric's history: a line per trial coloured by its final value, early-stopped
    trials marked where they were cut; with seed groups, a mean and a band (+- one std) per group."""
    if data.curves is None or data.curves.empty:
        return None
    if data.seed_groups:
        return _group_curves(data)
    go = _go()
    last = data.curves.sort_values("step").groupby("trial")["value"].last()
    low, high = float(last.min()), float(last.max())
    colors = _colors(BANDS)
    if data.mode == "min" and data.curve_metric == data.metric:
        colors = colors[::-1]  # the best trials are bright either way
    stride = max(1, math.ceil(len(data.curves) / MAX_POINTS))
    bands: dict = {}
    for trial, part in data.curves.sort_values("step").groupby("trial", sort=False):
        at = 0 if high == low else min(int((float(last[trial]) - low) / (high - low) * BANDS), BANDS - 1)
        if stride > 1:  # every stride-th step, and the last: the page stays quick with thousands of curves
            part = part.iloc[sorted(set(range(0, len(part), stride)) | {len(part) - 1})]
        xs, ys, names = bands.setdefault(at, ([], [], []))
        xs += list(part["step"]) + [None]
        ys += [_short(v) for v in part["value"]] + [None]
        names += [str(trial)] * len(part) + [None]
    fig = go.Figure()
    for at in sorted(bands):
        xs, ys, names = bands[at]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": colors[at], "width": 1.2}, opacity=0.8,
                                 customdata=names, hovertemplate="trial %{customdata}<br>step %{x}: %{y}<extra></extra>",
                                 showlegend=False))
    cut = _stopped_early(data)
    if cut:
        ends = data.curves[data.curves["trial"].isin(cut)].sort_values("step").groupby("trial").last()
        fig.add_trace(go.Scatter(x=list(ends["step"]), y=list(ends["value"]), mode="markers",
                                 marker={"symbol": "x", "size": 8, "color": "#d62728"},
                                 name=f"stopped early ({len(cut)})", text=[f"trial {t}" for t in ends.index],
                                 hovertemplate="%{text} stopped at step %{x}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                             marker={"colorscale": COLORSCALE, "cmin": low, "cmax": high, "color": [low],
                                     "reversescale": data.mode == "min" and data.curve_metric == data.metric,
                                     "showscale": True, "colorbar": {"title": {"text": f"final {data.curve_metric}"}}}))
    drawn = f"; every {stride}th step drawn" if stride > 1 else ""
    return _layout(fig, data, f"{data.curve_metric} per trial ({data.curves['trial'].nunique()} trials{drawn})")


def _short(value) -> float:
    """Six significant digits: what a plot can show, in a third of the page's bytes."""
    try:
        return float(f"{float(value):.6g}")
    except (TypeError, ValueError):
        return None


def _stopped_early(data: SweepData) -> list:
    """Trials a scheduler stopped (their run INTERRUPTED with a scheduler's reason)."""
    frame = data.frame
    if "error" not in frame:
        return []
    cut = frame["error"].map(lambda why: isinstance(why, str) and why.startswith("stopped by"))
    stopped = frame[(frame["status"] == "INTERRUPTED") & cut]
    return list(stopped["trial"])


def _group_curves(data: SweepData):
    go = _go()
    ids = dict(zip(data.frame["trial"], data._group_ids()))
    labels = {}
    for _, row in data.frame.iterrows():
        labels.setdefault(ids[row["trial"]], ", ".join(f"{k}={row[k]}" for k in data.group_keys()
                                                        if k != "variant" or row[k]))
    curves = data.curves.assign(group=data.curves["trial"].map(ids))
    stats = curves.groupby(["group", "step"])["value"].agg(["mean", "std", "count"]).reset_index()
    finals = stats.sort_values("step").groupby("group")["mean"].last()
    low, high = float(finals.min()), float(finals.max())
    colors = _colors(BANDS)
    if data.mode == "min" and data.curve_metric == data.metric:
        colors = colors[::-1]
    fig = go.Figure()
    for group, part in stats.groupby("group", sort=False):
        at = 0 if high == low else min(int((float(finals[group]) - low) / (high - low) * BANDS), BANDS - 1)
        color, std = colors[at], part["std"].fillna(0)
        steps = list(part["step"])
        fig.add_trace(go.Scatter(x=steps + steps[::-1], y=list(part["mean"] + std) + list(part["mean"] - std)[::-1],
                                 fill="toself", fillcolor=color, opacity=0.18, line={"width": 0}, hoverinfo="skip",
                                 showlegend=False))
        fig.add_trace(go.Scatter(x=steps, y=list(part["mean"]), mode="lines", line={"color": color, "width": 2},
                                 name=labels.get(group) or "defaults",
                                 hovertemplate="%{fullData.name}<br>step %{x}: mean %{y}<extra></extra>"))
    return _layout(fig, data, f"{data.curve_metric}: mean over seeds, band +- one std ({len(finals)} configurations)")


def _layout(fig, data: SweepData, title: str):
    fig.update_layout(title=title, xaxis={"title": "step"}, yaxis={"title": data.curve_metric}, height=460,
                      margin={"l": 60, "r": 40, "t": 60, "b": 50}, legend={"orientation": "h", "y": -0.15})
    return fig
