"""tune_with on a private local Ray: schedulers see metrics as they are logged, and the
observers record every Sacred run with a true status."""

import json
import os
import shutil
import sys

import pytest
from conftest import EXPERIMENTS, run_cli, write

import sacred_ray
from sacred_ray.api import run_tune

ASHA = {
    "space": {"quality": {"uniform": [0.0, 1.0]}},
    "tune": {"metric": "loss", "mode": "min", "num_samples": 8, "max_concurrent_trials": 2,
             "search": {"type": "random", "seed": 3},
             "scheduler": {"type": "asha", "max_t": 12, "grace_period": 2, "reduction_factor": 2}},
}


@pytest.mark.slow
def test_asha_stops_bad_trials_early_and_finds_the_known_best(ray_session, curves, tmp_path, mongo_db):
    spec = {**ASHA, "tune": {**ASHA["tune"], "dir": str(tmp_path / "search"), "name": "asha"}}
    result = run_tune(curves, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 0
    runs = list(mongo_db.runs.find())
    assert len(runs) == 8
    assert {r["status"] for r in runs} <= {"COMPLETED", "INTERRUPTED"}
    steps = {}
    for run in runs:
        metric = mongo_db.metrics.find_one({"run_id": run["_id"], "name": "loss"})
        steps[run["_id"]] = len(metric["steps"])
        assert run["meta"]["tune"]["trial_id"] and run["info"]["tune"]["trial_id"] == run["meta"]["tune"]["trial_id"]
        if run["status"] == "COMPLETED":
            assert steps[run["_id"]] == 12
        else:
            reason = run["info"]["sacred_ray"]["stop_reason"]
            assert reason == f"stopped by ASHA at step {steps[run['_id']] - 1}"
            assert steps[run["_id"]] < 12  # every metric up to the stop is kept
    stopped = [r for r in runs if r["status"] == "INTERRUPTED"]
    assert stopped, "ASHA stopped no trial"
    best_quality = max(r["config"]["quality"] for r in runs)
    assert result.best["values"]["quality"] == pytest.approx(best_quality)
    best_run = mongo_db.runs.find_one({"_id": result.best["run_id"]})
    assert best_run["config"]["quality"] == pytest.approx(best_quality) and best_run["status"] == "COMPLETED"
    # best.yaml is a config file Sacred loads directly
    best_file = tmp_path / "search" / "best.yaml"
    run = curves.run(named_configs=[str(best_file)], options={"--unobserved": True})
    assert run.config["quality"] == pytest.approx(best_quality)
    assert run.result == pytest.approx(-((1 - best_quality) + 1 / 12))


CONDITIONAL = {
    "fixed": {"steps": 3, "pause": 0.0},
    "space": {"quality": {"uniform": [0.0, 1.0]}},
    "variants": {
        "recurrent": {"fixed": {"model": "lstm"}, "space": {"env": {"choice": ["pendulum", "acrobot"]},
                                                             "hidden": {"choice": [64, 128]}}},
        "feedforward": {"fixed": {"model": "mlp"}, "space": {"env": {"choice": ["cartpole", "mountaincar"]}}},
    },
    "tune": {"metric": "loss", "mode": "min", "num_samples": 3},
}


@pytest.mark.slow
@pytest.mark.parametrize("search", ["random", "optuna", "hyperopt"])
def test_conditional_parameters_never_leak_across_variants(ray_session, curves, tmp_path, mongo_db, search):
    spec = {**CONDITIONAL, "tune": {**CONDITIONAL["tune"], "search": {"type": search, "seed": 1},
                                    "dir": str(tmp_path / "search"), "name": f"cond-{search}"}}
    result = run_tune(curves, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 0
    runs = list(mongo_db.runs.find())
    assert len(runs) == (6 if search == "random" else 3)
    variants = set()
    for run in runs:
        updates = run["meta"]["config_updates"]
        variant = run["meta"]["sweep"]["variant"]
        variants.add(variant)
        if updates["model"] == "lstm":
            assert variant == "recurrent"
            assert updates["env"] in ("pendulum", "acrobot") and updates["hidden"] in (64, 128)
        else:
            assert variant == "feedforward"
            assert updates["env"] in ("cartpole", "mountaincar") and "hidden" not in updates
        assert run["status"] == "COMPLETED"
    if search == "random":
        assert variants == {"recurrent", "feedforward"}


@pytest.mark.slow
def test_a_failing_trial_is_failed_with_its_traceback(ray_session, curves, tmp_path, mongo_db):
    spec = {"fixed": {"steps": 2, "pause": 0.0, "fail_below": 0.5},
            "space": {"quality": {"grid": [0.2, 0.9]}},
            "tune": {"metric": "loss", "mode": "min", "search": "grid", "dir": str(tmp_path / "s"), "name": "fails"}}
    result = run_tune(curves, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 1
    failed = mongo_db.runs.find_one({"status": "FAILED"})
    assert failed["config"]["quality"] == 0.2
    assert "RuntimeError: quality 0.2 is below 0.5" in "".join(failed["fail_trace"])
    assert mongo_db.runs.find_one({"status": "COMPLETED"})["config"]["quality"] == 0.9
    assert mongo_db.runs.count_documents({"status": "RUNNING"}) == 0


@pytest.mark.slow
def test_result_as_metric_reports_the_return_value(ray_session, curves, tmp_path):
    spec = {"fixed": {"steps": 2, "pause": 0.0}, "space": {"quality": {"grid": [0.1, 0.7, 0.4]}},
            "tune": {"metric": "result", "mode": "max", "search": "grid", "dir": str(tmp_path / "s")}}
    result = run_tune(curves, spec, options={"--file_storage": str(tmp_path / "runs")}, progress=False)
    assert result.exit_code == 0
    assert result.best["values"]["quality"] == 0.7
    assert result.best["metric"] == pytest.approx(-((1 - 0.7) + 0.5))


def test_missing_searcher_package_is_a_one_line_error(curves, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(sacred_ray.SpecError, match=r'optuna is not installed; pip install "sacred-ray\[optuna\]"'):
        run_tune(curves, {"space": {"quality": {"uniform": [0, 1]}}, "tune": {"search": "optuna"}}, progress=False)


@pytest.mark.slow
def test_tune_with_from_the_command_line_records_statuses_in_file_storage(tmp_path):
    exp = tmp_path / "curves.py"
    exp.write_text(open(os.path.join(EXPERIMENTS, "curves.py")).read())
    write(tmp_path / "space.yaml", json.dumps({**ASHA, "tune": {**ASHA["tune"], "name": "cli-asha", "num_samples": 6}}))
    proc = run_cli(["curves.py", "tune_with", "space.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    statuses = []
    for name in os.listdir(tmp_path / "runs"):
        if name.isdigit():
            run = json.loads((tmp_path / "runs" / name / "run.json").read_text())
            statuses.append(run["status"])
            metrics = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
            if run["status"] == "INTERRUPTED":
                info = json.loads((tmp_path / "runs" / name / "info.json").read_text())
                assert info["sacred_ray"]["stop_reason"].startswith("stopped by ASHA at step")
                assert len(metrics["loss"]["steps"]) < 12
    assert len(statuses) == 6 and set(statuses) <= {"COMPLETED", "INTERRUPTED"}
    assert "COMPLETED" in statuses
    assert "best: trial" in proc.stdout
    best = (tmp_path / "sweeps" / "cli-asha" / "best.yaml").read_text()
    assert "quality:" in best
    assert os.path.isdir(tmp_path / "sweeps" / "cli-asha" / "tune")  # Tune's folder, not ~/ray_results
    proc = run_cli(["curves.py", "print_config", "with", "sweeps/cli-asha/best.yaml"], cwd=tmp_path)
    assert proc.returncode == 0 and "quality = " in proc.stdout



@pytest.mark.slow
def test_max_concurrent_trials_holds_with_the_default_searcher(tmp_path):
    """Tune exempts a search_alg it did not make from max_concurrent_trials: with search: random
    (sacred-ray's own generator) three quarter-CPU trials ran at once although the file said 1."""
    shutil.copy(os.path.join(EXPERIMENTS, "shifting.py"), tmp_path / "shifting.py")
    write(tmp_path / "space.yaml", "space:\n  lr: {uniform: [0.01, 0.2]}\nfixed: {steps: 5, pause: 0.2}\n"
                                   "tune: {metric: score, num_samples: 3, max_concurrent_trials: 1}\n")
    proc = run_cli(["shifting.py", "tune_with", "space.yaml", "-F", "runs"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spans = sorted((run["start_time"], run["stop_time"]) for run in
                   (json.load(open(tmp_path / "runs" / d / "run.json")) for d in os.listdir(tmp_path / "runs")
                    if d.isdigit()))
    assert len(spans) == 3
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), spans  # one at a time


@pytest.mark.slow
def test_hyperband_leaves_no_orphaned_runs(ray_session, curves, tmp_path, mongo_db):
    spec = {"fixed": {"pause": 0.01}, "space": {"quality": {"uniform": [0.0, 1.0]}},
            # no max_concurrent_trials: it counts the trials HyperBand holds paused (as Tune's limiter
            # does), so a limit of 2 leaves no third trial to fill a bracket and nothing is paused
            "tune": {"metric": "loss", "mode": "min", "num_samples": 6,
                     "scheduler": {"type": "hyperband", "max_t": 12, "reduction_factor": 3},
                     "dir": str(tmp_path / "s"), "name": "hb"}}
    result = run_tune(curves, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 0
    runs = list(mongo_db.runs.find())
    assert len(runs) >= 6  # paused trials restart as new runs
    assert {r["status"] for r in runs} <= {"COMPLETED", "INTERRUPTED"}
    trial_ids = {r["meta"]["tune"]["trial_id"] for r in runs}
    assert len(trial_ids) == 6 and all(trial_ids)
    assert "COMPLETED" in {r["status"] for r in runs}


@pytest.mark.slow
def test_resume_continues_a_finished_search_without_new_runs(ray_session, curves, tmp_path):
    spec = {"fixed": {"steps": 2, "pause": 0.0}, "space": {"quality": {"grid": [0.3, 0.6]}},
            "tune": {"metric": "loss", "mode": "min", "search": "grid", "dir": str(tmp_path / "s"), "name": "again"}}
    first = run_tune(curves, spec, options={"--file_storage": str(tmp_path / "runs")}, progress=False)
    assert first.exit_code == 0 and len(first.runs) == 2
    again = run_tune(curves, spec, options={"--file_storage": str(tmp_path / "runs")}, resume=True, progress=False)
    assert again.exit_code == 0
    assert again.runs == []  # Tuner.restore found every trial done
    assert len([n for n in os.listdir(tmp_path / "runs") if n.isdigit()]) == 2
    assert again.best["values"]["quality"] == 0.6


@pytest.mark.slow
def test_the_control_example_runs_its_conditional_optuna_search(ray_session, tmp_path):
    import importlib.util

    from conftest import EXAMPLES

    spec = importlib.util.spec_from_file_location("control_example", os.path.join(EXAMPLES, "control.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["control_example"] = module
    spec.loader.exec_module(module)
    import yaml

    space = yaml.safe_load(open(os.path.join(EXAMPLES, "control_space.yaml")))
    space["tune"].update(num_samples=6, dir=str(tmp_path / "s"))
    space["fixed"]["step_seconds"] = 0.0
    result = run_tune(module.ex, space, options={"--file_storage": str(tmp_path / "runs")}, progress=False)
    assert result.exit_code == 0, result.report
    assert len(result.trials) == 6 and result.best is not None
    for run in result.runs:
        assert run["status"] in ("COMPLETED", "INTERRUPTED")
        config = run["config"]
        if config["env"].endswith("PO"):
            assert config["model"] == "lstm"  # the conditional constraint held in every trial


@pytest.mark.slow
def test_named_configs_keep_the_files_label_in_the_results(ray_session, toy, tmp_path):
    """The end table, the best line and summary.csv said `+named` where the file says `+size`."""
    import csv

    spec = {"space": {"+size": {"grid": ["big", "small"]}}, "fixed": {"steps": 2},
            "tune": {"metric": "loss", "mode": "min", "search": "grid", "dir": str(tmp_path / "s"), "name": "lab"}}
    result = run_tune(toy, spec, options={"--file_storage": str(tmp_path / "runs")}, progress=False)
    assert result.exit_code == 0, result.report
    assert sorted(r["values"]["+size"] for r in result.trials) == ["big", "small"]
    assert "+named" not in result.report and "+size" in result.report
    with open(tmp_path / "s" / "summary.csv") as f:
        assert "+size" in next(csv.reader(f))


@pytest.mark.slow
def test_the_start_line_says_how_the_number_of_trials_comes_about(tmp_path):
    exp = tmp_path / "curves.py"
    exp.write_text(open(os.path.join(EXPERIMENTS, "curves.py")).read())
    write(tmp_path / "space.yaml", json.dumps({
        "fixed": {"steps": 2, "pause": 0.0}, "space": {"quality": {"uniform": [0.0, 1.0]}},
        "variants": {"a": {"fixed": {"model": "lstm"}}, "b": {"fixed": {"model": "mlp"}}},
        "tune": {"metric": "loss", "mode": "min", "num_samples": 1, "name": "count"}}))
    proc = run_cli(["curves.py", "tune_with", "space.yaml"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "count: 1 sample x 2 variants = 2 trials" in proc.stderr
