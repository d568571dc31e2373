"""ray_sweep against a sequential loop and the hand-written 'seed' pattern, in one run.

    python benchmarks/sweep_overhead.py [--repeats 3] [--baseline PYTHON]

Workloads: 40 trials of 0.5 s CPU (parallel efficiency) and 300 trials that do nothing
(overhead per trial). Every way records its runs with a FileStorageObserver, except
"bare Ray": the same work in raw Ray tasks without Sacred, the floor of this machine. Prints
medians over the repeats and the ratios the README quotes. The ways take turns within
each repeat, so a change in the machine's load hits all of them alike; a ratio is the
median of the per-repeat ratios. Trials-phase times come from the runs' own start/stop
times; whole-command times include starting Ray.

``--baseline PYTHON`` compares ray_sweep with itself at another version instead, in one run:
PYTHON is the interpreter of a virtualenv where that version of sacred_ray is installed (see
README's Performance for how the campaign change was measured this way).
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload.py")
CORES = os.cpu_count() or 1


def trials_phase(runs_dir):
    """Seconds from the first run's start to the last run's stop, and the number of runs."""
    starts, stops = [], []
    for name in os.listdir(runs_dir):
        path = os.path.join(runs_dir, name, "run.json")
        if name.isdigit() and os.path.exists(path):
            with open(path) as f:
                run = json.load(f)
            if run.get("status") != "COMPLETED":
                raise SystemExit(f"run {name} ended {run.get('status')}")
            starts.append(datetime.datetime.fromisoformat(run["start_time"]))
            stops.append(datetime.datetime.fromisoformat(run["stop_time"]))
    return (max(stops) - min(starts)).total_seconds(), len(starts)


def timed(cmd, cwd):
    """Seconds until the command's process exits, as a user's shell sees it. Its output goes
    to a file, not a pipe: Ray's daemons inherit the driver's stdout and stderr and may hold a
    pipe open for a moment after the driver has gone, which a shell does not wait for."""
    env = dict(os.environ, RAY_ADDRESS="local")
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        returncode = proc.wait()
        wall = time.perf_counter() - start
        if returncode != 0:
            out.seek(0)
            raise SystemExit(f"{cmd} failed:\n{out.read().decode(errors='replace')[-2000:]}")
    return wall


def sequential(tmp, n, seconds):
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('w', {WORKLOAD!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "from sacred.observers import FileStorageObserver\n"
        f"m.ex.observers = [FileStorageObserver({os.path.join(tmp, 'runs')!r})]\n"
        f"for i in range({n}):\n"
        f"    m.ex.run(config_updates={{'seconds': {seconds}, 'index': i}}, options={{'--capture': 'sys'}})\n"
    )
    return timed([sys.executable, "-c", code], tmp)


def bare(tmp, n, seconds):
    return timed([sys.executable, os.path.join(HERE, "bare_ray.py"), os.path.join(tmp, "runs"), str(n), str(seconds)], tmp)


def seed(tmp, n, seconds):
    return timed([sys.executable, os.path.join(HERE, "seed_pattern.py"), os.path.join(tmp, "runs"), str(n), str(seconds)], tmp)


def ray_sweep(tmp, n, seconds, python=sys.executable):
    with open(os.path.join(tmp, "grid.yaml"), "w") as f:
        f.write(f"fixed: {{seconds: {seconds}}}\ngrid:\n  index: {{range: [{n}]}}\nsweep: {{name: bench}}\n")
    # -C sys, as the sequential loop and the hand-written pattern capture (Sacred's default, fd,
    # costs every way about 2 ms a run for its tee process)
    return timed([python, WORKLOAD, "ray_sweep", "with", "grid.yaml", "-F", "runs", "-C", "sys"], tmp)


WAYS = {"sequential": sequential, "bare Ray": bare, "seed pattern": seed, "ray_sweep": ray_sweep}


def measure(way, n, seconds):
    tmp = tempfile.mkdtemp(prefix="sacred_ray_bench_")
    try:
        wall = WAYS[way](tmp, n, seconds)
        phase, count = trials_phase(os.path.join(tmp, "runs"))
        if count != n:
            raise SystemExit(f"{way}: {count} runs recorded, expected {n}")
        return wall, phase
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure_all(n, seconds, repeats):
    """{way: [(wall, phase), ...]}, the ways taking turns within each repeat."""
    runs = {way: [] for way in WAYS}
    for _ in range(repeats):
        for way in WAYS:
            runs[way].append(measure(way, n, seconds))
    return runs


def median_of(runs, pick):
    return statistics.median(pick(r) for r in runs)


TO = ["seed pattern"]  # what ray_sweep is compared with (--baseline: itself at another version)


def ratio(runs, pick, of="ray_sweep", to=None):
    """The median over repeats of ``of``/``to``, each repeat's pair measured side by side."""
    to = to or TO[0]
    return statistics.median(pick(a) / pick(b) for a, b in zip(runs[of], runs[to]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workload", choices=["all", "parallel", "overhead"], default="all")
    parser.add_argument("--baseline", metavar="PYTHON", help="compare ray_sweep with the sacred_ray this Python has")
    args = parser.parse_args()
    if args.baseline:
        WAYS.clear()
        WAYS["ray_sweep"] = ray_sweep
        WAYS["baseline"] = lambda tmp, n, seconds: ray_sweep(tmp, n, seconds, python=args.baseline)
        TO[0] = "baseline"
    print(f"{CORES} cores, median of {args.repeats} runs each\n")
    if args.workload in ("all", "parallel"):
        parallel(args.repeats)
    if args.workload in ("all", "overhead"):
        overhead(2 * args.repeats)  # a few seconds a run, and noisier: twice the repeats


def parallel(repeats):
    n, seconds = 40, 0.5
    ideal = n * seconds / CORES
    print(f"parallel efficiency: {n} trials x {seconds} s CPU (ideal {ideal:.1f} s on {CORES} cores)")
    print(f"{'way':14} {'trials phase':>12} {'vs ideal':>9} {'whole command':>14} {'vs ideal':>9}")
    runs = measure_all(n, seconds, repeats)
    for way in WAYS:
        wall, phase = median_of(runs[way], lambda r: r[0]), median_of(runs[way], lambda r: r[1])
        print(f"{way:14} {phase:11.2f}s {phase / ideal:8.3f}x {wall:13.2f}s {wall / ideal:8.3f}x")
    print(f"ray_sweep / {TO[0]}: trials phase {ratio(runs, lambda r: r[1]):.3f}, "
          f"whole command {ratio(runs, lambda r: r[0]):.3f}")
    if "bare Ray" in runs:
        print(f"ray_sweep / bare Ray (no Sacred): trials phase {ratio(runs, lambda r: r[1], to='bare Ray'):.3f}")


def overhead(repeats):
    n = 300
    print(f"\noverhead per trial: {n} trials that do nothing (median of {repeats})")
    print(f"{'way':14} {'trials phase':>12} {'per trial':>10} {'whole command':>14}")
    runs = measure_all(n, 0.0, repeats)
    for way in WAYS:
        wall, phase = median_of(runs[way], lambda r: r[0]), median_of(runs[way], lambda r: r[1])
        print(f"{way:14} {phase:11.2f}s {1000 * phase / n:8.1f}ms {wall:13.2f}s")
    print(f"ray_sweep per-trial overhead / {TO[0]}: {ratio(runs, lambda r: r[1]):.3f}")


if __name__ == "__main__":
    main()
