"""sacred-ray: run Sacred experiments in parallel on Ray, from the experiment's own command line.

    python my_exp.py ray_sweep with grid.yaml -m localhost:27017:sweeps
    python my_exp.py tune_with space.yaml -F runs
"""

from .plugin import distribute, install
from .spec import GridSpec, Resources, SpaceSpec, SpecError, Trial, load_grid, load_space

install()

__version__ = "0.1.0"


def load_trials(experiment, spec, updates=None, named_configs=()) -> list:
    """The trials a grid file (path or dict) means for ``experiment``, checked as --dry-run checks them.

    ``updates`` (``{"epochs": 3}`` or dotted keys) and ``named_configs`` apply to every
    trial, as on the command line. Raises SpecError on bad input.
    """
    from .checks import check_grid
    from .spec.grid import flatten

    updates = flatten(updates or {}, "updates", "")
    grid = load_grid(spec, updates, tuple(named_configs))
    if experiment is not None:
        check_grid(experiment, grid, updates)
    return grid.trials


__all__ = [
    "GridSpec", "Resources", "SpaceSpec", "SpecError", "Trial", "distribute",
    "load_grid", "load_space", "load_trials",
]
