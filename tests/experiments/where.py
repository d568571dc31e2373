"""Records where it ran: which module file (the shipped copy?) and for how long."""

import time

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("where")


@ex.config
def config():
    i = 0
    seconds = 1.0
    quality = 0.5


@ex.automain
@ex.distribute(num_cpus=1)
def main(i, seconds, quality, _run):
    _run.info["module_file"] = __file__
    for step in range(3):
        _run.log_scalar("loss", 1 - quality + 1 / (step + 1), step)
        time.sleep(seconds / 3)
    return quality
