"""A synthetic experiment whose learning curve depends on its config in a known way.

loss(step) = (1 - quality) + 1 / (step + 1): higher quality is better at every step,
so the best trial of any search is the one with the highest sampled quality.
"""

import time

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("curves")


@ex.config
def config():
    quality = 0.5
    steps = 12
    model = "mlp"
    env = "cartpole"
    hidden = 32
    fail_below = -1.0
    pause = 0.02


@ex.automain
@ex.distribute(num_cpus=1)
def main(quality, steps, model, env, hidden, fail_below, pause, _run):
    if quality < fail_below:
        raise RuntimeError(f"quality {quality} is below {fail_below}")
    loss = None
    for step in range(steps):
        loss = (1 - quality) + 1 / (step + 1)
        _run.log_scalar("accuracy", quality * step / steps, step)
        _run.log_scalar("loss", loss, step)
        time.sleep(pause)
    return -loss
