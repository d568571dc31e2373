"""Plain-text tables and value formatting shared by --dry-run and sweep summaries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if value is None:
        return "-"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 40) -> str:
    """A left-aligned text table; cells longer than ``max_width`` are cut with '…'."""
    cells = [[format_value(c) for c in row] for row in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def varying_keys(value_dicts: Sequence[dict]) -> list:
    """Keys whose value differs between the dicts (or is missing from some), in first-seen order."""
    order: dict = {}
    for d in value_dicts:
        for k in d:
            order.setdefault(k, None)
    varying = []
    for k in order:
        seen = {repr(d.get(k, _MISSING)) for d in value_dicts}
        if len(seen) > 1:
            varying.append(k)
    return varying


_MISSING = object()
