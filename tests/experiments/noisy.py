"""An experiment whose result has known noise: for seeds 0, 1, 2 it is base - 1, base, base + 1.

base = 10 - (lr - 3) ** 2, so over seeds [0, 1, 2] each lr's group has mean base, std 1 and
the 95% interval base +- t(0.975, 2) / sqrt(3) = base +- 2.4842.
"""

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("noisy")


@ex.config
def config():
    lr = 1.0
    steps = 5
    fail_at = -1.0  # an lr that raises


@ex.automain
@ex.distribute(num_cpus=1)
def main(lr, steps, fail_at, seed, _run):
    if lr == fail_at:
        raise ValueError(f"lr {lr} diverged")
    noise = (seed % 3) - 1
    base = 10 - (lr - 3) ** 2
    for step in range(steps):
        _run.log_scalar("score", base * (step + 1) / steps + noise, step)
    return base + noise
