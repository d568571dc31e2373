"""--skip-done's check against 10,000 earlier runs, in file storage and in MongoDB (mongomock).

    python benchmarks/skip_check.py [--runs 10000] [--samples 5]

One real Sacred run of ``workload.py`` (its FileStorageObserver and MongoObserver) is the
template of ``--runs`` earlier COMPLETED runs, each with its own ``index``: their run.json and
config.json as Sacred writes them, and their documents in a mongomock database. Then, for each
store, the check that a sweep runs before it starts (``find_done``) is timed for three grids of
``--runs`` trials: the same grid again (every trial done: matched by its recorded updates), a grid
of new values (none done), and the same values given with a default spelled out (every trial
done, found by computing its config). Prints medians of ``--samples`` and the target (2 s).
"""

import argparse
import copy
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET_SECONDS = 2.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()

    import mongomock
    import mongomock.gridfs
    from sacred.observers import FileStorageObserver, MongoObserver

    import sacred_ray
    from sacred_ray.engine.done import find_done

    sys.path.insert(0, HERE)
    import workload

    ex = workload.ex
    sources = {name: md5 for name, md5 in ex.get_experiment_info()["sources"]}
    tmp = tempfile.mkdtemp(prefix="skip-bench-")
    mongomock.gridfs.enable_gridfs_integration()
    try:
        with mongomock.patch(servers=(("localhost", 27017),)):
            files = FileStorageObserver(os.path.join(tmp, "runs"))
            mongo = MongoObserver(url="localhost:27017", db_name="bench")
            ex.observers = [files, mongo]
            ex.run(config_updates={"index": 0})  # burns the default 0.5 s once
            ex.observers = []
            _clone_files(os.path.join(tmp, "runs"), args.runs)
            _clone_mongo(mongo, args.runs)

            grids = {
                "the same grid (all done, by updates)": {"grid": {"index": {"range": [0, args.runs]}}},
                "new values (none done)": {"grid": {"index": {"range": [args.runs, 2 * args.runs]}}},
                "a default spelled out (all done, by config)": {"grid": {"index": {"range": [0, args.runs]}},
                                                                "fixed": {"seconds": 0.5}},
            }
            rows = []
            for label, grid in grids.items():
                trials = sacred_ray.load_trials(ex, grid)
                for store, observer in (("file storage", files), ("MongoDB", mongo)):
                    times, found = [], 0
                    for _ in range(args.samples):
                        t = time.perf_counter()
                        found = len(find_done(ex, trials, [observer], sources))
                        times.append(time.perf_counter() - t)
                    rows.append((store, label, found, statistics.median(times)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"skip check against {args.runs:,} earlier runs (median of {args.samples}; target < {TARGET_SECONDS} s)")
    for store, label, found, seconds in rows:
        verdict = "ok" if seconds < TARGET_SECONDS else "SLOW"
        print(f"  {store:12}  {label:45}  {found:>6,} skipped  {seconds:6.2f} s  {verdict}")


def _clone_files(base, count):
    """Runs 2..count as copies of run 1, each its own index (run.json and config.json)."""
    first = os.path.join(base, "1")
    with open(os.path.join(first, "run.json")) as f:
        run = json.load(f)
    with open(os.path.join(first, "config.json")) as f:
        config = json.load(f)
    for i in range(1, count):
        folder = os.path.join(base, str(i + 1))
        os.makedirs(folder)
        run["meta"]["config_updates"]["index"] = i
        config["index"] = i
        with open(os.path.join(folder, "run.json"), "w") as f:
            json.dump(run, f, indent=2)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2)


def _clone_mongo(observer, count):
    template = observer.runs.find_one()
    docs = []
    for i in range(1, count):
        doc = copy.deepcopy(template)
        doc["_id"] = i + 1
        doc["config"]["index"] = i
        doc["meta"]["config_updates"]["index"] = i
        docs.append(doc)
    observer.runs.insert_many(docs)


if __name__ == "__main__":
    main()
