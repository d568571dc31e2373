"""A sweep watched and steered from a second shell while it runs: sweep_status, sweep_pause,
sweep_continue, sweep_cancel (the sweep, or some trials), trials added by giving the same
command with a widened grid, and a SIGKILLed driver found out by sweep_status."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import cli_env, interruptible, run_cli, write
from test_faults import file_runs, ledger

from sacred_ray import campaign

pytestmark = pytest.mark.slow  # every test here starts Ray or a command line


def start(workdir, command, spec, env=None):
    return subprocess.Popen([sys.executable, "toy.py", command, spec, "-F", "runs"], cwd=workdir, env=env or cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=interruptible)


def status(folder):
    try:
        with open(os.path.join(folder, "status.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def wait_for(check, what, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def cli(workdir, *args):
    proc = run_cli(["toy.py", *args], cwd=workdir, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def run_folders(workdir):
    """How many runs started (a run's folder is made as it starts)."""
    runs = workdir / "runs"
    return len([n for n in os.listdir(runs) if n.isdigit()]) if runs.is_dir() else 0


def quiet(folder):
    """Wait until no trial of a paused sweep runs, twice a status rewrite apart (a trial whose
    worker took it just before the pause starts its run after it)."""
    for _ in range(2):
        wait_for(lambda: not status(folder).get("running"), "the running trials to end")
        time.sleep(1.5)
    wait_for(lambda: not status(folder).get("running"), "the running trials to end")


def control_lines(folder):
    return [e for e in ledger(folder) if "control" in e]


GRID = """\
sweep: {{name: camp}}
grid:
  x: [{xs}]
  sleep: [2.5]
"""


@pytest.mark.long(2)
def test_a_running_sweep_is_watched_paused_widened_cancelled_in_part_and_continued(workdir):
    folder = str(workdir / "sweeps" / "camp")
    # 4 s trials: under load the pause must land before all six started (two at a time)
    write(workdir / "grid.yaml", GRID.format(xs="1, 2, 3, 4, 5, 6").replace("2.5", "4"))
    driver = start(workdir, "ray_sweep", "grid.yaml")
    try:
        for _ in range(5):  # under load one trial may end, the next not yet start, as we look
            wait_for(lambda: status(folder).get("running"), "a running trial")
            code, out = cli(workdir, "sweep_status", "camp")
            assert code == 0, out
            if "RUNNING" in out:
                break
        assert "sweep 'camp' (ray_sweep) in sweeps/camp: running, driver pid" in out
        assert "6 trials:" in out and "RUNNING" in out and "running:" in out

        code, out = cli(workdir, "sweep_pause", "sweeps/camp")
        assert code == 0 and out.startswith("paused: no new trial starts"), out
        quiet(folder)  # trials a worker had taken at the pause start and finish; then nothing starts
        started = run_folders(workdir)
        time.sleep(3)
        assert run_folders(workdir) == started < 6
        paused = campaign.sweep_status(folder)
        assert paused["state"] == "paused" and paused["driver_alive"] and paused["waiting"] > 0

        # the same command with a widened grid hands the new trials to the running sweep
        write(workdir / "grid.yaml", GRID.format(xs="1, 2, 3, 4, 5, 6, 7, 8").replace("2.5", "4"))
        proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=workdir, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "is running (pid" in proc.stdout and "added 2 trial(s) (#6-#7); 6 were in the sweep already" in proc.stdout

        code, out = cli(workdir, "sweep_cancel", "camp", "--trial", "7")
        assert code == 0 and out.startswith("cancelled trial(s) 7"), out
        code, out = cli(workdir, "sweep_continue", "camp")
        assert code == 0 and out.startswith("going on"), out
        driver.wait(timeout=120)
        log = driver.stdout.read()
    finally:
        driver.kill()
    assert driver.returncode == 1, log  # one trial did not complete: it was cancelled
    entries = [e for e in ledger(folder) if "control" not in e]
    assert sorted(e["index"] for e in entries) == list(range(8))  # every trial once, none twice
    cancelled = next(e for e in entries if e["index"] == 7)
    assert cancelled["status"] == "INTERRUPTED" and "cancelled by the user" in cancelled["error"]
    runs = file_runs(workdir / "runs")
    assert sorted(r["config"]["x"] for r in runs) == [1, 2, 3, 4, 5, 6, 7]
    assert {r["status"] for r in runs} == {"COMPLETED"}
    assert [c["control"] for c in control_lines(folder)] == ["pause", "add", "cancel_trials", "continue"]
    assert all("@" in c["by"] and "pid" in c["by"] for c in control_lines(folder))
    with open(os.path.join(folder, "trials.jsonl")) as f:
        assert [json.loads(line)["index"] for line in f] == list(range(8))
    code, out = cli(workdir, "sweep_status", "camp")
    assert code == 0 and "ended: finished" in out and "7 COMPLETED, 1 INTERRUPTED" in out, out


def test_pausing_and_going_on_again_and_again_never_interrupts_a_trial(workdir):
    """A pause lands as trials are being handed to workers: each one either runs to its end or
    waits, never both (a trial taken back after its run began was recorded INTERRUPTED); a
    trial waiting for the sweep to go on can be cancelled like a queued one."""
    folder = str(workdir / "sweeps" / "camp")
    write(workdir / "grid.yaml", GRID.format(xs=", ".join(map(str, range(16)))).replace("2.5", "0.5"))
    driver = start(workdir, "ray_sweep", "grid.yaml")
    try:
        wait_for(lambda: status(folder).get("running"), "a running trial")
        assert campaign.sweep_pause(folder).startswith("paused")
        quiet(folder)
        started = {r["config"]["x"] for r in file_runs(workdir / "runs")}
        waiting = min(set(range(16)) - started)  # in Ray's queue at the pause: held back since
        assert campaign.sweep_cancel(folder, trials=[waiting]) == f"cancelled trial(s) {waiting}"
        for _ in range(3):
            assert campaign.sweep_continue(folder).startswith("going on")
            assert campaign.sweep_pause(folder).startswith("paused")
        assert campaign.sweep_continue(folder).startswith("going on")
        driver.wait(timeout=120)
        log = driver.stdout.read()
    finally:
        driver.kill()
    assert driver.returncode == 1, log  # the cancelled trial did not complete
    runs = file_runs(workdir / "runs")
    assert sorted(r["config"]["x"] for r in runs) == sorted(set(range(16)) - {waiting})
    assert {r["status"] for r in runs} == {"COMPLETED"}
    entries = {e["index"]: e for e in ledger(folder) if "control" not in e}
    assert sorted(entries) == list(range(16))
    assert entries.pop(waiting)["error"].startswith("not run: cancelled by the user")
    assert {e["status"] for e in entries.values()} == {"COMPLETED"}


def test_a_cancelled_sweep_ends_interrupted_and_a_killed_driver_is_found_out(workdir):
    folder = str(workdir / "sweeps" / "camp")
    write(workdir / "grid.yaml", GRID.format(xs="1, 2, 3, 4").replace("2.5", "60"))
    driver = start(workdir, "ray_sweep", "grid.yaml")
    try:
        wait_for(lambda: len(status(folder).get("running") or []) == 2, "two running trials")
        code, out = cli(workdir, "sweep_cancel", "camp")
        assert code == 0 and out.startswith("the sweep stops"), out
        driver.wait(timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 130
    runs = file_runs(workdir / "runs")
    assert len(runs) == 2 and {r["status"] for r in runs} == {"INTERRUPTED"}
    assert all(r["info"]["sacred_ray"]["stop_reason"].startswith("sweep interrupted (cancelled by the user: ")
               for r in runs)
    assert {e["status"] for e in ledger(folder) if "control" not in e} == {"INTERRUPTED"}
    code, out = cli(workdir, "sweep_cancel", "camp")
    assert code == 2 and out.count("\n") == 1 and "its sweep is not running" in out

    # a driver killed outright: sweep_status finds it out, and nothing is left RUNNING
    driver = start(workdir, "ray_sweep", "grid.yaml")
    try:
        wait_for(lambda: len(status(folder).get("running") or []) == 2, "two running trials")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        driver.kill()
    code, out = cli(workdir, "sweep_status", "camp")
    assert code == 0 and "died; --resume continues the sweep" in out, out
    assert "2 were RUNNING when the driver died" in out
    wait_for(lambda: all(r["status"] != "RUNNING" for r in file_runs(workdir / "runs")), "no run RUNNING", 30)
    assert control_lines(folder)[-1]["control"] == "detect_killed"


def test_a_dead_drivers_runs_left_running_are_closed_by_sweep_status(workdir):
    """What a driver SIGKILLed with its workers leaves (a run RUNNING, status.json saying
    running, nobody holding the folder's lock) is closed by sweep_status, once."""
    folder = workdir / "sweeps" / "camp"
    write(workdir / "grid.yaml", GRID.format(xs="1").replace("2.5", "0"))
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    run_json = workdir / "runs" / "1" / "run.json"
    run = json.loads(run_json.read_text())
    run["status"] = "RUNNING"
    run_json.write_text(json.dumps(run))
    left = {**status(folder), "state": "running", "ended": None,
            "running": [{"trial": 0, "run_id": "1", "node": "x", "started": time.time() - 5, "last": {}}]}
    (folder / "status.json").write_text(json.dumps(left))
    found = campaign.sweep_status(str(folder))
    assert found["state"] == "ended" and not found["driver_alive"]
    assert found["closed_runs"] == 1 and found["ended"]["notes"][0] == "closed 1 run(s) it left RUNNING as INTERRUPTED"
    run = json.loads(run_json.read_text())
    info = json.loads((workdir / "runs" / "1" / "info.json").read_text())
    assert run["status"] == "INTERRUPTED" and "died while this run was RUNNING" in info["sacred_ray"]["stop_reason"]
    assert "closed_runs" not in campaign.sweep_status(str(folder))  # found out once


SPACE = """\
fixed: {sleep: 8, steps: 2}
space:
  x: {uniform: [0, 4]}
tune: {name: tcamp, metric: loss, mode: min, num_samples: 8, search: random, max_concurrent_trials: 2}
"""


@pytest.mark.long(2)
def test_a_running_search_is_watched_cancelled_in_part_paused_and_cancelled(workdir):
    folder = str(workdir / "sweeps" / "tcamp")
    write(workdir / "space.yaml", SPACE)
    driver = start(workdir, "tune_with", "space.yaml")
    try:
        running = wait_for(lambda: status(folder).get("running"), "a running trial")
        trial = max(running, key=lambda r: r["started"])["trial"]  # the newest: it runs the longest still
        code, out = cli(workdir, "sweep_cancel", "tcamp", "--trial", trial)
        assert code == 0 and out.startswith(f"trial(s) {trial} stop at their next report"), out
        code, out = cli(workdir, "sweep_pause", "tcamp")
        assert code == 0 and out.startswith("paused"), out
        code, out = cli(workdir, "sweep_status", "tcamp", "--json")
        assert code == 0, out
        seen = json.loads(out)
        assert seen["command"] == "tune_with" and seen["total"] == 8 and seen["driver_alive"]
        assert seen["state"] == "paused" and seen["counts"].get("INTERRUPTED", 0) <= 1
        quiet(folder)
        started = run_folders(workdir)
        time.sleep(3)
        assert run_folders(workdir) == started  # no Sacred run starts while paused
        code, out = cli(workdir, "sweep_continue", "tcamp")
        assert code == 0 and out.startswith("going on"), out
        wait_for(lambda: run_folders(workdir) > started, "a run after going on")
        code, out = cli(workdir, "sweep_cancel", "tcamp")
        assert code == 0 and out.startswith("the search stops"), out
        driver.wait(timeout=90)
        log = driver.stdout.read()
    finally:
        driver.kill()
    assert driver.returncode == 130, log
    runs = {r["meta"]["sweep"]["trial"]: r for r in file_runs(workdir / "runs")}
    assert runs[trial]["status"] == "INTERRUPTED"
    assert runs[trial]["info"]["sacred_ray"]["stop_reason"].startswith("cancelled by the user: ")
    assert not any(r["status"] == "RUNNING" for r in runs.values())
    assert [c["control"] for c in control_lines(folder)] == ["cancel_trials", "pause", "continue", "cancel"]
    assert status(folder)["state"] == "ended" and "cancelled by the user" in status(folder)["ended"]["how"]


def test_campaign_commands_refuse_bad_input_in_one_line(workdir, capsys):
    code, out = cli(workdir, "sweep_status", "nosuch")
    assert code == 2 and out.strip() == ("error: nosuch: no such sweep: give its folder (sweeps/NAME) or its name "
                                         "(looked in ./sweeps)")
    (workdir / "notasweep").mkdir()
    assert campaign.command("sweep_pause", [str(workdir / "notasweep")], "toy.py") == 2
    assert "is not a sweep's folder" in capsys.readouterr().err
    assert campaign.command("sweep_cancel", ["x", "--trial"], "toy.py") == 2
    assert "--trial: needs a trial number" in capsys.readouterr().err
    assert campaign.command("sweep_status", ["a", "b"], "toy.py") == 2
    assert "takes one sweep" in capsys.readouterr().err


def test_resume_says_which_source_changed_and_goes_on_only_when_told(workdir):
    write(workdir / "grid.yaml", GRID.format(xs="1, 2").replace("2.5", "0"))
    first = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=workdir)
    assert first.returncode == 0, first.stderr
    again = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs", "--resume"], cwd=workdir)
    assert again.returncode == 0 and "nothing to run" in again.stdout, again.stderr
    with open(workdir / "toy.py", "a") as f:
        f.write("\n# a change after the sweep ran\n")
    changed = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs", "--resume"], cwd=workdir)
    assert changed.returncode == 2
    assert changed.stderr == ("error: --resume: camp: the experiment's source changed since the sweep's runs ran "
                              "(toy.py); its COMPLETED trials ran the old code: give --changed-source-ok to go on "
                              "anyway, or start a new sweep without --resume\n")
    assert len(file_runs(workdir / "runs")) == 2  # nothing ran
    told = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs", "--resume", "--changed-source-ok"], cwd=workdir)
    assert told.returncode == 0 and "nothing to run" in told.stdout, told.stderr
