"""One run lifecycle for both commands: a trial's Sacred run looks the same whether
ray_sweep or tune_with ran it, and each fact about a run has one home."""

import datetime
import json
import os

import pytest
from conftest import read_dump, run_cli, write

from sacred_ray.api import run_sweep, run_tune

pytestmark = pytest.mark.slow  # every test here starts Ray or a command line

SWEEP_KEYS = {"name", "id", "trial", "key", "variant", "attempt", "sources"}  # meta.sweep, whichever command ran the trial


def _file_runs(folder):
    """{run id: (file names, run.json, info.json)} of a file storage folder."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.isdigit():
            path = os.path.join(folder, name)
            with open(os.path.join(path, "run.json")) as f:
                run = json.load(f)
            with open(os.path.join(path, "info.json")) as f:
                info = json.load(f)
            out[name] = (sorted(os.listdir(path)), run, info)
    return out


def _stop_reason_homes(doc, at=""):
    """Every dotted path in a run document (info included) whose key names a stop reason."""
    found = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            path = f"{at}.{k}" if at else str(k)
            if "stop_reason" in str(k):
                found.add(path)
            found |= _stop_reason_homes(v, path)
    return found


@pytest.mark.long
def test_tune_with_file_storage_is_written_by_the_local_worker_as_ray_sweeps_is(workdir):
    """-F is written by the worker itself for both commands, as for the run alone: the same
    files in each run folder, the same run.json, and the -F folder in meta.options."""
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 3.0]\nfixed: {artifact: true}\nsweep: {name: g}\n")
    write(workdir / "space.yaml", "space:\n  x: {choice: [1.0, 3.0]}\nfixed: {artifact: true}\n"
                                  "tune: {name: t, metric: loss, mode: min, num_samples: 2, search: random}\n")
    swept = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "sweep_runs"], cwd=workdir)
    assert swept.returncode == 0, swept.stderr
    tuned = run_cli(["toy.py", "tune_with", "space.yaml", "-F", "tune_runs"], cwd=workdir)
    assert tuned.returncode == 0, tuned.stderr
    alone = run_cli(["toy.py", "with", "x=1.0", "artifact=True", "-F", "alone"], cwd=workdir)
    assert alone.returncode == 0, alone.stderr

    (alone_files, alone_run, _), = _file_runs(workdir / "alone").values()
    by_sweep, by_tune = _file_runs(workdir / "sweep_runs"), _file_runs(workdir / "tune_runs")
    assert len(by_sweep) == len(by_tune) == 2
    for folder, runs in (("sweep_runs", by_sweep), ("tune_runs", by_tune)):
        for name, (files, run, info) in runs.items():
            assert files == alone_files == ["config.json", "cout.txt", "info.json", "metrics.json", "out.txt", "run.json"]
            assert run["status"] == "COMPLETED" and set(run) == set(alone_run)
            assert run["meta"]["options"]["--file_storage"] == str(workdir / folder)  # its worker's own -F
            assert set(run["meta"]["sweep"]) == SWEEP_KEYS
            assert info["seen_id"] == name  # the run saw the id its folder has, a str as Sacred gives it
    for _, run, _ in by_tune.values():
        assert run["meta"]["sweep"]["key"] == run["meta"]["sweep"]["trial"] == run["meta"]["tune"]["trial_id"]
        assert run["meta"]["sweep"]["attempt"] == 1 and run["meta"]["sweep"]["name"] == "t"


@pytest.mark.long
def test_meta_sweep_has_the_same_fields_for_both_commands_in_mongodb(workdir, tmp_path):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 3.0]\nsweep: {name: g}\n")
    write(workdir / "space.yaml", "space:\n  x: {uniform: [0.0, 4.0]}\n"
                                  "tune: {name: t, metric: loss, mode: min, num_samples: 2, search: random}\n")
    dumps = {}
    for command, spec in (("ray_sweep", "grid.yaml"), ("tune_with", "space.yaml")):
        dumps[command] = tmp_path / f"{command}.json"
        proc = run_cli(["toy.py", command, spec, "-m", "localhost:27017:sweeps"], cwd=workdir,
                       mongo_dump=dumps[command])
        assert proc.returncode == 0, proc.stderr
    swept = read_dump(dumps["ray_sweep"], "sweeps")["runs"]
    tuned = read_dump(dumps["tune_with"], "sweeps")["runs"]
    assert len(swept) == len(tuned) == 2
    assert [set(r["meta"]["sweep"]) for r in swept + tuned] == [SWEEP_KEYS] * 4
    assert sorted(r["meta"]["sweep"]["trial"] for r in swept) == [0, 1]
    assert {r["meta"]["sweep"]["name"] for r in tuned} == {"t"}
    assert all(r["meta"]["sweep"]["key"] == r["meta"]["tune"]["trial_id"] for r in tuned)


# -- one home for a stop reason --------------------------------------------------

def _stale_file_run(folder, sweep_name):
    from sacred.observers import FileStorageObserver

    stale = FileStorageObserver(str(folder))
    stale.started_event(ex_info={"name": "toy", "base_dir": str(folder), "sources": [], "dependencies": [],
                                 "repositories": [], "mainfile": "toy.py"},
                        command="main", host_info={}, start_time=datetime.datetime.utcnow(), config={"x": 9.0},
                        meta_info={"sweep": {"name": sweep_name, "trial": 0}}, _id=None)


def _stale_mongo_run(mongo_db, sweep_name):
    mongo_db.runs.insert_one({"_id": 99, "status": "RUNNING", "config": {"x": 9.0}, "info": {},
                              "meta": {"sweep": {"name": sweep_name, "trial": 0}}})


def _recorded(where, tmp_path, mongo_db):
    """{x: (status, run document with its info)} as the observers recorded the runs."""
    if where == "mongo":
        return {r["config"]["x"]: r for r in mongo_db.runs.find()}
    out = {}
    for name, (_, run, info) in _file_runs(tmp_path / "runs").items():
        with open(tmp_path / "runs" / name / "config.json") as f:
            x = json.load(f)["x"]
        out[x] = {**run, "info": info}
    return out


OPTIONS = {"mongo": lambda tmp_path: {"--mongo_db": "localhost:27017:sweeps"},
           "file": lambda tmp_path: {"--file_storage": str(tmp_path / "runs")}}


@pytest.mark.parametrize("where", OPTIONS)
def test_a_stale_run_closed_by_resume_keeps_its_reason_where_every_stop_reason_lives(
        ray_session, toy, tmp_path, mongo_db, where):
    """A run left RUNNING by a machine that died, closed by --resume, and a run stopped by
    its timeout in the same sweep: both reasons in info.sacred_ray.stop_reason, nowhere else."""
    if where == "mongo":
        _stale_mongo_run(mongo_db, "stale")
    else:
        _stale_file_run(tmp_path / "runs", "stale")
    spec = {"grid": {"x": [1.0, 2.0]}, "variants": {"ok": {}, "slow": {"fixed": {"sleep": 60.0}, "grid": {"x": [5.0]}}},
            "sweep": {"dir": str(tmp_path / "sw"), "name": "stale", "timeout": 10.0}}
    result = run_sweep(toy, spec, options=OPTIONS[where](tmp_path), progress=False, resume=True)
    assert result.counts == {"COMPLETED": 2, "TIMEOUT": 1}
    runs = _recorded(where, tmp_path, mongo_db)
    assert runs[9.0]["status"] == "INTERRUPTED"
    assert runs[9.0]["info"]["sacred_ray"]["stop_reason"] == "the sweep's driver stopped while this run was RUNNING"
    assert runs[5.0]["status"] == "TIMEOUT"
    assert runs[5.0]["info"]["sacred_ray"]["stop_reason"] == "timed out after 10s"
    homes = {x: _stop_reason_homes(run) for x, run in runs.items()}
    assert homes == {1.0: set(), 2.0: set(), 5.0: {"info.sacred_ray.stop_reason"},
                     9.0: {"info.sacred_ray.stop_reason"}}


@pytest.mark.parametrize("where", OPTIONS)
def test_a_scheduler_stop_has_the_same_home_as_ray_sweeps_stops(ray_session, curves, tmp_path, mongo_db, where):
    spec = {"space": {"quality": {"uniform": [0.0, 1.0]}}, "fixed": {"steps": 8},
            "tune": {"dir": str(tmp_path / "search"), "name": "asha", "metric": "loss", "mode": "min",
                     "num_samples": 4, "max_concurrent_trials": 2, "search": {"type": "random", "seed": 3},
                     "scheduler": {"type": "asha", "max_t": 8, "grace_period": 1, "reduction_factor": 2}}}
    result = run_tune(curves, spec, options=OPTIONS[where](tmp_path), progress=False)
    assert result.exit_code == 0
    if where == "mongo":
        runs = list(mongo_db.runs.find())
    else:
        runs = [{**run, "info": info} for _, run, info in _file_runs(tmp_path / "runs").values()]
    stopped = [r for r in runs if r["status"] == "INTERRUPTED"]
    assert len(runs) == 4 and stopped, "ASHA stopped no trial"
    for run in runs:
        expected = {"info.sacred_ray.stop_reason"} if run["status"] == "INTERRUPTED" else set()
        assert _stop_reason_homes(run) == expected
    assert all(r["info"]["sacred_ray"]["stop_reason"].startswith("stopped by ASHA at step ") for r in stopped)
