"""What a worker process works out once for all its trials: host info and the next run folder.

The sweeps in test_sweep_cli.py check the recorded runs end to end (their host info is
Sacred's own, their folders distinct); these pin down what those cannot show: how often
the machine is asked, and how a folder that others fill at the same time is numbered.
"""

import datetime
import json
import os
import shutil
import subprocess

import pytest
from sacred import SETTINGS, host_info
from sacred.observers import FileStorageObserver

from sacred_ray.worker import local


@pytest.fixture
def own_getters(monkeypatch):
    """Sacred's getter list, as this test leaves it, restored afterwards."""
    monkeypatch.setattr(host_info, "_host_info_gatherers_list", list(host_info._host_info_gatherers_list))


@pytest.fixture
def subprocesses(monkeypatch):
    """Every command Sacred's host info runs from here on."""
    ran = []
    real = subprocess.check_output

    def counting(cmd, *args, **kwargs):
        ran.append(cmd[0])
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "check_output", counting)
    return ran


@pytest.mark.slow
def test_the_machine_is_asked_once_and_the_answers_are_sacreds(own_getters, subprocesses):
    alone = host_info.get_host_info()
    asked_alone = len(subprocesses)
    assert asked_alone >= 1  # `cat /proc/cpuinfo` at least: what a run alone costs every time
    local.remember_host_info()
    local.remember_host_info()  # a second trial in the same process: still wrapped once
    runs = [host_info.get_host_info() for _ in range(3)]
    assert runs == [alone] * 3
    assert len(subprocesses) == 2 * asked_alone  # the first run asked, the next two did not


@pytest.mark.slow
def test_environment_and_the_experiments_own_getters_are_read_every_run(own_getters, monkeypatch):
    monkeypatch.setattr(SETTINGS.HOST_INFO, "CAPTURED_ENV", ["SACRED_RAY_TEST_VAR"])
    calls = []
    mine = host_info.HostInfoGetter(lambda: calls.append(1) or len(calls), "trial_count")
    local.remember_host_info()
    monkeypatch.setenv("SACRED_RAY_TEST_VAR", "first")
    first = host_info.get_host_info([mine])
    monkeypatch.setenv("SACRED_RAY_TEST_VAR", "second")
    second = host_info.get_host_info([mine])
    assert (first["ENV"], second["ENV"]) == ({"SACRED_RAY_TEST_VAR": "first"}, {"SACRED_RAY_TEST_VAR": "second"})
    assert (first["trial_count"], second["trial_count"]) == (1, 2)


def test_a_changed_sacred_setting_is_honoured(own_getters, monkeypatch):
    local.remember_host_info()
    assert host_info.get_host_info()["cpu"]
    monkeypatch.setattr(SETTINGS.HOST_INFO, "INCLUDE_CPU_INFO", False)
    assert host_info.get_host_info()["cpu"] is None  # as Sacred records it with the setting off


def start(observer, x):
    observer = local.local_copy(observer)
    run_id = observer.started_event(
        ex_info={"name": "t", "base_dir": observer.basedir, "sources": [], "dependencies": [], "repositories": [],
                 "mainfile": None},
        command="main", host_info={"hostname": "h"}, start_time=datetime.datetime.utcnow(),
        config={"x": x}, meta_info={}, _id=None)
    local.made_run_folder(observer)
    return run_id


def test_a_worker_numbers_runs_after_its_last_and_skips_folders_others_made(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "_last_run_folder", {})
    runs = tmp_path / "runs"
    for name in ("1", "2", "notes"):
        (runs / name).mkdir(parents=True)
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed.append(path) or real_listdir(path))
    prototype = FileStorageObserver(str(runs))
    assert start(prototype, 1) == "3"  # the first run of this process looks, as Sacred does
    assert len(listed) == 1
    (runs / "4").mkdir()  # two runs another worker started meanwhile
    (runs / "5").mkdir()
    assert start(FileStorageObserver(str(runs)), 2) == "6"
    assert start(FileStorageObserver(str(runs)), 3) == "7"
    assert len(listed) == 1  # never listed again
    for run_id, x in ((3, 1), (6, 2), (7, 3)):
        assert json.loads((runs / str(run_id) / "config.json").read_text()) == {"x": x}


def test_a_subclass_numbers_its_runs_its_own_way(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "_last_run_folder", {os.path.abspath(tmp_path): 41})

    class Mine(FileStorageObserver):
        pass

    observer = local.local_copy(Mine(str(tmp_path)))
    assert type(observer) is Mine  # copied as it is: its own numbering, its own writing


def test_a_worker_writes_each_json_file_whole(tmp_path, monkeypatch):
    """A worker killed while it writes leaves the run's files as they were, never cut short
    (Sacred's own write empties run.json first)."""
    monkeypatch.setattr(local, "_last_run_folder", {})
    observer = local.local_copy(FileStorageObserver(str(tmp_path)))
    observer.started_event(ex_info={"name": "t", "base_dir": str(tmp_path), "sources": [], "dependencies": [],
                                    "repositories": [], "mainfile": None}, command="main", host_info={"hostname": "h"},
                           start_time=datetime.datetime.utcnow(), config={"x": 1}, meta_info={}, _id=None)
    run_json = tmp_path / "1" / "run.json"
    before = run_json.read_text()
    real_dump = json.dump

    def killed_midway(obj, f, **kwargs):
        f.write("{")
        raise KeyboardInterrupt  # the process goes down in the middle of the write

    monkeypatch.setattr(json, "dump", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        observer.save_json({"status": "INTERRUPTED"}, "run.json")
    monkeypatch.setattr(json, "dump", real_dump)
    assert run_json.read_text() == before  # untouched
    observer.save_json({"status": "INTERRUPTED"}, "run.json")
    assert json.loads(run_json.read_text()) == {"status": "INTERRUPTED"}


def test_a_worker_far_behind_the_others_looks_instead_of_stepping(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "_last_run_folder", {})
    runs = tmp_path / "runs"
    assert start(FileStorageObserver(str(runs)), 1) == "1"
    for i in range(2, 1503):  # the other workers' runs while this one ran a long trial
        (runs / str(i)).mkdir()
    assert start(FileStorageObserver(str(runs)), 2) == "1503"  # Sacred alone gives up after 1000
    assert start(FileStorageObserver(str(runs)), 3) == "1504"


@pytest.mark.slow
def test_a_cleared_runs_folder_numbers_from_one_again(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "_last_run_folder", {})
    runs = tmp_path / "runs"
    assert start(FileStorageObserver(str(runs)), 1) == "1"
    assert start(FileStorageObserver(str(runs)), 2) == "2"
    shutil.rmtree(runs)  # the user cleared it between two sweeps; the worker process lives on
    assert start(FileStorageObserver(str(runs)), 3) == "1"  # as Sacred numbers a fresh folder


@pytest.mark.slow
@pytest.mark.parametrize("driver_alive", [False, True])
def test_the_guard_closes_a_dead_workers_open_run_only_when_its_driver_is_gone_too(tmp_path, driver_alive):
    """A SIGKILLed driver's local Ray can take its worker down before the worker writes the run's
    INTERRUPTED end: the guard beside the worker writes it once the worker's pipe ends, unless the
    driver lives (then a dead worker's trial restarts in the same run, and the driver records it)."""
    import json
    import subprocess
    import sys

    from sacred_ray.worker.guard import RunGuard

    if driver_alive:
        driver = os.getpid()
    else:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        driver = gone.pid
    for run in ("1", "2"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "run.json").write_text(json.dumps({"status": "RUNNING"}))
    guard = RunGuard(driver)
    guard.tell("open", str(tmp_path / "1"))
    guard.tell("open", str(tmp_path / "2"))
    guard.tell("close", str(tmp_path / "2"))  # run 2 ended as the worker recorded it
    guard.close()  # as the worker's end closes the pipe
    assert guard.proc.wait(timeout=60) == 0
    first = json.loads((tmp_path / "1" / "run.json").read_text())
    if driver_alive:
        assert first == {"status": "RUNNING"} and not (tmp_path / "1" / "info.json").exists()
    else:
        assert first["status"] == "INTERRUPTED" and first["stop_time"]
        info = json.loads((tmp_path / "1" / "info.json").read_text())
        assert info["sacred_ray"]["stop_reason"] == "the sweep's driver went away"
    assert json.loads((tmp_path / "2" / "run.json").read_text()) == {"status": "RUNNING"}  # closed: not touched
