"""The report as one self-contained HTML file: Apache ECharts inlined (opens offline), the plots,
the seed groups, a sortable results table, and the spec and command line."""

from __future__ import annotations

import datetime
import html
import json
import math
import os
from typing import Any

from ..display import format_value
from .data import FIXED_COLUMNS, SweepData
from .figures import curves as draw_curves
from .figures import importance as draw_importance
from .figures import parallel as draw_parallel

STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#222;
padding:0 16px}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em} .note{background:#fff8e1;border-left:3px solid #f0b400;padding:6px 10px;margin:8px 0}
table{border-collapse:collapse;font-size:.85em;width:100%} th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left;white-space:nowrap;max-width:360px;overflow:hidden;text-overflow:ellipsis}
th{cursor:pointer;background:#f6f6f6;position:sticky;top:0;user-select:none} th[aria-sort=ascending]::after{content:" ▲"}
th[aria-sort=descending]::after{content:" ▼"} tr.FAILED td,tr.TIMEOUT td{color:#c62828}
tr.INTERRUPTED td{color:#9a6700} .scroll{max-height:520px;overflow:auto;border:1px solid #eee}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:.85em} .chart{width:100%;margin:8px 0}
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute("data-v");
        if (v !== null) return v === "" ? null : Number(v);
        return cell.textContent === "" ? null : cell.textContent;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null) return 1; if (y === null) return -1;
        var r = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
        return up ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td data-v=""></td>'
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    sort = f' data-v="{float(value)!r}"'.replace("inf", "Infinity") if number else ""
    text = html.escape(format_value(value))
    return f'<td{sort} title="{text}">{text}</td>'


def _table(frame, columns: list, table_id: str, status_column: bool = True) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    rows = []
    for record in frame[columns].to_dict("records"):
        cells = "".join(_cell(record[c]) for c in columns)
        status = html.escape(str(record.get("status", ""))) if status_column else ""
        rows.append(f'<tr class="{status}">{cells}</tr>')
    return (f'<div class="scroll"><table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


DRAW_SCRIPT = """
function drawChart(id, option) {
  var el = document.getElementById(id);
  var chart = echarts.init(el, null, {renderer: "canvas"});
  chart.on("finished", function () { el.setAttribute("data-drawn", "true"); });
  chart.setOption(option);
  window.addEventListener("resize", function () { chart.resize(); });
}
"""

HERE = os.path.dirname(os.path.abspath(__file__))
ECHARTS = os.path.join(HERE, "echarts.min.js")
ECHARTS_VERSION = "6.1.0"  # dist/echarts.min.js of the npm package echarts@6.1.0, unchanged (Apache-2.0)


def echarts_js() -> str:
    """Apache ECharts, inlined so the page opens offline (licence: echarts-LICENSE, -NOTICE, -LICENSE-d3)."""
    with open(ECHARTS, encoding="utf-8") as f:
        return f.read()


_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _json(value) -> str:
    """JSON that is safe inside a <script> element. ``<``, ``>`` and ``&`` occur only in its
    strings, and are written there as the escapes ``\\u003c``, ``\\u003e``, ``\\u0026`` (JS reads
    them back as they were), so no value can end the element or open an HTML comment in it
    (``</script>``, ``<!--``, ``<script``, in any case). NaN and Infinity stay: JS reads them."""
    return json.dumps(value, separators=(",", ":")).translate(_SCRIPT_SAFE)


def _figure(chart, div_id: str) -> str:
    return (f'<div id="{div_id}" class="chart" style="height:{chart.height}px"></div>'
            f"<script>drawChart({_json(div_id)}, {_json(chart.option)});</script>")


def render(data: SweepData, live: bool = False) -> str:
    """The whole page; ``live`` pages reload themselves every 30 s (the sweep is still running)."""
    frame = data.frame
    counts = frame["status"].value_counts().to_dict() if "status" in frame else {}
    parts = [f"<h1>Sweep {html.escape(data.name)}</h1>",
             f'<p class="meta">{len(frame)} trials: '
             + ", ".join(f"{n} {html.escape(str(s))}" for s, n in sorted(counts.items()))
             + f"; ranked by {html.escape(data.metric)} ({data.mode}); written "
             + datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
             + ("; the sweep is running: this page is rewritten every 30 s and reloads itself" if live else "")
             + "</p>"]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in data.notes]
    parallel = draw_parallel(data)
    parts.append("<h2>Parameters</h2>")
    parts.append(_figure(parallel, "parallel") if parallel is not None
                 else '<p class="note">No completed trial with a value of the metric yet, or nothing swept.</p>')
    bars, how = draw_importance(data)
    parts.append("<h2>Parameter importance</h2>")
    parts.append((_figure(bars, "importance") if bars is not None else "") + f'<p class="meta">{html.escape(how)}</p>')
    parts.append("<h2>Curves</h2>")
    curves = draw_curves(data)
    parts.append(_figure(curves, "curves") if curves is not None
                 else '<p class="note">No logged metric to draw (trials log with _run.log_scalar, recorded by -F or '
                      '-m).</p>')
    if data.seed_groups:
        groups = data.groups()
        if "variant" in groups and groups["variant"].isna().all():
            groups = groups.drop(columns="variant")
        parts.append("<h2>Seed groups</h2><p class=\"meta\">Trials that differ only in their seed, ranked by the mean "
                     f"{html.escape(data.metric)}: n completed, std, and Student's t 95% interval of the mean.</p>")
        parts.append(_table(groups, list(groups.columns), "groups", status_column=False))
    parts.append("<h2>Trials</h2><p class=\"meta\">Click a column's name to sort by it.</p>")
    columns = [c for c in ["trial", "variant"] + data.params + ["status", data.metric] if c in frame]
    columns = list(dict.fromkeys(columns + [c for c in frame.columns if c not in columns and c not in ("trial",)
                                            and c not in FIXED_COLUMNS] + [c for c in FIXED_COLUMNS if c in frame]))
    if "variant" in columns and frame["variant"].isna().all():
        columns.remove("variant")
    parts.append(_table(frame, columns, "trials"))
    parts.append(f"<h2>Spec and command line</h2><pre>{html.escape(data.spec_text)}</pre>")
    refresh = '<meta http-equiv="refresh" content="30">' if live else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{refresh}'
            f"<title>Sweep {html.escape(data.name)}</title><style>{STYLE}</style>"
            f"<script>{echarts_js()}</script><script>{DRAW_SCRIPT}</script></head><body>{''.join(parts)}"
            f"<script>{SORT_SCRIPT}</script></body></html>")
