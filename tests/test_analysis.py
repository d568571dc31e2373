"""A finished sweep as a DataFrame, read back from its observers' records: the same frame
whether file storage or MongoDB recorded it."""

import json
import os
import shutil

import pandas as pd
import pytest
import yaml

import sacred_ray
from sacred_ray import SpecError
from sacred_ray.api import run_sweep, run_tune

GRID = {"grid": {"x": [1.0, 3.0], "+size": ["big", "small"]}, "seeds": [5, 6], "fixed": {"steps": 4}}


@pytest.mark.slow
def test_a_sweep_loads_the_same_from_file_storage_and_from_mongodb(ray_session, toy, tmp_path, mongo_db):
    spec = {**GRID, "sweep": {"name": "frame", "dir": str(tmp_path / "frame")}}
    options = {"--file_storage": str(tmp_path / "runs"), "--mongo_db": "localhost:27017:sweeps"}
    result = run_sweep(toy, spec, options=options, progress=False)
    assert result.exit_code == 0

    from_files = sacred_ray.load_sweep(str(tmp_path / "frame"))
    from_mongo = sacred_ray.load_sweep("localhost:27017:sweeps", "frame")
    assert len(from_files) == 8
    assert list(from_files.columns) == ["trial", "variant", "seed", "x", "named_configs", "status", "result",
                                        "duration_s", "node", "run_id", "attempts", "error", "loss"]
    pd.testing.assert_frame_equal(from_files.drop(columns="duration_s"), from_mongo.drop(columns="duration_s"))
    assert (from_files["duration_s"] - from_mongo["duration_s"]).abs().max() < 0.01
    # the values are what the observers recorded for each trial
    for row in from_files.itertuples():
        run = mongo_db.runs.find_one({"_id": row.run_id})
        assert run["config"]["x"] == row.x and run["config"]["seed"] == row.seed
        assert run["meta"]["named_configs"] == [row.named_configs]
        assert row.result == run["result"] == -((row.x - 2) ** 2) + (10 if row.named_configs == "big" else -10)
        assert row.loss == pytest.approx((row.x - 2) ** 2 + 1.0 / 4)
        assert row.status == "COMPLETED" and row.attempts == 1
    by_trial = {r.trial.index: r for r in result.results}
    assert {row.trial: row.run_id for row in from_files.itertuples()} == {i: r.run_id for i, r in by_trial.items()}

    curves = sacred_ray.load_metrics(str(tmp_path / "frame"), "loss")
    assert len(curves) == 8 * 4 and list(curves.columns) == ["trial", "run_id", "step", "value"]
    pd.testing.assert_frame_equal(curves, sacred_ray.load_metrics("localhost:27017:sweeps", "loss", "frame"))
    first = curves[curves.trial == 0].sort_values("step")
    assert list(first.step) == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_search_loads_with_its_tune_trials(ray_session, curves, tmp_path):
    spec = {"space": {"quality": {"grid": [0.2, 0.8]}}, "fixed": {"steps": 3, "pause": 0.0},
            "tune": {"metric": "loss", "mode": "min", "search": "grid", "dir": str(tmp_path / "s"), "name": "s"}}
    result = run_tune(curves, spec, options={"--file_storage": str(tmp_path / "runs")}, progress=False)
    assert result.exit_code == 0
    frame = sacred_ray.load_sweep(str(tmp_path / "s"))
    assert sorted(frame["quality"]) == [0.2, 0.8]
    assert set(frame["trial"]) == {t["trial_id"] for t in result.trials}
    assert list(frame["status"]) == ["COMPLETED", "COMPLETED"]
    assert frame.set_index("quality")["loss"].to_dict() == pytest.approx({0.2: 0.8 + 1 / 3, 0.8: 0.2 + 1 / 3})


def test_what_cannot_be_loaded_is_one_line(tmp_path, mongo_db):
    (tmp_path / "plain").mkdir()
    with pytest.raises(SpecError, match="is not a sweep folder"):
        sacred_ray.load_sweep(str(tmp_path / "plain"))
    with pytest.raises(SpecError, match="^localhost:27017:sweeps: nope: no runs of a sweep of this name"):
        sacred_ray.load_sweep("localhost:27017:sweeps", "nope")
    with pytest.raises(SpecError, match="give the sweep's name too"):
        sacred_ray.load_sweep("localhost:27017:sweeps")


@pytest.mark.slow
def test_an_unreachable_database_is_one_line_within_seconds():
    import time

    began = time.monotonic()
    with pytest.raises(SpecError, match=r"^localhost:1:sweeps: cannot reach MongoDB \(ServerSelectionTimeoutError\)"):
        sacred_ray.load_sweep("localhost:1:sweeps", "frame")
    assert time.monotonic() - began < 15


BAD_SOURCES = [
    ("no/such/folder", "no/such/folder: no such sweep folder; give sweeps/<name>, or a MongoDB address"),
    ("mongodb://[bad", "mongodb://[bad: cannot parse 'mongodb://[bad'"),
    ("mongodb://localhost/bad$name", "mongodb://localhost/bad$name: cannot parse 'mongodb://localhost/bad$name': "
                                     "Bad database name"),
    ("localhost:27017:bad/name", "localhost:27017:bad/name: is not a MongoDB address; use mongodb://HOST:PORT/DB"),
    ("localhost:port:sweeps", "localhost:port:sweeps: is not a MongoDB address"),
    ("mongodb://user:p@localhost/db?nosuchoption=1", "mongodb://user:***@localhost/db?nosuchoption=1: cannot parse"),
]


@pytest.mark.parametrize("source,message", BAD_SOURCES, ids=[s for s, _ in BAD_SOURCES])
def test_every_bad_source_is_one_line_from_python_and_from_sweep_report(toy, tmp_path, monkeypatch, capsys,
                                                                        source, message):
    """A missing folder, a URL pymongo cannot parse, a database name MongoDB refuses, a port
    that is not a number: a SpecError from load_sweep, one line and exit 2 from sweep_report
    (these were a pymongo InvalidName, a ValueError, or -m's words about the command line)."""
    import time

    from sacred_ray.cli import main

    monkeypatch.chdir(tmp_path)
    began = time.monotonic()
    with pytest.raises(SpecError) as e:
        sacred_ray.load_sweep(source, "frame")
    assert str(e.value).startswith(message) and len(str(e.value).splitlines()) == 1, str(e.value)
    assert "user:p@" not in str(e.value)  # the password is never shown
    assert main(toy, ["toy.py", "sweep_report", source, "frame"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert time.monotonic() - began < 5 and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_two_sweeps_of_one_name_in_one_observer_are_read_apart(tmp_path):
    """A rerun months later under the same name, recorded by the same -F folder and MongoDB:
    each run carries its sweep's id (meta.sweep.id), so each sweep folder reads only its own
    runs, and MongoDB by name reads the newest sweep, saying so, or the one --sweep-id names."""
    from conftest import EXPERIMENTS, cli_env, run_cli, write

    shutil.copy(os.path.join(EXPERIMENTS, "toy.py"), tmp_path / "toy.py")
    env = cli_env(MONGO_STATE=str(tmp_path / "mongo.json"))
    for xs in ("[1.0, 2.0]", "[3.0, 4.0, 5.0]"):
        write(tmp_path / "grid.yaml", f"grid:\n  x: {xs}\nsweep: {{name: same}}\n")
        proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs", "-m", "localhost:27017:sweeps"],
                       cwd=tmp_path, env=env, mongo_dump=tmp_path / "dump.json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    (older,) = [d for d in os.listdir(tmp_path / "sweeps") if d != "same"]
    ids = {}
    for folder, xs in (("same", [3.0, 4.0, 5.0]), (older, [1.0, 2.0])):
        frame = sacred_ray.load_sweep(str(tmp_path / "sweeps" / folder))
        assert sorted(frame["x"]) == xs
        ids[folder] = yaml.safe_load(open(tmp_path / "sweeps" / folder / "spec.yaml"))["id"]
        for run_id in frame["run_id"]:
            assert json.load(open(tmp_path / "runs" / str(run_id) / "run.json"))["meta"]["sweep"]["id"] == ids[folder]
    assert ids["same"] != ids[older]
    write(tmp_path / "read.py", "import sys\nimport sacred_ray\n"
                                "print(sorted(sacred_ray.load_sweep('localhost:27017:sweeps', 'same', *sys.argv[1:])['x']))\n")
    newest = run_cli(["read.py"], cwd=tmp_path, env=env, mongo_dump=tmp_path / "dump.json")
    assert newest.stdout.strip() == "[3.0, 4.0, 5.0]", newest.stdout + newest.stderr
    assert f"2 sweeps named 'same'; read the newest (id {ids['same']})" in newest.stderr
    assert ids[older] in newest.stderr
    picked = run_cli(["read.py", ids[older]], cwd=tmp_path, env=env, mongo_dump=tmp_path / "dump.json")
    assert picked.stdout.strip() == "[1.0, 2.0]" and "sweeps named" not in picked.stderr, picked.stderr
    report = run_cli(["toy.py", "sweep_report", "localhost:27017:sweeps", "same", "--sweep-id", ids[older]],
                     cwd=tmp_path, env=env, mongo_dump=tmp_path / "dump.json")
    assert report.returncode == 0 and report.stdout.strip() == "report: same-report.html", report.stderr
    status = run_cli(["toy.py", "sweep_status", "localhost:27017:sweeps", "same"], cwd=tmp_path, env=env,
                     mongo_dump=tmp_path / "dump.json")
    assert status.returncode == 0 and "3 COMPLETED" in status.stdout, status.stdout + status.stderr
    assert f"note: the newest of 2 sweeps of this name in the database (id {ids['same']})" in status.stdout
