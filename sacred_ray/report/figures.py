"""The report's plots as Apache ECharts options (plain data, drawn by the echarts.min.js the
page inlines): parallel coordinates, parameter importance and the chosen metric's curves (one
line per trial, or a mean and band per seed group).

Each function returns a ``Chart`` (the option and the height it is drawn at) or None when
there is nothing to draw. ECharts draws on a 2D canvas: a sweep of thousands of trials opens
in about a second even in a browser without a GPU, where WebGL plots (plotly's parcoords)
take seconds to compile their shaders in software.

Curves are drawn as a few series (trials binned by their final value into colour bands, each
band one line series with gaps between trials) rather than a series per trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .data import SweepData

# Viridis (matplotlib's, as plotly and ECharts users know it), dark to bright
VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
           "#fde725"]
BANDS = 8  # colour bands of the curves
MAX_POINTS = 100_000  # curves of more points are drawn with every n-th step (and each one's last)
MIN_TRIALS_FOR_IMPORTANCE = 10
LOG_AXIS_RATIO = 100.0  # a positive numeric axis spanning more than this is drawn on a log scale
STOPPED = "#d62728"
CROSS = "path://M0,0L10,10M10,0L0,10Z"  # the marker of a trial a scheduler stopped
TITLE = {"left": "center", "textStyle": {"fontSize": 14, "fontWeight": "normal"}}
TOOLBOX = {"right": 20, "feature": {"dataZoom": {"filterMode": "none"}, "restore": {}, "saveAsImage": {}}}


@dataclass
class Chart:
    """One plot of the page: an ECharts option and the height of its box in pixels."""
    option: dict
    height: int


def _colors(n: int) -> list:
    """n colours evenly spaced along Viridis, dark to bright."""
    if n == 1:
        return [VIRIDIS[-1]]
    out = []
    for i in range(n):
        at = i / (n - 1) * (len(VIRIDIS) - 1)
        low = min(int(at), len(VIRIDIS) - 2)
        a, b = VIRIDIS[low], VIRIDIS[low + 1]
        mix = [round(int(a[k:k + 2], 16) * (low + 1 - at) + int(b[k:k + 2], 16) * (at - low)) for k in (1, 3, 5)]
        out.append("#" + "".join(f"{c:02x}" for c in mix))
    return out


def _best_bright(data: SweepData, colors: list) -> list:
    """Colours from low values to high, oriented so the best curves are the bright end."""
    return colors[::-1] if data.mode == "min" and data.curve_metric == data.metric else list(colors)


def _numeric(series) -> Optional[list]:
    """The values as floats if every one is a number (bools are not), else None."""
    out = []
    for v in series:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        out.append(float(v))
    return out


def _short(value) -> Optional[float]:
    """Six significant digits: what a plot can show, in a third of the page's bytes."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return float(f"{number:.6g}") if math.isfinite(number) else None


def _precision(values: list) -> int:
    """Decimals enough to tell values apart across their range (none for whole numbers)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite or all(float(v).is_integer() for v in finite):
        return 0
    spread = max(finite) - min(finite) or abs(finite[0]) or 1.0
    return max(0, min(6, 2 - math.floor(math.log10(spread))))


def _axis(index: int, label: str, series) -> tuple:
    """One parallel-coordinates axis and its values: numeric (a log scale where the values span
    decades), else categorical (named configs, choices, anything that is not a number)."""
    numbers = _numeric(series)
    if numbers is not None:
        low, high = min(numbers), max(numbers)
        kind = "log" if low > 0 and high / low > LOG_AXIS_RATIO else "value"
        return {"dim": index, "name": label, "type": kind, "scale": True}, [_short(x) for x in numbers]
    text = [str(v) for v in series]
    categories = sorted(set(text))
    return ({"dim": index, "name": label, "type": "category", "data": categories,
             "axisLabel": {"width": 140, "overflow": "truncate"}}, text)


def parallel(data: SweepData) -> Optional[Chart]:
    """Parallel coordinates of the swept parameters against the metric, for trials that scored;
    drag along an axis to keep the lines in a range (on several axes at once)."""
    scores = data.scores()
    done = data.frame[scores.notna()]
    params = [p for p in data.params if p in done and p != "seed"]
    if done.empty or not params:
        return None
    axes, columns = [], []
    for i, p in enumerate(params):
        axis, values = _axis(i, p, done[p])
        axes.append(axis)
        columns.append(values)
    metric = [float(v) for v in scores[scores.notna()]]
    axes.append({"dim": len(params), "name": data.metric, "type": "value", "scale": True,
                 "nameTextStyle": {"fontWeight": "bold"}})
    columns.append([_short(v) for v in metric])
    better = "lower" if data.mode == "min" else "higher"
    option = {
        "animation": False,
        "title": dict(TITLE, text=f"Parameters against {data.metric} ({len(done)} completed trials; {better} is "
                                  f"better; drag along an axis to filter)"),
        "toolbox": {"right": 20, "feature": {"saveAsImage": {}}},
        "parallel": {"left": 70, "right": 130, "top": 80, "bottom": 40,
                     "parallelAxisDefault": {"nameLocation": "end", "nameGap": 14, "realtime": True,
                                             "nameTextStyle": {"fontSize": 12}}},
        "parallelAxis": axes,
        "visualMap": {"type": "continuous", "dimension": len(params), "min": min(metric), "max": max(metric),
                      "inRange": {"color": list(VIRIDIS[::-1] if data.mode == "min" else VIRIDIS)},
                      "text": [data.metric, ""], "calculable": True, "right": 10, "top": "middle",
                      "precision": _precision(metric)},
        "series": [{"type": "parallel", "data": [list(row) for row in zip(*columns)], "progressive": 0,
                    "lineStyle": {"width": 1, "opacity": 0.6},
                    "inactiveOpacity": 0.03, "activeOpacity": 0.6}],
    }
    return Chart(option, 460)


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
    option = {
        "animation": False,
        "title": dict(TITLE, text=f"Parameter importance for {data.metric}"),
        "tooltip": {"trigger": "item"},
        "grid": {"left": 20, "right": 60, "top": 50, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "value", "min": 0, "max": 1, "name": "share of variance", "nameLocation": "middle",
                  "nameGap": 28},
        "yAxis": {"type": "category", "data": [k for k, _ in ordered],
                  "axisLabel": {"width": 200, "overflow": "truncate"}},
        "series": [{"type": "bar", "name": "share of variance", "data": [round(v, 4) for _, v in ordered],
                    "barMaxWidth": 24, "itemStyle": {"color": _colors(3)[1]},
                    "label": {"show": True, "position": "right", "formatter": "{c}"}}],
    }
    return Chart(option, max(220, 90 + 36 * len(ordered))), method[0].upper() + method[1:] + "."


def curves(data: SweepData) -> Optional[Chart]:
    """The curve metric's history: a line per trial coloured by its final value, early-stopped
    trials marked where they were cut; with seed groups, a mean and a band (+- one std) per group."""
    if data.curves is None or data.curves.empty:
        return None
    if data.seed_groups:
        return _group_curves(data)
    ordered = data.curves.sort_values("step")
    last = ordered.groupby("trial")["value"].last()
    low, high = _finite_range(last)
    palette, colors = _best_bright(data, VIRIDIS), _best_bright(data, _colors(BANDS))
    stride = max(1, math.ceil(len(data.curves) / MAX_POINTS))
    bands: dict = {}
    ends = []
    for trial, part in ordered.groupby("trial", sort=False):
        at = _band(last[trial], low, high)
        if stride > 1:  # every stride-th step, and the last: the page stays quick with thousands of curves
            part = part.iloc[sorted(set(range(0, len(part), stride)) | {len(part) - 1})]
        points = bands.setdefault(at, [])
        points += [[_number(s), _short(v)] for s, v in zip(part["step"], part["value"])]
        points.append(None)  # a gap: the next trial's line starts afresh
        ends.append([_number(part["step"].iloc[-1]), _short(part["value"].iloc[-1]), str(trial)])
    series = [{"type": "line", "name": f"final {data.curve_metric} band {at + 1}", "data": points,
               "showSymbol": False, "connectNulls": False, "silent": True, "progressive": 0,
               "lineStyle": {"width": 1.2, "color": colors[at], "opacity": 0.8}, "color": colors[at]}
              for at, points in sorted(bands.items())]
    # each trial's last point: hover it for the trial; its colour scale is the curves' legend
    series.append({"type": "scatter", "name": "last value", "data": ends, "symbolSize": 5,
                   "tooltip": {"formatter": "trial {@[2]}<br>step {@[0]}: {@[1]}"}})
    legend = []
    cut = _stopped_early(data)
    if cut:
        stopped = ordered[ordered["trial"].isin(cut)].groupby("trial").last()
        name = f"stopped early ({len(cut)})"
        legend.append(name)
        series.append({"type": "scatter", "name": name, "symbol": CROSS, "symbolSize": 9, "z": 5,
                       "itemStyle": {"color": "rgba(0,0,0,0)", "borderColor": STOPPED, "borderWidth": 2},
                       "data": [[_number(s), _short(v), str(t)] for t, s, v in
                                zip(stopped.index, stopped["step"], stopped["value"])],
                       "tooltip": {"formatter": "trial {@[2]} stopped at step {@[0]}: {@[1]}"}})
    drawn = f"; every {stride}th step drawn" if stride > 1 else ""
    option = _cartesian(data, f"{data.curve_metric} per trial ({data.curves['trial'].nunique()} trials{drawn})",
                        series, legend)
    option["visualMap"] = {"type": "continuous", "seriesIndex": len(bands), "dimension": 1, "min": low,
                           "max": high if high > low else low + 1, "inRange": {"color": palette},
                           "text": [f"final {data.curve_metric} {high:.4g}", f"{low:.4g}"], "right": 10, "top": "middle",
                           "calculable": False}
    return Chart(option, 460)


def _finite_range(values) -> tuple:
    """The lowest and highest finite values (0, 0 when none is: a curve all NaN or inf)."""
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return (min(finite), max(finite)) if finite else (0.0, 0.0)


def _band(value, low: float, high: float) -> int:
    """Which of the BANDS colours a final value gets: its place from ``low`` to ``high``; inf the
    top band, -inf and NaN the bottom one (their points are gaps in the line: a plot has no inf)."""
    v = float(value)
    if v == math.inf:
        return BANDS - 1
    if not math.isfinite(v) or high <= low:
        return 0
    return min(int((v / 2 - low / 2) / (high / 2 - low / 2) * BANDS), BANDS - 1)  # halves: no overflow


def _number(value):
    """A step as JSON has it (ints stay ints)."""
    return int(value) if float(value).is_integer() else float(value)


def _stopped_early(data: SweepData) -> list:
    """Trials a scheduler stopped (their run INTERRUPTED with a scheduler's reason)."""
    frame = data.frame
    if "error" not in frame:
        return []
    cut = frame["error"].map(lambda why: isinstance(why, str) and why.startswith("stopped by"))
    stopped = frame[(frame["status"] == "INTERRUPTED") & cut]
    return list(stopped["trial"])


def _group_curves(data: SweepData) -> Chart:
    ids = dict(zip(data.frame["trial"], data._group_ids()))
    labels = {}
    for _, row in data.frame.iterrows():
        labels.setdefault(ids[row["trial"]], ", ".join(f"{k}={row[k]}" for k in data.group_keys()
                                                        if k != "variant" or row[k]))
    curves = data.curves.assign(group=data.curves["trial"].map(ids))
    stats = curves.groupby(["group", "step"])["value"].agg(["mean", "std", "count"]).reset_index()
    finals = stats.sort_values("step").groupby("group")["mean"].last()
    low, high = _finite_range(finals)
    colors = _best_bright(data, _colors(BANDS))
    series, legend = [], []
    for group, part in stats.groupby("group", sort=False):
        at = _band(finals[group], low, high)
        color, std = colors[at], part["std"].fillna(0)
        steps = [_number(s) for s in part["step"]]
        name = labels.get(group) or "defaults"
        legend.append(name)
        band = f"band {group}"
        # the band is two stacked series: the lower edge (invisible), then the band's width on top
        series.append({"type": "line", "data": [[s, _short(v)] for s, v in zip(steps, part["mean"] - std)],
                       "stack": band, "stackStrategy": "all", "showSymbol": False, "silent": True,
                       "lineStyle": {"opacity": 0}, "tooltip": {"show": False}})
        series.append({"type": "line", "data": [[s, _short(v)] for s, v in zip(steps, 2 * std)],
                       "stack": band, "stackStrategy": "all", "showSymbol": False, "silent": True,
                       "lineStyle": {"opacity": 0}, "areaStyle": {"color": color, "opacity": 0.18},
                       "tooltip": {"show": False}})
        series.append({"type": "line", "name": name, "color": color, "showSymbol": False,
                       "data": [[s, _short(v), int(n)] for s, v, n in zip(steps, part["mean"], part["count"])],
                       "lineStyle": {"width": 2, "color": color},
                       "tooltip": {"formatter": "{a}<br>step {@[0]}: mean {@[1]} over {@[2]} seeds"}})
    title = f"{data.curve_metric}: mean over seeds, band +- one std ({len(finals)} configurations)"
    return Chart(_cartesian(data, title, series, legend), 480)


def _cartesian(data: SweepData, title: str, series: list, legend: list) -> dict:
    """The layout both kinds of curves share: step against the metric, zoomable."""
    return {
        "animation": False,
        "title": dict(TITLE, text=title),
        "tooltip": {"trigger": "item"},
        "toolbox": TOOLBOX,
        "legend": {"data": legend, "bottom": 0, "type": "scroll"},
        "grid": {"left": 20, "right": 130, "top": 60, "bottom": 60, "containLabel": True},
        "xAxis": {"type": "value", "name": "step", "nameLocation": "middle", "nameGap": 26, "scale": True},
        "yAxis": {"type": "value", "name": data.curve_metric, "scale": True},
        "dataZoom": [{"type": "inside", "filterMode": "none"}],
        "series": series,
    }
