"""Control: which model and learning rate for which environment?

A stand-in for an RL experiment (no simulator needed): the reward curve depends on
the environment, the model and the learning rate. Partially observed environments
(*PO) need memory, so for them the model must be an LSTM and the LSTM's size is a
parameter; fully observed ones may use either model. That is a conditional search
space, written with variants in control_space.yaml:

    python examples/control.py tune_with examples/control_space.yaml -F runs
"""

import math
import time

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("control")

DIFFICULTY = {"CartPole": 1.0, "MountainCar": 1.6, "PendulumPO": 1.3, "AcrobotPO": 1.8}


@ex.config
def config():
    env = "CartPole"
    model = "mlp"
    lr = 0.01
    lstm_hidden = 64
    iterations = 20
    step_seconds = 0.01


@ex.automain
@ex.distribute(num_cpus=1)
def main(env, model, lr, lstm_hidden, iterations, step_seconds, _run):
    partially_observed = env.endswith("PO")
    if partially_observed and model != "lstm":
        raise ValueError(f"{env} is partially observed: it needs model=lstm")
    # best near lr = 1e-2; an LSTM learns a bit slower but a larger one is more capable
    lr_fit = math.exp(-((math.log10(lr) + 2.0) ** 2))
    capacity = 1.0 if model == "mlp" else 0.9 + 0.1 * math.log2(lstm_hidden / 32) / 2
    ceiling = 200.0 * lr_fit * capacity / DIFFICULTY[env]
    reward = 0.0
    for it in range(iterations):
        reward = ceiling * (1 - math.exp(-(it + 1) / (4 if model == "mlp" else 6)))
        _run.log_scalar("reward", reward, it)
        time.sleep(step_seconds)
    return reward
