"""What checkpoints cost and what a restart takes.

    python benchmarks/checkpoint_speed.py [--repeats 15] [--restarts 3] [--megabytes 100]

1. sacred_ray.save of a state of --megabytes against writing the same object with pickle
   directly (pickle.dump to a file): medians and the median of the paired ratios (target <= 1.2x).
2. A sweep trial (tests/experiments/resumable.py, 20 steps of 0.1 s, a checkpoint every 4)
   whose worker is SIGKILLed after step 10, on a local Ray: seconds from the worker's death to
   the trial training again (its next step logged), and the steps computed twice (the work
   lost), median over --restarts sweeps.
"""

import argparse
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def save_ratio(megabytes: int, repeats: int) -> None:
    from sacred_ray.checkpoint import TrialCheckpoints

    state = {"weights": os.urandom(megabytes * 1024 * 1024), "epoch": 3}
    direct, ours, ratios = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = TrialCheckpoints(os.path.join(tmp, "ckpt"), keep=2)
        for i in range(repeats):
            start = time.perf_counter()
            with open(os.path.join(tmp, f"direct-{i % 2}.pkl"), "wb") as f:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
                f.flush()
            direct.append(time.perf_counter() - start)
            start = time.perf_counter()
            store.save(state)
            ours.append(time.perf_counter() - start)
            ratios.append(ours[-1] / direct[-1])
    print(f"save() of {megabytes} MB, median of {repeats}: pickle.dump {statistics.median(direct):.3f}s, "
          f"sacred_ray.save {statistics.median(ours):.3f}s ({statistics.median(ratios):.2f}x; target <= 1.2x)")


def restart_time(repeats: int) -> None:
    gaps, lost = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(REPO, "tests", "experiments", "resumable.py"), tmp)
            marks = os.path.join(tmp, "marks")
            os.mkdir(marks)
            with open(os.path.join(tmp, "g.yaml"), "w") as f:
                f.write(f"grid:\n  steps: [20]\nfixed: {{every: 4, die_at: 10, pause: 0.1, marks: {marks}}}\n")
            subprocess.run([sys.executable, "resumable.py", "ray_sweep", "with", "g.yaml", "-F", "runs"], cwd=tmp,
                           check=True, capture_output=True, env=dict(os.environ, RAY_ADDRESS="local"))
            done = [(os.path.getmtime(os.path.join(marks, m)), *map(int, m.split("-"))) for m in os.listdir(marks)]
            first_pid = min(done)[2]
            died = max(t for t, _, pid in done if pid == first_pid)
            again = min(t for t, _, pid in done if pid != first_pid)
            gaps.append(again - died)
            lost.append(len(done) - 20)
    print(f"worker killed after step 10 of 20 (checkpoint every 4 steps), median of {repeats}: training again "
          f"{statistics.median(gaps):.2f}s after the death; {statistics.median(lost):.0f} step(s) computed twice")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    save_ratio(args.megabytes, args.repeats)
    restart_time(args.restarts)


if __name__ == "__main__":
    main()
