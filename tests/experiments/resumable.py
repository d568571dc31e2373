"""A training loop that checkpoints with sacred_ray.save and resumes with sacred_ray.restore.

It logs `total` (the sum of the steps so far) at every step and saves every `every` steps.
On its first attempt (nothing to restore) its worker SIGKILLs itself right after logging step
`die_at` (-1: never), as a lost spot node would end it, or it raises at step `raise_at`. Each executed step leaves a file
`<step>-<pid>` in `marks` (if given), so a test can count the work done.
"""

import os
import shutil
import signal
import threading
import time

from sacred import Experiment

import sacred_ray

ex = Experiment("resumable")


@ex.config
def config():
    steps = 10
    every = 2
    die_at = -1
    pause = 0.05
    marks = ""
    raise_at = -1  # the first attempt raises after logging this step (-1: never)
    unpicklable = False  # save a state that cannot be pickled
    lose_folder = ""  # before dying, the first attempt deletes its own run folder in this -F folder (a wiped disk)


@ex.automain
@ex.distribute(num_cpus=1)
def main(steps, every, die_at, pause, marks, raise_at, unpicklable, lose_folder, _run):
    state = sacred_ray.restore()
    start, total = (state["step"] + 1, state["total"]) if state else (0, 0)
    for step in range(start, steps):
        total += step
        _run.log_scalar("total", total, step)
        if marks:
            open(os.path.join(marks, f"{step}-{os.getpid()}"), "w").close()
        if step % every == every - 1:
            sacred_ray.save({"step": step, "total": total, "lock": threading.Lock() if unpicklable else None})
        if step == die_at and state is None:
            if lose_folder:
                shutil.rmtree(os.path.join(lose_folder, str(_run._id)))
            os.kill(os.getpid(), signal.SIGKILL)
        if step == raise_at and state is None:
            raise RuntimeError(f"diverged at step {step}")
        time.sleep(pause)
    print(f"resumed from {start}" if state else "started fresh")
    return total
