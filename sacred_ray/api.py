"""The Python API: the same sweeps and searches as the command line, one call each.

    result = sacred_ray.run_sweep(ex, "grid.yaml", options={"--file_storage": "runs"})
    result = sacred_ray.run_tune(ex, "space.yaml", options={"--mongo_db": "localhost:27017:sweeps"})

Both resolve the spec once (a path, a dict, or one already resolved, with ``updates`` and
``named_configs`` applied over it) and hand it to the engine with a ``Request``: how to
run, whichever command. The keyword arguments are the ``Request``'s fields: ``options``
(Sacred's flags by long name; observers in ``ex.observers`` record the trials too),
``address``, ``resume``, ``changed_source_ok``, ``skip_done``, ``rerun``, ``progress``, ``command``
and ``sort``.
"""

from __future__ import annotations

import sys
from typing import Optional

from sacred import Experiment

from .checks import resolve_grid, resolve_space
from .engine.results import SweepResult
from .engine.session import Request
from .records import redact


def run_sweep(ex: Experiment, spec, updates: Optional[dict] = None, named_configs: tuple = (),
              **how) -> SweepResult:
    """Run every trial of a grid on Ray; returns every trial's result. Raises SpecError on
    bad input before anything starts."""
    from .engine.sweep import sweep

    return sweep(ex, resolve_grid(ex, spec, updates, named_configs), _request(how))


def run_tune(ex: Experiment, spec, updates: Optional[dict] = None, named_configs: tuple = (), **how):
    """Run a Tune search whose every trial is a Sacred run; returns the best trial, a row per
    trial and the runs (a ``TuneResult``), and writes ``best.yaml``. Raises SpecError on bad
    input before anything starts."""
    from .engine.tune import search

    return search(ex, resolve_space(ex, spec, updates, named_configs), _request(how))


def _request(how: dict) -> Request:
    """The engine's ``Request``, with the report page written by ``sacred_ray.report``."""
    return Request(**{"report": _write_report, **how})


def _write_report(folder: str, **kw) -> str:
    from .report import write_report

    return write_report(folder, **kw)


def run_command(ex: Experiment, req, spec):
    """Run a parsed command line's sweep or search; print its report; return its result."""
    how = _request(dict(options=req.options, address=req.address, resume=req.resume,
                        changed_source_ok=req.changed_source_ok, skip_done=req.skip_done, rerun=req.rerun,
                        progress=True, command=[redact(a) for a in sys.argv], sort=req.sort))
    if req.command == "tune_with":
        from .engine.tune import search

        result = search(ex, spec, how)
    else:
        from .engine.sweep import sweep

        result = sweep(ex, spec, how)
    print(result.report)
    if result.observer_errors:
        print(f"warning: {len(result.observer_errors)} observer error(s); first: {result.observer_errors[0]}",
              file=sys.stderr)
    return result


__all__ = ["Request", "run_sweep", "run_tune"]
