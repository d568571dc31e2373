"""The benchmark's experiment: burns `seconds` of CPU and returns how long it ran."""

import time

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("workload")


@ex.config
def config():
    seconds = 0.5
    index = 0


@ex.automain
@ex.distribute(num_cpus=1)
def main(seconds, index):
    start = time.process_time()
    x = 0
    while time.process_time() - start < seconds:
        x += 1
    return time.process_time() - start
