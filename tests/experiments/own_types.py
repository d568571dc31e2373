"""An experiment that uses classes of its own: an Enum and a dataclass in its config, a
result object, and an info value that cannot be pickled, as Sacred alone allows."""

import enum
import threading
from dataclasses import dataclass

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("own_types")


class Optimizer(enum.Enum):
    SGD = "sgd"
    ADAM = "adam"


@dataclass
class Score:
    value: float


@ex.config
def config():
    optimizer = Optimizer.SGD
    x = 1.0
    huge = False


@ex.automain
@ex.distribute(num_cpus=1)
def main(optimizer, x, huge, _run):
    _run.info["best"] = Score(x)
    _run.info["lock"] = threading.Lock()  # no pickle for this: it must still be recorded as Sacred would
    _run.log_scalar("loss", 1.0 / x, 0)
    if huge:
        return 10**400
    return Score(2 * x if optimizer is Optimizer.SGD else -x)
