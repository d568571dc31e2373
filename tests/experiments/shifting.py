"""A training loop whose best learning rate changes halfway: the toy problem PBT is made for.

Each step adds gain(lr) to `score` (so `score` is what the run has learnt so far); the gain is
highest at lr = 0.1 before step `shift_at` and at lr = 0.001 after it, so no single lr does well
over the whole run. The state (step, score) is saved every step and restored on a restart or
after a PBT exploit, as a real training loop would restore its model.
"""

import math
import time

from sacred import Experiment

import sacred_ray

ex = Experiment("shifting")


@ex.config
def config():
    lr = 0.01
    steps = 16
    shift_at = 8
    pause = 0.05


def gain(lr, step, shift_at):
    best = -1.0 if step < shift_at else -3.0
    return math.exp(-((math.log10(lr) - best) ** 2))


@ex.automain
@ex.distribute(num_cpus=0.25)
def main(lr, steps, shift_at, pause, _run):
    state = sacred_ray.restore() or {"step": -1, "score": 0.0}
    score = state["score"]
    for step in range(state["step"] + 1, steps):
        score += gain(lr, step, shift_at)
        _run.log_scalar("score", score, step)
        sacred_ray.save({"step": step, "score": score})
        time.sleep(pause)
    return score
