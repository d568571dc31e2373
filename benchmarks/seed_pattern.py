"""The pattern users write by hand (the 'seed'): raw Ray tasks that import the experiment
and run it with a worker-side FileStorageObserver.

    python benchmarks/seed_pattern.py RUNS_DIR N SECONDS
"""

import importlib.util
import os
import sys

import ray

HERE = os.path.dirname(os.path.abspath(__file__))


@ray.remote(max_retries=0)
def run_one(runs_dir, seconds, index):
    from sacred.observers import FileStorageObserver

    if "workload_seed" not in sys.modules:
        spec = importlib.util.spec_from_file_location("workload_seed", os.path.join(HERE, "workload.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["workload_seed"] = module
        spec.loader.exec_module(module)
    ex = sys.modules["workload_seed"].ex
    ex.observers = [FileStorageObserver(runs_dir)]
    run = ex.run(config_updates={"seconds": seconds, "index": index}, options={"--capture": "sys"})
    return run.result


if __name__ == "__main__":
    runs_dir, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="error")
    ray.get([run_one.remote(runs_dir, seconds, i) for i in range(n)])
    ray.shutdown()
