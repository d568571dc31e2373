"""sweep_status of a 10,000-trial sweep while it runs, and what the driver pays to keep it.

    python benchmarks/campaign_status.py [--trials 10000] [--samples 7]

Starts ``workload.py ray_sweep`` over ``--trials`` trials that do nothing (-F, a local Ray),
waits until a third of them ended, then asks for its status while it runs: ``sweep_status``
as a command (a fresh Python, what a user types) and ``sacred_ray.sweep_status`` in this
process, ``--samples`` times each, alternating. Then, in this process, the driver's side:
one rewrite of status.json with as many finished trials as the sweep has (the Beacon fed
that many results), and one look at control.jsonl. Prints medians.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload.py")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=7)
    args = parser.parse_args()

    import sacred_ray
    from sacred_ray.engine.control import Beacon
    from sacred_ray.engine.results import TrialResult
    from sacred_ray.spec import Trial

    tmp = tempfile.mkdtemp(prefix="campaign-bench-")
    with open(os.path.join(tmp, "grid.yaml"), "w") as f:
        f.write(f"sweep: {{name: big}}\ngrid:\n  index: {{range: [0, {args.trials}]}}\nfixed: {{seconds: 0.0}}\n")
    env = dict(os.environ, RAY_ADDRESS="local")
    driver = subprocess.Popen([sys.executable, WORKLOAD, "ray_sweep", "with", "grid.yaml", "-F", "runs", "-C", "sys"],
                              cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = os.path.join(tmp, "sweeps", "big")
    command, function = [], []
    try:
        while True:
            try:
                status = sacred_ray.sweep_status(folder)
                if status.get("done", 0) >= args.trials // 3:
                    break
            except sacred_ray.SpecError:
                pass
            if driver.poll() is not None:
                raise SystemExit("the sweep ended before it could be measured")
            time.sleep(1)
        for _ in range(args.samples):
            t = time.perf_counter()
            subprocess.run([sys.executable, WORKLOAD, "sweep_status", folder, "--json"], cwd=tmp, env=env,
                           check=True, stdout=subprocess.DEVNULL)
            command.append(time.perf_counter() - t)
            t = time.perf_counter()
            status = sacred_ray.sweep_status(folder)
            function.append(time.perf_counter() - t)
        assert status["driver_alive"] and status["state"] == "running", status["state"]
        done_at_end = status["done"]
    finally:
        driver.kill()
        driver.wait()

    beacon = Beacon(tmp, "synthetic", "ray_sweep", "result", "max", args.trials)
    for i in range(args.trials):
        beacon.result(TrialResult(trial=Trial(index=i, variant=None, key=f"k{i}"), status="COMPLETED", result=float(i)))
    writes, polls = [], []
    for _ in range(args.samples):
        t = time.perf_counter()
        beacon.write(force=True)
        writes.append(time.perf_counter() - t)
        t = time.perf_counter()
        beacon.poll(force=True)
        polls.append(time.perf_counter() - t)
    size = os.path.getsize(os.path.join(tmp, "status.json"))
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"sweep of {args.trials:,} no-op trials, measured while it ran ({done_at_end:,} ended by the last sample)")
    print(f"sweep_status command (fresh Python): median {statistics.median(command):.3f} s "
          f"({statistics.median(command) / 1.0:.2f} of the 1 s target)")
    print(f"sacred_ray.sweep_status in-process:  median {statistics.median(function) * 1000:.1f} ms")
    print(f"driver: status.json rewrite with {args.trials:,} trials ended: median {statistics.median(writes) * 1000:.2f} ms "
          f"(at most once a second; {size:,} bytes)")
    print(f"driver: one look at control.jsonl: median {statistics.median(polls) * 1e6:.1f} us (every 0.5 s)")


if __name__ == "__main__":
    main()
