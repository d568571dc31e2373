"""Records where it ran: which module file (the shipped copy?) and for how long.

With ``together`` set, each run first waits (at most a minute) until that many runs have started
(each leaves a file in ``barrier``, a folder every node can see): a test that asks for trials on
several nodes does not depend on how fast a loaded machine's scheduler starts them.
"""

import os
import time

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("where")


@ex.config
def config():
    i = 0
    seconds = 1.0
    quality = 0.5
    barrier = ""
    together = 0


@ex.automain
@ex.distribute(num_cpus=1)
def main(i, seconds, quality, barrier, together, _run):
    _run.info["module_file"] = __file__
    if barrier:
        open(os.path.join(barrier, f"{os.getpid()}-{time.time()}"), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(barrier)) < together and time.monotonic() < deadline:
            time.sleep(0.05)
    for step in range(3):
        _run.log_scalar("loss", 1 - quality + 1 / (step + 1), step)
        time.sleep(seconds / 3)
    return quality
