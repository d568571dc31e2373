"""The tune benchmark's experiment: `steps` steps of `step_seconds` CPU each, logging `loss`."""

import time

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("steps")


@ex.config
def config():
    quality = 0.5
    steps = 10
    step_seconds = 0.1


def burn(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


@ex.automain
@ex.distribute(num_cpus=1)
def main(quality, steps, step_seconds, _run):
    loss = None
    for step in range(steps):
        burn(step_seconds)
        loss = (1 - quality) + 1 / (step + 1)
        _run.log_scalar("loss", loss, step)
    return -loss
