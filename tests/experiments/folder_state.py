"""A training loop whose state is a folder of plain files (weights, a subfolder of notes), saved
with sacred_ray.save(directory=...) every step and restored with sacred_ray.restore().

The first attempt SIGKILLs its worker right after saving step `die_at`, as a lost node would
end it. The restarted run reads the folder back, writes into it (as code that keeps working in
its checkpoint folder does), goes on saving, and at its end reads the restored folder once more.
"""

import os
import shutil
import signal

from sacred import Experiment

import sacred_ray

ex = Experiment("folder_state")


@ex.config
def config():
    steps = 6
    die_at = 2


@ex.automain
@ex.distribute(num_cpus=1)
def main(steps, die_at, _run):
    restored = sacred_ray.restore()
    start = int(open(os.path.join(restored, "weights.txt")).read()) + 1 if restored else 0
    if restored:
        print(f"restored {sorted(os.listdir(restored))} from step {start - 1}")
        with open(os.path.join(restored, "weights.txt"), "a") as f:
            f.write(" edited by the run")
    work = f"model-{_run._id}"
    os.makedirs(os.path.join(work, "notes"), exist_ok=True)
    for step in range(start, steps):
        with open(os.path.join(work, "weights.txt"), "w") as f:
            f.write(str(step))
        with open(os.path.join(work, "notes", "log.txt"), "a") as f:
            f.write(f"step {step}\n")
        _run.log_scalar("step", step, step)
        sacred_ray.save(directory=work)
        if step == die_at and not restored:
            os.kill(os.getpid(), signal.SIGKILL)
    if restored:
        print("still there:", open(os.path.join(restored, "weights.txt")).read())
    shutil.rmtree(work)
    return start
