"""A tiny experiment whose behaviour the tests steer through its config."""

import os
import time

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("toy")


@ex.config
def config():
    x = 1.0
    y = 0
    steps = 3
    fail = False
    sleep = 0.0
    artifact = False
    opt = {"lr": 0.1, "momentum": 0.9}
    exit_hard = False
    flaky_dir = ""  # fail the first `flaky_failures` attempts of each x (counted in this folder)
    flaky_failures = 0
    stubborn = False  # ignore interrupts (a trial stuck where Ctrl-C cannot reach)


@ex.named_config
def big():
    y = 10


@ex.named_config
def small():
    y = -10


@ex.automain
@ex.distribute(num_cpus=1)
def main(x, y, steps, fail, sleep, artifact, opt, exit_hard, flaky_dir, flaky_failures, stubborn, _run):
    _run.info["seen_id"] = _run._id
    print(f"hello from x={x}")
    for i in range(steps):
        _run.log_scalar("loss", (x - 2) ** 2 + 1.0 / (i + 1), i)
    end = time.monotonic() + sleep
    while time.monotonic() < end:
        try:
            time.sleep(end - time.monotonic())
        except KeyboardInterrupt:
            if not stubborn:
                raise
    if artifact:
        path = os.path.join(os.getcwd(), f"artifact-{os.getpid()}.txt")
        with open(path, "w") as f:
            f.write(f"artifact of x={x}")
        _run.add_artifact(path, name="out.txt")
        os.remove(path)
    if flaky_dir:
        counter = os.path.join(flaky_dir, f"attempts-{x}")
        count = int(open(counter).read()) if os.path.exists(counter) else 0
        with open(counter, "w") as f:
            f.write(str(count + 1))
        if count < flaky_failures:
            raise RuntimeError(f"flaky attempt {count + 1} of x={x}")
    if exit_hard:
        os._exit(3)
    if fail:
        raise ValueError(f"boom x={x}")
    return -((x - 2) ** 2) + y
