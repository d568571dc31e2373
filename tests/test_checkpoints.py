"""Trials that survive their worker: sacred_ray.save / restore, a restart from the last
checkpoint, and ONE Sacred run that continues across it (file storage and MongoDB)."""

import json
import os
import pickle
import shutil

import pytest
from conftest import EXPERIMENTS, import_experiment, run_cli, write

pytestmark = pytest.mark.slow  # every test here starts Ray or a command line

GRID = "grid:\n  steps: [10]\nfixed: {every: 2, die_at: 6, marks: MARKS}\n"


def copy_experiment(tmp_path):
    shutil.copy(os.path.join(EXPERIMENTS, "resumable.py"), tmp_path / "resumable.py")
    (tmp_path / "marks").mkdir()
    write(tmp_path / "grid.yaml", GRID.replace("MARKS", str(tmp_path / "marks")))


def sums(n):
    return [sum(range(k + 1)) for k in range(n)]


def test_a_killed_worker_resumes_from_its_checkpoint_in_the_same_file_storage_run(tmp_path):
    copy_experiment(tmp_path)
    proc = run_cli(["resumable.py", "ray_sweep", "with", "grid.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [d for d in os.listdir(tmp_path / "runs") if d.isdigit()]
    assert len(runs) == 1  # one run for the trial, not one per attempt
    folder = tmp_path / "runs" / runs[0]
    run = json.load(open(folder / "run.json"))
    assert run["status"] == "COMPLETED" and run["result"] == 45
    metrics = json.load(open(folder / "metrics.json"))["total"]
    assert metrics["steps"] == list(range(10))  # each step once, no gap
    assert metrics["values"] == sums(10)
    info = json.load(open(folder / "info.json"))
    restarts = info["sacred_ray"]["restarts"]
    assert len(restarts) == 1 and "worker died" in restarts[0]["reason"] and restarts[0]["from_step"] == 5
    assert {"time", "node"} <= set(restarts[0])
    assert "resumed from 6" in (folder / "cout.txt").read_text()
    # the work lost is at most one checkpoint interval (2 steps)
    executed = os.listdir(tmp_path / "marks")
    assert 10 <= len(executed) <= 12
    assert len({m.split("-")[1] for m in executed}) == 2  # two worker processes ran it
    ledger = [json.loads(line) for line in (tmp_path / "sweeps" / "grid" / "ledger.jsonl").read_text().splitlines()]
    assert [(e["status"], str(e["run_id"])) for e in ledger] == [("COMPLETED", runs[0])]
    assert ledger[0]["steps"] == {"total": 10}
    checkpoints = tmp_path / "sweeps" / "grid" / "checkpoints" / ledger[0]["key"]
    assert len([c for c in os.listdir(checkpoints) if c.isdigit()]) == 2  # the last two are kept


def test_a_run_whose_file_storage_cannot_be_reopened_goes_on_in_a_new_run_naming_it(tmp_path):
    """The worker wrote the trial's -F run itself; when it dies having lost that folder, the driver
    cannot reopen the run: the trial goes on from its checkpoint in a new run that names the old one."""
    copy_experiment(tmp_path)
    write(tmp_path / "grid.yaml", GRID.replace("MARKS", str(tmp_path / "marks")).replace(
        "die_at: 6,", f"die_at: 6, lose_folder: {tmp_path / 'runs'},"))
    proc = run_cli(["resumable.py", "ray_sweep", "with", "grid.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (new,) = [d for d in os.listdir(tmp_path / "runs") if d.isdigit()]  # the first run's folder was lost
    run = json.load(open(tmp_path / "runs" / new / "run.json"))
    assert run["status"] == "COMPLETED" and run["result"] == 45
    # the lost run was "1"; with its folder gone, Sacred's file storage gives the new run that free id again
    assert run["meta"]["sweep"]["resumed_from"] == {"run_id": "1", "step": 5}
    assert json.load(open(tmp_path / "runs" / new / "metrics.json"))["total"]["steps"] == list(range(6, 10))
    ledger = [json.loads(line) for line in (tmp_path / "sweeps" / "grid" / "ledger.jsonl").read_text().splitlines()]
    assert [(e["status"], str(e["run_id"])) for e in ledger] == [("COMPLETED", new)]


def test_a_killed_worker_resumes_in_the_same_mongodb_run(ray_session, tmp_path, mongo_db, monkeypatch):
    from sacred_ray.api import run_sweep

    ex = import_experiment("resumable")
    (tmp_path / "marks").mkdir()
    monkeypatch.chdir(tmp_path)
    spec = {"grid": {"steps": [8]}, "fixed": {"every": 2, "die_at": 4, "marks": str(tmp_path / "marks")},
            "sweep": {"name": "m", "dir": str(tmp_path / "m")}}
    result = run_sweep(ex, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 0, result.report
    runs = list(mongo_db.runs.find())
    assert len(runs) == 1 and runs[0]["status"] == "COMPLETED" and runs[0]["result"] == sum(range(8))
    series = mongo_db.metrics.find_one({"run_id": runs[0]["_id"], "name": "total"})
    assert series["steps"] == list(range(8)) and series["values"] == sums(8)
    restarts = runs[0]["info"]["sacred_ray"]["restarts"]
    assert len(restarts) == 1 and restarts[0]["from_step"] == 3
    assert result.results[0].run_id == runs[0]["_id"] and result.results[0].status == "COMPLETED"


def test_without_restarts_a_killed_worker_fails_the_trial_as_before(tmp_path):
    copy_experiment(tmp_path)
    write(tmp_path / "grid.yaml", GRID.replace("MARKS", str(tmp_path / "marks")) + "sweep: {max_restarts: 0}\n")
    proc = run_cli(["resumable.py", "ray_sweep", "with", "grid.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 1
    runs = [json.load(open(tmp_path / "runs" / d / "run.json")) for d in os.listdir(tmp_path / "runs") if d.isdigit()]
    assert [r["status"] for r in runs] == ["FAILED"] and "worker died" in "".join(runs[0]["fail_trace"])


def test_alone_restore_is_none_and_save_writes_the_state_once(tmp_path):
    copy_experiment(tmp_path)
    proc = run_cli(["resumable.py", "with", "steps=6", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "started fresh" in proc.stdout + proc.stderr
    with open(tmp_path / "checkpoints" / "state.pkl", "rb") as f:
        assert pickle.load(f) == {"step": 5, "total": 15, "lock": None}
    assert os.listdir(tmp_path / "checkpoints") == ["state.pkl"]
    run = json.load(open(tmp_path / "runs" / "1" / "run.json"))
    info = json.load(open(tmp_path / "runs" / "1" / "info.json")) if (tmp_path / "runs" / "1" / "info.json").exists() \
        else {}
    assert run["status"] == "COMPLETED" and run["artifacts"] == [] and "sacred_ray" not in info


@pytest.mark.parametrize("value,message", [(-1, "max_restarts"), ("often", "max_restarts")])
def test_a_bad_max_restarts_is_one_line(tmp_path, value, message):
    copy_experiment(tmp_path)
    write(tmp_path / "bad.yaml", f"grid:\n  steps: [3]\nsweep: {{max_restarts: {value}}}\n")
    proc = run_cli(["resumable.py", "ray_sweep", "with", "bad.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sweeps").exists()


def test_a_retry_after_an_exception_starts_from_the_checkpoint_unless_retry_from_start(tmp_path):
    """The experiment raises at step 6 whenever it did not restore: a retry from the checkpoint
    (saved at step 5) completes; a retry from the start meets the same error again."""
    copy_experiment(tmp_path)
    for retry_from, first_step, code, second_status in (("checkpoint", 6, 0, "COMPLETED"), ("start", 0, 1, "FAILED")):
        write(tmp_path / "grid.yaml", "grid:\n  steps: [10]\nfixed: {every: 2, raise_at: 6}\n"
                                      f"sweep: {{retries: 1, retry_from: {retry_from}, name: r-{retry_from}}}\n")
        proc = run_cli(["resumable.py", "ray_sweep", "with", "grid.yaml", "-F", f"runs-{retry_from}"], cwd=tmp_path)
        assert proc.returncode == code, proc.stdout + proc.stderr
        runs = {int(d): d for d in os.listdir(tmp_path / f"runs-{retry_from}") if d.isdigit()}
        first, second = (tmp_path / f"runs-{retry_from}" / runs[k] for k in sorted(runs))
        assert json.load(open(first / "run.json"))["status"] == "FAILED"  # a retry is a run of its own
        second_run = json.load(open(second / "run.json"))
        assert second_run["status"] == second_status
        assert json.load(open(second / "metrics.json"))["total"]["steps"][0] == first_step
        # a new run that starts from an earlier run's checkpoint names it
        expected = {"run_id": first.name, "step": 5} if retry_from == "checkpoint" else None  # _run._id as -F gives it
        assert second_run["meta"]["sweep"].get("resumed_from") == expected


def test_a_state_that_cannot_be_saved_fails_the_trial_saying_what(tmp_path):
    copy_experiment(tmp_path)
    write(tmp_path / "grid.yaml", "grid:\n  steps: [4]\nfixed: {unpicklable: true}\n")
    proc = run_cli(["resumable.py", "ray_sweep", "with", "grid.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 1
    assert "TypeError: sacred_ray.save: the state cannot be saved" in proc.stdout
    assert "lock" in proc.stdout.split("cannot be saved")[1].splitlines()[0]


def test_resume_after_a_killed_driver_starts_unfinished_trials_from_their_checkpoints(tmp_path):
    """The driver is SIGKILLed mid-trial: --resume marks its run INTERRUPTED and runs the trial
    again from the checkpoint it had saved (a new run: the old one's driver is gone)."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import cli_env

    copy_experiment(tmp_path)
    write(tmp_path / "grid.yaml", "grid:\n  steps: [40]\nfixed: {every: 4, pause: 0.1}\n")
    proc = subprocess.Popen([sys.executable, "resumable.py", "ray_sweep", "with", "grid.yaml", "-F", "runs"],
                            cwd=tmp_path, env=cli_env(private=True), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = tmp_path / "sweeps" / "grid" / "checkpoints"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (folder.exists() and any(
            len([c for c in os.listdir(folder / k) if c.isdigit()]) >= 2 for k in os.listdir(folder))):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    time.sleep(3)  # the killed driver's workers notice and stop
    again = run_cli(["resumable.py", "ray_sweep", "with", "grid.yaml", "-F", "runs", "--resume"], cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    runs = sorted(int(d) for d in os.listdir(tmp_path / "runs") if d.isdigit())
    first, second = (json.load(open(tmp_path / "runs" / str(r) / "run.json")) for r in runs)
    assert first["status"] == "INTERRUPTED" and second["status"] == "COMPLETED" and second["result"] == sum(range(40))
    steps = json.load(open(tmp_path / "runs" / str(runs[1]) / "metrics.json"))["total"]["steps"]
    assert steps[0] >= 8 and steps[0] % 4 == 0 and steps == list(range(steps[0], 40))  # from a checkpoint
    assert second["meta"]["sweep"]["resumed_from"] == {"run_id": str(runs[0]), "step": steps[0] - 1}


def test_a_tune_trial_restarted_after_a_failure_goes_on_in_the_same_run_from_its_checkpoint(tmp_path):
    """tune_with: each trial keeps its state in checkpoints/<trial id>/; when Tune starts a failed
    trial again (max_failures), it restores the last checkpoint and its Sacred run goes on: one
    run per trial, COMPLETED, each step once."""
    copy_experiment(tmp_path)
    write(tmp_path / "space.yaml", "space:\n  pause: {choice: [0.01, 0.02]}\n"
                                   "fixed: {steps: 10, every: 2, raise_at: 6}\n"
                                   "tune: {metric: total, mode: max, num_samples: 2, max_failures: 1}\n")
    proc = run_cli(["resumable.py", "tune_with", "space.yaml", "-F", "runs"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = {}
    for d in (d for d in os.listdir(tmp_path / "runs") if d.isdigit()):
        run = json.load(open(tmp_path / "runs" / d / "run.json"))
        runs.setdefault(run["meta"]["tune"]["trial_id"], []).append(tmp_path / "runs" / d)
    assert len(runs) == 2 and all(len(folders) == 1 for folders in runs.values()), runs
    for trial_id, (folder,) in runs.items():
        run = json.load(open(folder / "run.json"))
        assert run["status"] == "COMPLETED" and run["result"] == 45
        metrics = json.load(open(folder / "metrics.json"))["total"]
        assert metrics["steps"] == list(range(10)) and metrics["values"] == sums(10)  # step 6 once, no gap
        (restart,) = json.load(open(folder / "info.json"))["sacred_ray"]["restarts"]
        assert "diverged at step 6" in restart["reason"] and "max_failures" in restart["reason"]
        assert restart["from_step"] == 5 and restart["node"]
        assert "resumed from 6" in (folder / "cout.txt").read_text()
        assert os.path.isdir(tmp_path / "sweeps" / "space" / "checkpoints" / trial_id)
    ledger = [json.loads(line) for line in (tmp_path / "sweeps" / "space" / "ledger.jsonl").read_text().splitlines()]
    assert sorted(e["status"] for e in ledger) == ["COMPLETED", "COMPLETED"]


def test_a_trial_hyperband_paused_goes_on_from_its_checkpoint_in_the_same_run(ray_session, tmp_path, mongo_db, monkeypatch):
    from sacred_ray.api import run_tune

    ex = import_experiment("resumable")
    monkeypatch.chdir(tmp_path)
    spec = {"fixed": {"steps": 12, "every": 3, "pause": 0.01}, "space": {"marks": {"choice": [""]},
                                                                          "die_at": {"choice": [-1, -2, -3]}},
            "tune": {"metric": "total", "mode": "max", "num_samples": 6,  # no max_concurrent_trials: see test_tune
                     "scheduler": {"type": "hyperband", "max_t": 12, "reduction_factor": 3},
                     "dir": str(tmp_path / "hb"), "name": "hb"}}
    result = run_tune(ex, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 0, result.report
    by_trial: dict = {}
    for run in mongo_db.runs.find():
        by_trial.setdefault(run["meta"]["tune"]["trial_id"], []).append(run)
    assert len(by_trial) == 6 and all(len(runs) == 1 for runs in by_trial.values())  # one run per trial
    paused = 0
    for (run,) in by_trial.values():
        series = mongo_db.metrics.find_one({"run_id": run["_id"], "name": "total"})
        n = len(series["steps"])
        assert series["steps"] == list(range(n)) and series["values"] == sums(n)  # continued: each step once
        restarts = (run["info"].get("sacred_ray") or {}).get("restarts", [])
        for restart in restarts:
            assert restart["reason"].startswith("paused by HyperBand at step") and restart["from_step"] is not None
        paused += bool(restarts)
        assert run["status"] in ("COMPLETED", "INTERRUPTED")
        if run["status"] == "COMPLETED":
            assert n == 12 and run["result"] == sum(range(12))
    assert paused, "HyperBand paused no trial"


@pytest.mark.slow
def test_a_folder_of_plain_files_is_saved_and_restored_as_a_copy_of_its_own(tmp_path):
    """save(directory=...) with a relative path and a subfolder failed every trial; restore() gave
    the live checkpoint folder, which the run then changed and pruning removed under it."""
    shutil.copy(os.path.join(EXPERIMENTS, "folder_state.py"), tmp_path / "folder_state.py")
    write(tmp_path / "grid.yaml", "grid:\n  steps: [6]\nsweep: {checkpoint: {keep: 1}}\n")
    proc = run_cli(["folder_state.py", "ray_sweep", "with", "grid.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_id,) = [d for d in os.listdir(tmp_path / "runs") if d.isdigit()]
    run = json.load(open(tmp_path / "runs" / run_id / "run.json"))
    assert run["status"] == "COMPLETED" and run["result"] == 3  # went on after step 2, in the same run
    out = (tmp_path / "runs" / run_id / "cout.txt").read_text()
    assert "restored ['notes', 'weights.txt'] from step 2" in out
    assert "still there: 2 edited by the run" in out  # its copy outlived the checkpoints pruned since
    (key,) = os.listdir(tmp_path / "sweeps" / "grid" / "checkpoints")
    (newest,) = os.listdir(tmp_path / "sweeps" / "grid" / "checkpoints" / key)  # keep: 1
    files = tmp_path / "sweeps" / "grid" / "checkpoints" / key / newest / "files"
    assert (files / "weights.txt").read_text() == "5"  # the run's edit never reached a checkpoint
    assert (files / "notes" / "log.txt").read_text() == "".join(f"step {i}\n" for i in range(6))


@pytest.mark.slow
def test_a_new_sweep_of_a_name_never_restores_an_earlier_ones_state_from_the_storage(tmp_path):
    """Under sweep.storage the checkpoints of a finished sweep stayed where a new sweep of the same
    name (same trial keys) looked: it restored them and reported the old sweep's results."""
    shutil.copy(os.path.join(EXPERIMENTS, "resumable.py"), tmp_path / "resumable.py")
    write(tmp_path / "grid.yaml", f"grid:\n  steps: [4]\nsweep: {{storage: {tmp_path / 'shared'}}}\n")
    for _ in range(2):
        proc = run_cli(["resumable.py", "ray_sweep", "with", "grid.yaml", "-F", "runs"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for run_id in ("1", "2"):
        assert "started fresh" in (tmp_path / "runs" / run_id / "cout.txt").read_text()
        assert json.load(open(tmp_path / "runs" / run_id / "metrics.json"))["total"]["steps"] == [0, 1, 2, 3]
    assert len(os.listdir(tmp_path / "shared" / "grid")) == 2  # a place of its own for each sweep


def test_a_torn_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, capsys):
    """A crash while the state was written (meta.json there, state.pkl cut short, as a disk that
    lost its unsynced pages leaves it): restore() skips it, saying so, for the one before."""
    from sacred_ray.checkpoint import TrialCheckpoints

    store = TrialCheckpoints(str(tmp_path / "trial"), keep=3)
    store.save({"step": 1})
    store.save({"step": 2})
    newest = tmp_path / "trial" / "1" / "state.pkl"
    newest.write_bytes(newest.read_bytes()[:5])
    assert store.restore() == {"step": 1}
    assert "sacred_ray.restore: checkpoint 1 cannot be read back (UnpicklingError" in capsys.readouterr().err
