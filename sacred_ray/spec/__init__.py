"""The sweep-file language: YAML in, validated trials (or a search space) out.

Pure data: this package imports neither Ray nor Sacred, so the command line, the
engine and the worker can all depend on it.
"""

from .distributions import Distribution
from .errors import SpecError
from .grid import GridSpec, load_grid
from .resources import Resources
from .settings import SweepSettings, TuneSettings
from .space import SpaceSpec, SpaceVariant, load_space
from .trial import Trial, nest

__all__ = [
    "Distribution", "GridSpec", "Resources", "SpaceSpec", "SpaceVariant", "SpecError",
    "SweepSettings", "Trial", "TuneSettings", "load_grid", "load_space", "nest",
]
