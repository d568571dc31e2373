"""The floor: the benchmark's CPU burn in raw Ray tasks, with no Sacred at all.

    python benchmarks/bare_ray.py RUNS_DIR N SECONDS

What Ray itself reaches on this machine, so the other ways' distance from the ideal can be
read against it. Each task writes only its start and stop time, as ``RUNS_DIR/<i>/run.json``
in FileStorageObserver's layout, for the benchmark to read like the others.
"""

import datetime
import json
import os
import sys
import time

import ray


@ray.remote(max_retries=0)
def burn(runs_dir, seconds, index):
    start_time = datetime.datetime.utcnow()
    start = time.process_time()
    x = 0
    while time.process_time() - start < seconds:
        x += 1
    stop_time = datetime.datetime.utcnow()
    folder = os.path.join(runs_dir, str(index + 1))
    os.makedirs(folder)
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump({"status": "COMPLETED", "start_time": start_time.isoformat(), "stop_time": stop_time.isoformat()}, f)


if __name__ == "__main__":
    runs_dir, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="error")
    ray.get([burn.remote(runs_dir, seconds, i) for i in range(n)])
    ray.shutdown()
