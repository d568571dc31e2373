"""PBT through tune_with: mutations in the space file's vocabulary, each exploit a new Sacred run
that starts from the donor's checkpoint and names its parent, lineage.csv, and PBT beating random
search on a problem whose best learning rate changes halfway."""

import csv
import json
import math
import os
import shutil
import statistics

import pytest
from conftest import EXPERIMENTS, import_experiment, run_cli, write

SPACE = {"space": {"lr": {"loguniform": [0.0001, 1.0]}},
         "fixed": {"steps": 12, "shift_at": 6, "pause": 0.01}}
PBT = {"type": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.5, "resample_probability": 0.5}


def search(ex, tmp_path, seed, scheduler, name, options):
    from sacred_ray.api import run_tune

    spec = {**SPACE, "tune": {"metric": "score", "mode": "max", "num_samples": 4, "search": {"type": "random", "seed": seed},
                              "scheduler": scheduler, "name": name, "dir": str(tmp_path / name)}}
    if scheduler == "fifo":  # the same four draws, two at a time: two trial actors (Tune reuses them), not four
        spec["tune"]["max_concurrent_trials"] = 2
    result = run_tune(ex, spec, options=options, progress=False)
    assert result.exit_code == 0, result.report
    return result


def gain(lr, step, shift_at=6):  # the experiment's own, as tests/experiments/shifting.py defines it
    return math.exp(-((math.log10(lr) - (-1.0 if step < shift_at else -3.0)) ** 2))


@pytest.mark.long(3)
@pytest.mark.slow
def test_pbt_beats_random_search_and_each_exploit_is_a_new_run_from_the_donors_state(ray_session, tmp_path, mongo_db,
                                                                                       monkeypatch):
    ex = import_experiment("shifting")
    monkeypatch.chdir(tmp_path)
    mongo = {"--mongo_db": "localhost:27017:sweeps"}
    best = {"pbt": [], "random": []}
    adopted = 0  # exploits whose first value was checked against the donor's
    for seed in (1, 2, 3):
        pbt = search(ex, tmp_path, seed, PBT, f"pbt{seed}", mongo)
        best["pbt"].append(pbt.best["metric"])
        best["random"].append(search(ex, tmp_path, seed, "fifo", f"random{seed}", {}).best["metric"])
        assert "PBT:" in pbt.report and "lineage.csv" in pbt.report

        # lineage.csv: every final trial's family tree, run by run, back to a run with no parent
        with open(tmp_path / f"pbt{seed}" / "lineage.csv", newline="") as f:
            rows = {r["run_id"]: r for r in csv.DictReader(f)}
        runs = {str(r["_id"]): r for r in mongo_db.runs.find({"meta.sweep.name": f"pbt{seed}"})}
        assert set(rows) == set(runs)  # one row per Sacred run the observers hold
        finals = [r for r in rows.values() if r["final"] == "True"]
        assert len(finals) == 4 and {r["trial_id"] for r in finals} == {r["trial_id"] for r in rows.values()}
        for row in finals:
            chain, at = [], row["run_id"]
            while at:
                chain.append(at)
                at = rows[at]["parent_run_id"]  # every parent is a run of the search
            assert row["ancestry"] == " > ".join(reversed(chain))

        # each exploit: a new run, parent and changed keys in its meta, its state the donor's
        exploits = [r for r in runs.values() if r["meta"]["tune"].get("parent_run")]
        assert exploits, "PBT exploited nothing"
        for run in exploits:
            parent = run["meta"]["tune"]["parent_run"]
            row = rows[str(run["_id"])]
            assert (row["parent_run_id"], row["parent_trial_id"], row["parent_step"]) == (
                str(parent["run_id"]), parent["trial_id"], str(parent["step"]))
            assert set(run["meta"]["tune"]["changed"]) <= {"lr"}
            if run["meta"]["tune"]["changed"]:
                assert run["meta"]["tune"]["changed"]["lr"]["to"] == run["config"]["lr"]
            # PBT compares (and checkpoints) a trial every 2 results, at steps 1, 3, 5...: the state it
            # hands over is the one of the step it compared (the donor's run went on to its save()
            # of that step before Tune's checkpoint was taken), not the step before
            assert parent["step"] % 2 == 1, parent
            mine = mongo_db.metrics.find_one({"run_id": run["_id"], "name": "score"})
            donor = mongo_db.metrics.find_one({"run_id": parent["run_id"], "name": "score"})
            if not mine or not donor or parent["step"] not in donor["steps"]:
                continue
            first = mine["steps"][0]
            assert first == parent["step"] + 1  # it goes on from the donor's checkpoint, not from 0
            start = donor["values"][donor["steps"].index(parent["step"])]
            assert mine["values"][0] == pytest.approx(start + gain(run["config"]["lr"], first))
            adopted += 1
        # a pause that is not an exploit continues the trial's run: runs = trials + exploits
        assert len(runs) == 4 + len(exploits)
    assert adopted, "no exploit could be checked against its donor's recorded value"
    assert statistics.median(best["pbt"]) > statistics.median(best["random"]), best


@pytest.mark.long
@pytest.mark.slow
def test_pb2_from_the_command_line_keeps_new_values_in_bounds_and_writes_its_lineage(tmp_path):
    """PB2 (PBT whose explore step fits a Gaussian process) through the same machinery, with -F."""
    shutil.copy(os.path.join(EXPERIMENTS, "shifting.py"), tmp_path / "shifting.py")
    write(tmp_path / "space.yaml", "space:\n  lr: {uniform: [0.0005, 0.2]}\nfixed: {steps: 8, shift_at: 4, pause: 0.02}\n"
                                   "tune:\n  metric: score\n  num_samples: 4\n"
                                   "  scheduler: {type: pb2, perturbation_interval: 2, mutations: [lr]}\n")
    proc = run_cli(["shifting.py", "tune_with", "space.yaml", "-F", "runs"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PB2:" in proc.stdout and "family trees in" in proc.stdout
    with open(tmp_path / "sweeps" / "space" / "lineage.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    folders = [d for d in os.listdir(tmp_path / "runs") if d.isdigit()]
    assert sorted(r["run_id"] for r in rows) == sorted(folders)
    exploited = 0
    for row in rows:
        run = json.load(open(tmp_path / "runs" / row["run_id"] / "run.json"))
        assert run["status"] == row["status"]
        parent = run["meta"]["tune"].get("parent_run") or {}
        assert str(parent.get("run_id", "")) == row["parent_run_id"]
        exploited += bool(parent)
        config = json.load(open(tmp_path / "runs" / row["run_id"] / "config.json"))
        assert config["lr"] == pytest.approx(min(max(config["lr"], 0.0005), 0.2), rel=1e-6)  # PB2 picks inside the bounds
    assert exploited, "PB2 exploited nothing"


@pytest.mark.slow
def test_pbt_mutations_stay_inside_each_keys_bounds_and_step(tmp_path):
    """Tune's explore scales a value by 0.8 or 1.2 (6 -> 7 for ``qrandint: [2, 6, 2]``, 0.05 -> 0.04
    below a ``uniform``'s lower bound); every run's config stays in the space the file gives.
    ``resample_probability: 0`` (always perturb) and ``burn_in_period: 0``, as README shows them."""
    shutil.copy(os.path.join(EXPERIMENTS, "shifting.py"), tmp_path / "shifting.py")
    write(tmp_path / "space.yaml", "space:\n  lr: {uniform: [0.05, 0.2]}\n  shift_at: {qrandint: [2, 6, 2]}\n"
                                   "fixed: {steps: 10, pause: 0.02}\n"
                                   "tune:\n  metric: score\n  num_samples: 4\n  search: {type: random, seed: 3}\n"
                                   "  scheduler: {type: pbt, perturbation_interval: 2, quantile_fraction: 0.5,\n"
                                   "              resample_probability: 0, burn_in_period: 0}\n")
    proc = run_cli(["shifting.py", "tune_with", "space.yaml", "-F", "runs"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    configs, exploited = [], 0
    for run_id in (d for d in os.listdir(tmp_path / "runs") if d.isdigit()):
        configs.append(json.load(open(tmp_path / "runs" / run_id / "config.json")))
        exploited += bool(json.load(open(tmp_path / "runs" / run_id / "run.json"))["meta"]["tune"].get("parent_run"))
    assert exploited >= 2, "PBT exploited too little to test its mutations"
    assert {c["shift_at"] for c in configs} <= {2, 4, 6}, configs
    assert all(0.05 <= c["lr"] <= 0.2 for c in configs), configs


def test_pb2_without_its_packages_says_how_to_get_them(tmp_path, monkeypatch):
    import sys

    from sacred_ray.engine.searchers import check_search_tools
    from sacred_ray.spec import SpecError, load_space

    space = load_space({"space": {"lr": {"uniform": [0.001, 0.1]}},
                        "tune": {"scheduler": {"type": "pb2", "perturbation_interval": 2}}}, source="space.yaml")
    monkeypatch.setitem(sys.modules, "GPy", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(SpecError) as e:
        check_search_tools(space)
    assert str(e.value) == 'space.yaml: tune: scheduler: pb2 needs GPy and scikit-learn; pip install "sacred-ray[pb2]"'


@pytest.mark.slow
@pytest.mark.parametrize("scheduler,where,message", [
    ("{type: pbt, perturbation_interval: 2, mutations: []}", "tune: scheduler: mutations", "nothing to mutate"),
    ("{type: pbt, perturbation_interval: 2, mutations: [depth]}", "tune: scheduler: mutations: depth", "grid key"),
    ("{type: pbt, perturbation_interval: 2, mutations: [nope]}", "tune: scheduler: mutations: nope", "not a key"),
    ("{type: pbt}", "tune: scheduler", "perturbation_interval"),
    ("{type: pbt, perturbation_interval: 2, quantile_fraction: 0.9}", "quantile_fraction", "at most 0.5"),
    ("{type: pb2, perturbation_interval: 2, mutations: [kind]}", "tune: scheduler: mutations: kind", "use type: pbt"),
])
def test_bad_pbt_settings_are_one_line_before_anything_starts(tmp_path, scheduler, where, message):
    shutil.copy(os.path.join(EXPERIMENTS, "shifting.py"), tmp_path / "shifting.py")
    write(tmp_path / "space.yaml", f"space:\n  lr: {{loguniform: [0.0001, 1.0]}}\n  depth: {{grid: [1, 2]}}\n"
                                   f"  kind: {{choice: [a, b]}}\n"
                                   f"tune:\n  metric: score\n  scheduler: {scheduler}\n")
    proc = run_cli(["shifting.py", "tune_with", "space.yaml"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "space.yaml" in lines[0] and where in lines[0] and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not os.path.exists(tmp_path / "sweeps")


@pytest.mark.slow
def test_a_pbt_space_with_only_grid_keys_has_nothing_to_mutate(tmp_path):
    shutil.copy(os.path.join(EXPERIMENTS, "shifting.py"), tmp_path / "shifting.py")
    write(tmp_path / "space.yaml", "space:\n  lr: {grid: [0.1, 0.01]}\ntune:\n  metric: score\n"
                                   "  scheduler: {type: pbt, perturbation_interval: 2}\n")
    proc = run_cli(["shifting.py", "tune_with", "space.yaml"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "nothing to mutate" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
