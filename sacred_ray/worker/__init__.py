"""The worker side: runs one trial as a Sacred run and relays its events."""

from .core import load_experiment, run_sacred
from .observer import RayObserver
from .runner import run_trial

__all__ = ["RayObserver", "load_experiment", "run_sacred", "run_trial"]
