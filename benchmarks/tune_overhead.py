"""tune_with against the same search through raw Ray Tune, in one run on one Ray.

    python benchmarks/tune_overhead.py [--repeats 3] [--trials 8]

Raw Tune runs a function trainable doing the same work as benchmarks/steps.py without
Sacred; tune_with runs the Sacred experiment with a FileStorageObserver. Trials take
about 1 s (10 steps of 0.1 s CPU). Prints medians, the overhead ratio (target: within
15%), and for ASHA the share of trial-steps saved against running every trial to max_t.
"""

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_steps():
    spec = importlib.util.spec_from_file_location("steps_bench", os.path.join(HERE, "steps.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["steps_bench"] = module
    spec.loader.exec_module(module)
    return module


def raw_trainable(config):
    from ray import tune

    steps = load_steps()
    for step in range(config["steps"]):
        steps.burn(config["step_seconds"])
        tune.report({"loss": (1 - config["quality"]) + 1 / (step + 1), "step": step})


def raw_tune(trials, folder):
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(raw_trainable, {"cpu": 1}),
        param_space={"quality": tune.uniform(0, 1), "steps": 10, "step_seconds": 0.1},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=trials, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=folder, name="raw", verbose=0),
    )
    start = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - start


def sacred_tune(ex, trials, folder, scheduler=None):
    from sacred_ray.api import run_tune

    spec = {"fixed": {"steps": 10, "step_seconds": 0.1}, "space": {"quality": {"uniform": [0, 1]}},
            "tune": {"metric": "loss", "mode": "min", "num_samples": trials, "dir": os.path.join(folder, "sw")}}
    if scheduler:
        spec["tune"]["scheduler"] = scheduler
    start = time.perf_counter()
    result = run_tune(ex, spec, options={"--file_storage": os.path.join(folder, "runs")}, progress=False)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="error",
             runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}})
    ex = load_steps().ex
    raw, ours = [], []
    for _ in range(args.repeats):
        folder = tempfile.mkdtemp(prefix="sacred_ray_tune_bench_")
        try:
            raw.append(raw_tune(args.trials, folder))
            ours.append(sacred_tune(ex, args.trials, folder)[0])
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    r, o = statistics.median(raw), statistics.median(ours)
    print(f"{os.cpu_count()} cores, {args.trials} trials of ~1 s (10 x 0.1 s CPU), median of {args.repeats}")
    print(f"raw Tune      {r:6.2f}s")
    print(f"tune_with     {o:6.2f}s")
    print(f"tune_with / raw Tune: {o / r:.3f}")

    folder = tempfile.mkdtemp(prefix="sacred_ray_tune_bench_")
    try:
        asha = {"type": "asha", "max_t": 10, "grace_period": 2, "reduction_factor": 2}
        _, result = sacred_tune(ex, 16, folder, scheduler=asha)
        steps_run = sum(run["steps"].get("loss", 0) for run in result.runs)
        budget = 10 * len(result.trials)
        stopped = sum(1 for run in result.runs if run["status"] == "INTERRUPTED")
        print(f"\nASHA (max_t 10, grace 2, rf 2) over {len(result.trials)} trials: {stopped} stopped early, "
              f"{steps_run} of {budget} trial-steps run; {1 - steps_run / budget:.0%} saved")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
