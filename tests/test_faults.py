"""Nothing lost: every trial ends with a true recorded status, whatever goes wrong."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import cli_env, interruptible, read_dump, run_cli, write

from sacred_ray.api import run_sweep


def file_runs(folder):
    out = []
    if not os.path.isdir(folder):
        return out
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name, "run.json")
        if name.isdigit() and os.path.exists(path):
            try:
                run = json.load(open(path))
                run["config"] = json.load(open(os.path.join(folder, name, "config.json")))
                info = os.path.join(folder, name, "info.json")
                run["info"] = json.load(open(info)) if os.path.exists(info) else {}
            except (OSError, ValueError):  # being written right now (tests poll live sweeps)
                continue
            out.append(run)
    return out


def ledger(folder):
    with open(os.path.join(folder, "ledger.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


# Runs are recorded in the driver (a MongoDB observer) or by the worker itself (-F, on the
# driver's machine); the driver must get each ending right in both.
RECORDED = {
    "by the driver": lambda tmp_path: {"--mongo_db": "localhost:27017:sweeps"},
    "by the worker": lambda tmp_path: {"--file_storage": str(tmp_path / "runs")},
}


def run_seconds(run):
    """How long a recorded run ran, start to stop, as its observer has it (MongoDB keeps
    datetimes, file storage ISO strings)."""
    import datetime

    start, stop = run["start_time"], run["stop_time"]
    if isinstance(start, str):
        start, stop = datetime.datetime.fromisoformat(start), datetime.datetime.fromisoformat(stop)
    return (stop - start).total_seconds()


def recorded_runs(where, tmp_path, mongo_db):
    return list(mongo_db.runs.find()) if where == "by the driver" else file_runs(tmp_path / "runs")


@pytest.mark.slow
@pytest.mark.parametrize("where", RECORDED)
def test_a_dead_worker_is_recorded_failed_and_not_retried(ray_session, toy, tmp_path, mongo_db, where):
    spec = {"grid": {"x": [1.0, 2.0]}, "variants": {"ok": {}, "dies": {"fixed": {"exit_hard": True}, "grid": {"x": [3.0]}}},
            "sweep": {"dir": str(tmp_path / "sw")}}
    result = run_sweep(toy, spec, options=RECORDED[where](tmp_path), progress=False)
    assert result.exit_code == 1
    assert result.counts == {"COMPLETED": 2, "FAILED": 1}
    runs = recorded_runs(where, tmp_path, mongo_db)
    dead = [r for r in runs if r["config"]["x"] == 3.0]
    assert len(dead) == 1  # no retry by Ray: one trial, one run
    assert dead[0]["status"] == "FAILED" and dead[0]["stop_time"]
    assert "worker died" in "".join(dead[0]["fail_trace"])
    assert sorted(r["status"] for r in runs) == ["COMPLETED", "COMPLETED", "FAILED"]


@pytest.mark.slow
def test_retries_rerun_a_failed_trial_each_attempt_its_own_run(ray_session, toy, tmp_path, mongo_db):
    flaky = tmp_path / "flaky"
    flaky.mkdir()
    spec = {"grid": {"x": [1.0, 2.0]}, "fixed": {"flaky_dir": str(flaky), "flaky_failures": 1},
            "sweep": {"dir": str(tmp_path / "sw"), "retries": 2}}
    result = run_sweep(toy, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 0 and result.counts == {"COMPLETED": 2}
    for x in (1.0, 2.0):
        runs = sorted(mongo_db.runs.find({"config.x": x}), key=lambda r: r["meta"]["sweep"]["attempt"])
        assert [(r["meta"]["sweep"]["attempt"], r["status"]) for r in runs] == [(1, "FAILED"), (2, "COMPLETED")]
        assert runs[0]["meta"]["sweep"]["key"] == runs[1]["meta"]["sweep"]["key"]  # linked by trial key
    entries = ledger(tmp_path / "sw")
    assert sorted((e["attempt"], e["status"], e["retrying"]) for e in entries) == [
        (1, "FAILED", True), (1, "FAILED", True), (2, "COMPLETED", False), (2, "COMPLETED", False)]


@pytest.mark.slow
@pytest.mark.parametrize("where", RECORDED)
def test_fail_fast_stops_the_sweep_at_the_first_failure(ray_session, toy, tmp_path, mongo_db, where):
    spec = {"grid": {"x": [1.0, 2.0, 3.0, 4.0, 5.0]}, "fixed": {"sleep": 20.0},
            "variants": {"bad": {"fixed": {"fail": True, "sleep": 3.0}, "grid": {"x": [0.0]}}, "slow": {}},
            "sweep": {"dir": str(tmp_path / "sw"), "fail_fast": True, "max_concurrent": 2}}
    started = time.monotonic()
    result = run_sweep(toy, spec, options=RECORDED[where](tmp_path), progress=False)
    assert time.monotonic() - started < 60  # (a loaded machine may take long to start the trials)
    assert result.exit_code == 1
    by_x = {r.trial.values["x"]: r for r in result.results}
    assert by_x[0.0].status == "FAILED"
    assert {r.status for x, r in by_x.items() if x != 0.0} == {"INTERRUPTED"}
    runs = recorded_runs(where, tmp_path, mongo_db)
    assert "RUNNING" not in {r["status"] for r in runs}
    interrupted = [r for r in runs if r["status"] == "INTERRUPTED"]
    assert interrupted  # the trial in flight beside the failure was stopped and recorded
    assert all(run_seconds(r) < 15 for r in interrupted)  # the 20 s trials were stopped, not waited for
    assert all(r["info"]["sacred_ray"]["stop_reason"].startswith("fail_fast") for r in interrupted)


@pytest.mark.slow
@pytest.mark.parametrize("where", RECORDED)
def test_a_trial_over_its_timeout_is_recorded_timeout(ray_session, toy, tmp_path, mongo_db, where):
    spec = {"grid": {"x": [1.0]}, "fixed": {"sleep": 60.0}, "sweep": {"dir": str(tmp_path / "sw"), "timeout": 1.5}}
    started = time.monotonic()
    result = run_sweep(toy, spec, options=RECORDED[where](tmp_path), progress=False)
    assert time.monotonic() - started < 60  # (a loaded machine may take long to start the trial)
    assert result.exit_code == 1 and result.counts == {"TIMEOUT": 1}
    (run,) = recorded_runs(where, tmp_path, mongo_db)
    assert run["status"] == "TIMEOUT"
    assert run_seconds(run) < 8  # interrupted where it sleeps, not waited for
    assert run["info"]["sacred_ray"]["stop_reason"] == "timed out after 1.5s"
    assert run["config"]["sleep"] == 60.0 and run["stop_time"]


GRID = "grid:\n  x: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]\nfixed: {sleep: 1.5}\nsweep: {name: long, max_concurrent: 2}\n"


def _start_sweep(workdir, extra=(), own_group=False, private=True):
    """A sweep in the background, to be signalled; on a Ray of its own, as before these tests
    shared one: a joined Ray ships the folder first, which widens the moment a trial is taken
    but its run not started (the Ctrl-C count test once saw it under load)."""
    return subprocess.Popen([sys.executable, "toy.py", "ray_sweep", "with", "grid.yaml", "-F", "runs", *extra],
                            cwd=workdir, env=cli_env(private=private), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=own_group, preexec_fn=interruptible)


def _wait_for_running(workdir, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "RUNNING" in {r["status"] for r in file_runs(workdir / "runs")}:
            return
        time.sleep(0.05)
    raise AssertionError("no trial was running")


def _wait_for_ledger(workdir, lines, timeout=120):
    path = workdir / "sweeps" / "long" / "ledger.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= lines:
            return
        time.sleep(0.2)
    raise AssertionError("the sweep did not get going")


@pytest.mark.long
@pytest.mark.slow
def test_ctrl_c_records_interrupted_and_resume_completes_each_trial_once(workdir):
    write(workdir / "grid.yaml", GRID)
    proc = _start_sweep(workdir)
    _wait_for_ledger(workdir, 2)
    _wait_for_running(workdir)  # Ctrl-C while a trial runs, not between two
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    first = file_runs(workdir / "runs")
    assert "RUNNING" not in {r["status"] for r in first}
    assert "INTERRUPTED" in {r["status"] for r in first}
    assert len(ledger(workdir / "sweeps" / "long")) == 6  # every trial has its line, run or not

    proc = run_cli(["toy.py", "ray_sweep", "with", "grid.yaml", "-F", "runs", "--resume"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "resume:" in proc.stdout
    runs = file_runs(workdir / "runs")
    completed = sorted(r["config"]["x"] for r in runs if r["status"] == "COMPLETED")
    assert completed == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # each exactly once across both runs
    indices = {r["config"]["x"]: r["meta"]["sweep"]["trial"] for r in runs if r["status"] == "COMPLETED"}
    assert indices == {1.0: 0, 2.0: 1, 3.0: 2, 4.0: 3, 5.0: 4, 6.0: 5}  # numbering kept

    proc = run_cli(["toy.py", "ray_sweep", "with", "grid.yaml", "-F", "runs", "--resume"], cwd=workdir)
    assert proc.returncode == 0
    assert "all 6 trials of 'long' are already COMPLETED; nothing to run" in proc.stdout
    assert len(file_runs(workdir / "runs")) == len(runs)


@pytest.mark.slow
def test_ctrl_c_counts_running_and_queued_trials_as_they_are(workdir):
    """With more trials submitted than run at once (2 CPUs, a window of 8), Ctrl-C says how many
    were running, and no interrupted trial is counted as failed."""
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]\nfixed: {sleep: 3.0}\n"
                                 "sweep: {name: long}\n")
    proc = _start_sweep(workdir)
    _wait_for_running(workdir)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    stopping = int(re.search(r"Ctrl-C: stopping (\d+) running trial", out).group(1))
    runs = file_runs(workdir / "runs")
    interrupted = [r for r in runs if r["status"] == "INTERRUPTED"]
    assert 1 <= stopping <= 2 and stopping == len(interrupted)  # the queued ones were not running
    entries = ledger(workdir / "sweeps" / "long")
    not_run = [e for e in entries if e["status"] == "INTERRUPTED" and e["error"].startswith("not run")]
    assert len(entries) == 6 and len(not_run) == 6 - len(runs)
    assert "FAILED" not in {e["status"] for e in entries}
    assert re.search(r"failed [1-9]", err) is None  # the progress never counts an interrupted trial as failed
    assert "6 trials: " in out and "FAILED" not in out.split("6 trials: ")[1]


@pytest.mark.long
@pytest.mark.slow
def test_sigterm_exits_143_and_a_killed_drivers_trials_stop_and_resume_once(workdir):
    write(workdir / "grid.yaml", GRID)
    proc = _start_sweep(workdir)
    _wait_for_ledger(workdir, 1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert "RUNNING" not in {r["status"] for r in file_runs(workdir / "runs")}

    proc = _start_sweep(workdir, ["--resume"])  # a private Ray: the killed driver's Ray dies with it
    _wait_for_running(workdir, timeout=120)
    proc.kill()  # SIGKILL: the driver records nothing; its workers notice and stop their runs
    proc.communicate(timeout=60)
    time.sleep(3)  # let the killed driver's Ray wind down: no orphan may write after this
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "RUNNING" in {r["status"] for r in file_runs(workdir / "runs")}:
        time.sleep(0.1)
    orphans = [r for r in file_runs(workdir / "runs") if r["info"].get("sacred_ray", {}).get("stop_reason") ==
               "the sweep's driver went away"]
    assert orphans and {r["status"] for r in orphans} == {"INTERRUPTED"}

    done = run_cli(["toy.py", "ray_sweep", "with", "grid.yaml", "-F", "runs", "--resume"], cwd=workdir)
    assert done.returncode == 0, done.stderr
    runs = file_runs(workdir / "runs")
    assert "RUNNING" not in {r["status"] for r in runs}
    assert sorted(r["config"]["x"] for r in runs if r["status"] == "COMPLETED") == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


@pytest.mark.slow
def test_resume_closes_runs_left_running_by_a_machine_that_died(workdir):
    """Driver and worker gone at once (a machine lost): nothing could end the run; --resume does."""
    import datetime

    from sacred.observers import FileStorageObserver

    write(workdir / "grid.yaml", GRID)
    stale = FileStorageObserver(str(workdir / "runs"))
    stale.started_event(ex_info={"name": "toy", "base_dir": str(workdir), "sources": [], "dependencies": [],
                                 "repositories": [], "mainfile": "toy.py"},
                        command="main", host_info={}, start_time=datetime.datetime.utcnow(), config={"x": 1.0},
                        meta_info={"sweep": {"name": "long", "trial": 0}}, _id=None)
    done = run_cli(["toy.py", "ray_sweep", "with", "grid.yaml", "-F", "runs", "--resume"], cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "marked 1 run(s) left RUNNING by an earlier driver as INTERRUPTED" in done.stdout
    runs = file_runs(workdir / "runs")
    closed = json.loads((workdir / "runs" / "1" / "run.json").read_text())
    assert closed["status"] == "INTERRUPTED" and closed["stop_time"]
    assert sorted(r["config"]["x"] for r in runs if r["status"] == "COMPLETED") == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


@pytest.mark.slow
def test_unreachable_mongodb_is_one_line_before_ray_starts(workdir):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0]\n")
    started = time.monotonic()
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-m", "localhost:1:sweeps"], cwd=workdir,
                   env=cli_env(RAY_ADDRESS="127.0.0.1:9"))
    assert time.monotonic() - started < 20
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert line.startswith("error: -m: ") and ": cannot reach MongoDB (" in line, line
    assert line.endswith("start the server or fix the -m address"), line
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (workdir / "sweeps").exists()


@pytest.mark.slow
@pytest.mark.parametrize("url,shown", [
    ("mongodb://alice:s3cr3t-pw@localhost:27017/sweeps", "mongodb://alice:***@localhost:27017/sweeps"),
    ("mongodb://alice:s3cr3t-pw@localhost:27017/sweeps?tlsCertificateKeyFilePassword=s3cr3t-key&authSource=admin",
     "mongodb://alice:***@localhost:27017/sweeps?tlsCertificateKeyFilePassword=***&authSource=admin"),
])
def test_a_password_in_a_mongodb_url_appears_nowhere(workdir, tmp_path, url, shown):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0]\nsweep: {name: secret-sweep}\n")
    dump = tmp_path / "mongo.json"
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-m", url], cwd=workdir, mongo_dump=dump)
    assert proc.returncode == 0, proc.stderr
    db = read_dump(dump, "sweeps")
    assert len(db["runs"]) == 2 and {r["status"] for r in db["runs"]} == {"COMPLETED"}
    assert db["runs"][0]["meta"]["options"]["--mongo_db"] == shown
    places = [proc.stdout, proc.stderr, json.dumps(db["runs"], default=str)]
    folder = workdir / "sweeps" / "secret-sweep"
    places += [(folder / name).read_text() for name in os.listdir(folder) if (folder / name).is_file()]
    for text in places:
        assert "s3cr3t" not in text


# every credential-bearing shape of a URL, as users write them (escaped or not)
URL_SHAPES = [
    ("mongodb://user:pw1@host:27017/db", "mongodb://user:***@host:27017/db"),
    ("mongodb://:pw2@host/db", "mongodb://:***@host/db"),
    ("mongodb://user:p/w3@host/db", "mongodb://user:***@host/db"),
    ("mongodb://user:p@w4@host/db", "mongodb://user:***@host/db"),
    ("mongodb://user:p:w5@host/db", "mongodb://user:***@host/db"),
    ("mongodb+srv://u:p%40w6@cluster.example.net/db?retryWrites=true",
     "mongodb+srv://u:***@cluster.example.net/db?retryWrites=true"),
    ("mongodb://host/db?tlsCertificateKeyFilePassword=pw7&authSource=admin",
     "mongodb://host/db?tlsCertificateKeyFilePassword=***&authSource=admin"),
    ("mongodb://u:pw8@h1:1,h2:2/db?replicaSet=rs&authMechanismProperties=AWS_SESSION_TOKEN:pw9",
     "mongodb://u:***@h1:1,h2:2/db?replicaSet=rs&authMechanismProperties=AWS_SESSION_TOKEN:pw9"),
    ("s3://key:pw10@bucket/prefix?token=pw11", "s3://key:***@bucket/prefix?token=***"),
    ("-m=mongodb://a:pw12@h/d", "-m=mongodb://a:***@h/d"),
    ("mongodb://user@host/db", "mongodb://user@host/db"),
]


@pytest.mark.parametrize("url,shown", URL_SHAPES)
def test_every_credential_of_a_url_is_redacted(url, shown):
    from sacred_ray.records import redact

    assert redact(url) == shown
    assert redact(f"error: cannot reach {url} (timeout)") == f"error: cannot reach {shown} (timeout)"


@pytest.mark.slow
@pytest.mark.parametrize("value", ["mongodb://:s3cr3t@", "mongodb://u:s3c/r3t@", "mongodb://u:s3c@r3t@:bad:port/db",
                                   "mongodb://h/db?tlsCertificateKeyFilePassword=s3cr3t&bogus"])
def test_a_url_that_cannot_parse_shows_no_credential(workdir, value):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0]\n")
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-m", value], cwd=workdir, env=cli_env(RAY_ADDRESS="127.0.0.1:9"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "s3cr3t" not in proc.stdout + proc.stderr and "r3t" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("value", ["mongodb://alice:pw@", "localhost:27017:bad db"])
def test_a_mongo_address_that_cannot_parse_is_refused(workdir, value):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0]\n")
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-m", value], cwd=workdir, env=cli_env(RAY_ADDRESS="127.0.0.1:9"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: command line: -m: cannot parse") and "pw" not in proc.stderr


@pytest.mark.slow
def test_mongodb_lost_mid_sweep_loses_nothing(workdir, tmp_path):
    import pickle

    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0, 3.0]\nsweep: {name: lost-db}\n")
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-m", "localhost:27017:sweeps"], cwd=workdir,
                   mongo_dump=tmp_path / "mongo.json", env=cli_env(MONGO_LOST_BEFORE_FINAL_SAVES="1"))
    assert proc.returncode == 0, proc.stderr
    saved_dir = workdir / "sweeps" / "lost-db" / "failed_saves"
    entries = [pickle.load(open(saved_dir / name, "rb")) for name in os.listdir(saved_dir)]
    assert sorted(e["config"]["x"] for e in entries) == [1.0, 2.0, 3.0]
    assert {e["status"] for e in entries} == {"COMPLETED"}
    assert all(e["result"] == -((e["config"]["x"] - 2) ** 2) for e in entries)
    assert f"3 run(s) could not be written to MongoDB; Sacred saved them in {saved_dir}" in proc.stdout


@pytest.mark.slow
def test_resume_after_the_grid_changed_runs_only_the_new_trials(workdir):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0]\nsweep: {name: grows}\n")
    assert run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=workdir).returncode == 0
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0, 3.0]\nsweep: {name: grows}\n")
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs", "--resume"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "resume: 2 trials already done, 1 to run" in proc.stdout
    runs = file_runs(workdir / "runs")
    assert sorted(r["config"]["x"] for r in runs) == [1.0, 2.0, 3.0]
    assert {r["meta"]["sweep"]["trial"] for r in runs if r["config"]["x"] == 3.0} == {2}


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_leaves_nothing_running(workdir):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0]\nfixed: {sleep: 60.0, stubborn: true}\nsweep: {name: stuck}\n")
    proc = _start_sweep(workdir)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len([r for r in file_runs(workdir / "runs") if r["status"] == "RUNNING"]) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.5)  # the trials ignore the interrupt; the driver would wait out its grace period
    second = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - second < 8
    runs = file_runs(workdir / "runs")
    assert len(runs) == 2 and {r["status"] for r in runs} == {"INTERRUPTED"}


@pytest.mark.slow
def test_a_stop_that_arrives_after_a_run_ended_does_not_interrupt_the_next_run(ray_session):
    import ray

    from sacred_ray.worker.runner import _interruptible, _restore_sigint

    @ray.remote
    class Worker:
        def pid(self):
            return os.getpid()

        def run(self, seconds):
            previous = _interruptible()
            try:
                time.sleep(seconds)
                return "finished"
            except KeyboardInterrupt:
                return "interrupted"
            finally:
                _restore_sigint(previous)

    worker = Worker.remote()
    pid = ray.get(worker.pid.remote())
    os.kill(pid, signal.SIGINT)  # a stop for a run that already ended: blocked, pending
    time.sleep(0.3)
    assert ray.get(worker.run.remote(0.5)) == "finished"
    run = worker.run.remote(5.0)  # while a run executes, a stop does interrupt it
    time.sleep(1.0)
    os.kill(pid, signal.SIGINT)
    assert ray.get(run) == "interrupted"
    ray.kill(worker)
