"""tune_with stops as ray_sweep does: Ctrl-C is 130 and SIGTERM 143, the running trials'
runs INTERRUPTED with the user's stop as the reason, summary.csv and best.yaml written from
what finished, no traceback, and --resume runs no trial whose run already COMPLETED."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import EXPERIMENTS, cli_env, run_cli, write

pytestmark = pytest.mark.slow  # every test here starts Ray or a command line

SPACE = {
    "fixed": {"steps": 20, "pause": 0.1},
    "space": {"quality": {"uniform": [0.0, 1.0]}},
    "tune": {"metric": "loss", "mode": "min", "num_samples": 6, "max_concurrent_trials": 2,
             "search": {"type": "random", "seed": 1}, "name": "stoppable"},
}


def _runs(folder):
    out = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        try:
            run = json.loads((folder / name / "run.json").read_text())
            info = folder / name / "info.json"  # written at the run's first heartbeat
            run["info"] = json.loads(info.read_text()) if info.exists() else {}
            run["_id"] = name
        except (OSError, ValueError):  # not a run folder, or being written now
            continue
        out.append(run)
    return out


def _start(tmp_path, extra=(), private=False):
    return subprocess.Popen([sys.executable, "curves.py", "tune_with", "space.yaml", "-F", "runs", *extra],
                            cwd=tmp_path, env=cli_env(private=private), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=_default_signals)


def _default_signals():
    """A background shell starts jobs with SIGINT ignored: give the command Ctrl-C and SIGTERM as a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _wait(tmp_path, proc, done):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        statuses = [r["status"] for r in _runs(tmp_path / "runs")]
        if done(statuses):
            return
        time.sleep(0.1)
    raise AssertionError("the search never got there")


@pytest.mark.long(2)
@pytest.mark.parametrize("signum,code,reason", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_stopped_search_records_the_users_stop_and_resumes_without_rerunning(tmp_path, signum, code, reason):
    write(tmp_path / "curves.py", open(os.path.join(EXPERIMENTS, "curves.py")).read())
    write(tmp_path / "space.yaml", json.dumps(SPACE))
    proc = _start(tmp_path)
    # stop once a trial has completed and another is running
    _wait(tmp_path, proc, lambda s: "COMPLETED" in s and "RUNNING" in s)
    time.sleep(0.5)  # the running trial is well into its run
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, out + err
    assert "Traceback" not in err and "PC: @" not in err and "SIGTERM received" not in err
    runs = _runs(tmp_path / "runs")
    assert "RUNNING" not in {r["status"] for r in runs}
    stopped = [r for r in runs if r["status"] == "INTERRUPTED"]
    assert stopped, [(r["status"], r.get("fail_trace"), r["info"]) for r in runs]
    for run in stopped:
        assert run["info"]["sacred_ray"]["stop_reason"] == f"sweep interrupted ({reason})"
    folder = tmp_path / "sweeps" / "stoppable"
    assert (folder / "summary.csv").exists() and (folder / "best.yaml").exists()
    assert "best: trial" in out
    completed_before = {r["meta"]["tune"]["trial_id"] for r in runs if r["status"] == "COMPLETED"}

    resumed = run_cli(["curves.py", "tune_with", "space.yaml", "-F", "runs", "--resume"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    runs = _runs(tmp_path / "runs")
    completed = [r["meta"]["tune"]["trial_id"] for r in runs if r["status"] == "COMPLETED"]
    assert len(completed) == len(set(completed))  # no trial completed twice
    assert completed_before <= set(completed)
    assert len(set(completed)) == 6


@pytest.mark.long(2)
def test_a_killed_drivers_search_ranked_by_result_resumes_without_rerunning_a_completed_trial(tmp_path):
    """``metric: result`` (main's return value, never logged): a trial whose run COMPLETED after
    Tune last saved its own state was run again by --resume once the driver had been killed."""
    write(tmp_path / "curves.py", open(os.path.join(EXPERIMENTS, "curves.py")).read())
    write(tmp_path / "space.yaml", json.dumps({**SPACE, "tune": {**SPACE["tune"], "metric": "result", "name": "lost"}}))
    proc = _start(tmp_path, private=True)  # a Ray of its own, which dies with the driver
    _wait(tmp_path, proc, lambda s: s.count("COMPLETED") >= 2)
    proc.kill()  # SIGKILL: the driver records nothing more, and Tune saves nothing more
    proc.communicate(timeout=60)
    completed_before = {r["meta"]["tune"]["trial_id"] for r in _runs(tmp_path / "runs") if r["status"] == "COMPLETED"}
    resumed = run_cli(["curves.py", "tune_with", "space.yaml", "-F", "runs", "--resume"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    runs = _runs(tmp_path / "runs")
    completed = [r["meta"]["tune"]["trial_id"] for r in runs if r["status"] == "COMPLETED"]
    assert len(completed) == len(set(completed)), completed  # no trial completed twice
    assert completed_before <= set(completed) and len(set(completed)) == 6
    assert "RUNNING" not in {r["status"] for r in runs}
    # the trials Tune made after the restore have draws of their own, none a completed one's again
    qualities = {json.loads((tmp_path / "runs" / r["_id"] / "config.json").read_text())["quality"]
                 for r in runs if r["status"] == "COMPLETED"}
    assert len(qualities) == 6, qualities


def test_spec_yaml_names_the_file_it_was_read_from(tmp_path):
    write(tmp_path / "curves.py", open(os.path.join(EXPERIMENTS, "curves.py")).read())
    space = {**SPACE, "fixed": {"steps": 2, "pause": 0.0}, "tune": {**SPACE["tune"], "num_samples": 2}}
    write(tmp_path / "space.yaml", json.dumps(space))
    proc = run_cli(["curves.py", "tune_with", "space.yaml"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import yaml

    header = yaml.safe_load((tmp_path / "sweeps" / "stoppable" / "spec.yaml").read_text())
    assert header["spec_file"] == str(tmp_path / "space.yaml")
