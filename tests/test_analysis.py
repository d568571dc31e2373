"""A finished sweep as a DataFrame, read back from its observers' records: the same frame
whether file storage or MongoDB recorded it."""

import pandas as pd
import pytest

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
