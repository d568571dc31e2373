"""A run that logs a burst of values right before it returns: `n` log_scalar calls in a tight
loop, all of which reach the observers only with the run's last heartbeat."""
from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("burst")


@ex.config
def config():
    n = 1000


@ex.automain
@ex.distribute
def main(n, _run):
    for i in range(n):
        _run.log_scalar("loss", 1.0 / (i + 1), i)
    return n
