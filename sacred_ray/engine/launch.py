"""From a parsed command line to a finished sweep and its exit status."""

from __future__ import annotations

import sys

from sacred import Experiment

from .observers import redact


def launch(ex: Experiment, req, spec) -> int:
    if req.command == "tune_with":
        from .tune import run_tune_cli

        return run_tune_cli(ex, req, spec)
    from .sweep import run_sweep

    result = run_sweep(
        ex, spec, options=req.options, address=req.address, resume=req.resume,
        progress=True, command=[redact(a) for a in sys.argv], sort=req.sort,
    )
    print(result.report)
    if result.observer_errors:
        print(f"warning: {len(result.observer_errors)} observer error(s); first: {result.observer_errors[0]}",
              file=sys.stderr)
    return result.exit_code
