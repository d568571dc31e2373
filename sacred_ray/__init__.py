"""sacred-ray: run Sacred experiments in parallel on Ray, from the experiment's own command line.

    python my_exp.py ray_sweep with grid.yaml -m localhost:27017:sweeps
    python my_exp.py tune_with space.yaml -F runs
"""

from .checkpoint import restore, save
from .plugin import distribute, install
from .spec import GridSpec, Resources, SpaceSpec, SpecError, Trial, load_grid, load_space

install()

__version__ = "0.1.0"


def load_trials(experiment, spec, updates=None, named_configs=()) -> list:
    """The trials a grid file (path or dict) means for ``experiment``, checked as --dry-run checks them.

    ``updates`` (``{"epochs": 3}`` or dotted keys) and ``named_configs`` apply to every
    trial, as on the command line. Raises SpecError on bad input.
    """
    from .checks import resolve_grid

    return resolve_grid(experiment, spec, updates, named_configs).trials


_LAZY = {
    "run_sweep": ("sacred_ray.api", "run_sweep"),
    "SweepResult": ("sacred_ray.engine.results", "SweepResult"),
    "TrialResult": ("sacred_ray.engine.results", "TrialResult"),
    "run_tune": ("sacred_ray.api", "run_tune"),
    "TuneResult": ("sacred_ray.engine.tune_results", "TuneResult"),
    "RayObserver": ("sacred_ray.worker.observer", "RayObserver"),
    "load_sweep": ("sacred_ray.analysis", "load_sweep"),
    "load_metrics": ("sacred_ray.analysis", "load_metrics"),
    "write_report": ("sacred_ray.report", "write_report"),
    "sweep_status": ("sacred_ray.campaign", "sweep_status"),
    "sweep_cancel": ("sacred_ray.campaign", "sweep_cancel"),
    "sweep_pause": ("sacred_ray.campaign", "sweep_pause"),
    "sweep_continue": ("sacred_ray.campaign", "sweep_continue"),
}


def __getattr__(name):
    """Ray-dependent parts load on first use, so a dry run never imports Ray."""
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'sacred_ray' has no attribute {name!r}")


__all__ = [
    "GridSpec", "RayObserver", "Resources", "SpaceSpec", "SpecError", "SweepResult", "Trial", "TrialResult",
    "TuneResult", "distribute", "load_grid", "load_metrics", "load_space", "load_sweep", "load_trials", "restore",
    "run_sweep", "run_tune", "save", "sweep_cancel", "sweep_continue", "sweep_pause", "sweep_status", "write_report",
]
