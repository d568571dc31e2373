"""A sweep's report: ``sweeps/<name>/report.html``, one self-contained page (Apache ECharts
inlined, opens offline) with parallel coordinates, parameter importance, the metric's curves, seed
groups, a sortable results table and the spec.

    sacred_ray.write_report("sweeps/digits-grid")                    # from Python
    python my_exp.py sweep_report sweeps/digits-grid                  # from the command line
    python my_exp.py sweep_report mongodb://host:27017/db digits-grid  # a sweep recorded in MongoDB

Written at the end of every sweep and rewritten every 30 s while one runs. It needs nothing
beyond sacred-ray's own dependencies (pandas reads the records; ECharts, vendored in this
package, draws).
"""

from __future__ import annotations

import os
from typing import Optional

from ..spec import SpecError


def write_report(source: str, name: Optional[str] = None, output: Optional[str] = None, *,
                 mongo: Optional[str] = None, metric: Optional[str] = None, mode: Optional[str] = None,
                 live: bool = False, sweep_id: Optional[str] = None) -> str:
    """Write the report of a sweep folder (or of a sweep in MongoDB: ``source`` is the address
    as ``-m`` takes it and ``name`` the sweep's name); return the file's path.

    The file goes to ``output``, else ``<folder>/report.html``, else (MongoDB)
    ``<name>-report.html`` in the current folder. ``metric``/``mode`` override the spec's;
    ``sweep_id`` picks one of several sweeps of the name in MongoDB (else the newest).
    Raises SpecError (one line) for a folder that is not a sweep's, an unreachable
    database, or a name with no runs."""
    from .data import gather
    from .page import render

    data = gather(source, name, mongo=mongo, metric=metric, mode=mode, sweep_id=sweep_id)
    if output is None:
        output = os.path.join(source, "report.html") if os.path.isdir(source) else f"{data.name}-report.html"
    text = render(data, live=live)
    temporary = f"{output}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, output)  # a browser reading the page never sees half of it
    except OSError as e:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise SpecError(output, "", f"cannot be written ({e.strerror or e})") from None
    return output


__all__ = ["write_report"]
