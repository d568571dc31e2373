"""The worker side: runs one trial as a Sacred run and relays its events."""

from .observer import RayObserver
from .runner import ExperimentRef, load_experiment, run_trial

__all__ = ["ExperimentRef", "RayObserver", "load_experiment", "run_trial"]
