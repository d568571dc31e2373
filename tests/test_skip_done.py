"""Never run a finished config twice: --skip-done across sweeps and a run made alone (file
storage and MongoDB), a changed source not skipped, keys that do not matter, --dry-run's
count, and --rerun failed; all through the experiment's own command line."""

import json
import os

import pytest
from conftest import run_cli, write
from test_faults import file_runs, ledger

import sacred_ray

pytestmark = pytest.mark.slow  # every test here starts Ray or a command line


def cli(workdir, *args, mongo=None):
    env = None
    if mongo is not None:
        from conftest import cli_env

        env = cli_env(MONGO_STATE=str(mongo))
    proc = run_cli(["toy.py", *args], cwd=workdir, timeout=120, env=env,
                   mongo_dump=(workdir / "dump.json") if mongo is not None else None)
    return proc.returncode, proc.stdout + proc.stderr


def completed(runs):
    return [r for r in runs if r["status"] == "COMPLETED"]


def xs(runs):
    return sorted(r["config"]["x"] for r in runs)


@pytest.mark.long
def test_skip_done_across_sweeps_and_a_run_made_alone_in_file_storage(workdir):
    code, out = cli(workdir, "with", "x=2.0", "-F", "runs")  # a plain Sacred run, no sweep
    assert code == 0, out
    write(workdir / "first.yaml", "grid: {x: [1.0, 3.0]}\nsweep: {name: first}\n")
    code, out = cli(workdir, "ray_sweep", "with", "first.yaml", "-F", "runs")
    assert code == 0, out
    assert xs(file_runs(workdir / "runs")) == [1.0, 2.0, 3.0]

    write(workdir / "wider.yaml", "grid: {x: [1.0, 2.0, 3.0, 4.0]}\nsweep: {name: wider}\n")
    code, out = cli(workdir, "ray_sweep", "with", "wider.yaml", "-F", "runs", "--skip-done", "--dry-run")
    assert code == 0, out
    assert "skip-done: 3 of 4 trials already COMPLETED" in out, out
    assert os.path.join("runs", "1") in out  # where the run made alone is
    assert len(file_runs(workdir / "runs")) == 3  # a dry run runs nothing
    assert not (workdir / "sweeps" / "wider").exists()

    code, out = cli(workdir, "ray_sweep", "with", "wider.yaml", "-F", "runs", "--skip-done")
    assert code == 0, out
    runs = file_runs(workdir / "runs")
    assert xs(runs) == [1.0, 2.0, 3.0, 4.0]  # only x=4 ran
    assert [r["meta"]["sweep"]["name"] for r in runs if r["config"]["x"] == 4.0] == ["wider"]
    assert out.count(" SKIPPED ") == 3, out  # three rows of the end table
    assert "4 trials: 1 COMPLETED, 3 SKIPPED" in out, out
    skipped = {e["index"]: e for e in ledger(workdir / "sweeps" / "wider") if e["status"] == "SKIPPED"}
    assert {e["done_in"]["sweep"] for e in skipped.values()} == {None, "first"}
    by_x = {e["config"]["x"]: e for e in skipped.values()}
    assert by_x[2.0]["done_in"]["run_id"] == 1 and by_x[2.0]["result"] == 0.0  # the result of the run that holds it

    frame = sacred_ray.load_sweep(str(workdir / "sweeps" / "wider"))
    assert sorted(frame["status"]) == ["COMPLETED", "SKIPPED", "SKIPPED", "SKIPPED"]
    row = frame[frame["x"] == 2.0].iloc[0]
    assert row["run_id"] == 1 and row["done_in"] == os.path.join("runs", "1")

    # --resume of a sweep with skipped trials runs none of them
    code, out = cli(workdir, "ray_sweep", "with", "wider.yaml", "-F", "runs", "--resume")
    assert code == 0, out
    assert "nothing to run" in out and len(file_runs(workdir / "runs")) == 4, out


@pytest.mark.long
def test_same_config_given_differently_and_ignored_keys_are_skipped(workdir):
    code, out = cli(workdir, "with", "x=2.0", "-F", "runs")
    assert code == 0, out
    # y=0 is the default and big sets y=10: these trials' configs are the earlier runs' ones
    write(workdir / "more.yaml", "fixed: {y: 0, sleep: 0.01}\ngrid: {x: [2.0, 5.0]}\n"
                                 "sweep: {name: more, skip_done: true, skip_ignore: [sleep]}\n")
    code, out = cli(workdir, "ray_sweep", "with", "more.yaml", "-F", "runs")
    assert code == 0, out
    assert "skip-done: 1 of 2 trials already COMPLETED" in out, out
    assert xs(file_runs(workdir / "runs")) == [2.0, 5.0]
    # without the ignored key the sleep makes it another config than the run made alone
    write(workdir / "strict.yaml", "fixed: {y: 0, sleep: 0.01}\ngrid: {x: [2.0]}\n"
                                   "sweep: {name: strict, skip_done: true}\n")
    code, out = cli(workdir, "ray_sweep", "with", "strict.yaml", "-F", "runs")
    assert code == 0, out
    assert "none of the 1 trials" in out, out
    write(workdir / "named.yaml", "grid: {x: [2.0], y: [10]}\nsweep: {name: named, skip_done: true}\n")
    code, out = cli(workdir, "ray_sweep", "with", "named.yaml", "big", "-F", "runs")
    assert code == 0, out
    assert "none of the 1 trials" in out, out  # nothing ran with y=10 yet: it runs
    code, out = cli(workdir, "ray_sweep", "with", "named.yaml", "-F", "runs", "--skip-done")
    assert code == 0, out
    assert "skip-done: 1 of 1 trials already COMPLETED" in out, out  # y=10 given, or by `big`: one config
    assert len(file_runs(workdir / "runs")) == 4


def test_a_changed_source_is_not_the_same_run(workdir):
    write(workdir / "grid.yaml", "grid: {x: [1.0, 3.0]}\nsweep: {name: code}\n")
    code, out = cli(workdir, "ray_sweep", "with", "grid.yaml", "-F", "runs")
    assert code == 0, out
    with open(workdir / "toy.py", "a") as f:
        f.write("\n# the model changed\n")
    code, out = cli(workdir, "ray_sweep", "with", "grid.yaml", "-F", "runs", "--skip-done")
    assert code == 0, out
    assert "none of the 2 trials has a COMPLETED run with this config and source" in out, out
    assert len(completed(file_runs(workdir / "runs"))) == 4


def test_skip_done_in_mongodb_across_processes(workdir):
    state = workdir / "mongo-state.json"
    code, out = cli(workdir, "with", "x=2.0", "-m", "localhost:27017:sweeps", mongo=state)
    assert code == 0, out
    write(workdir / "first.yaml", "grid: {x: [1.0, 3.0]}\nsweep: {name: first}\n")
    code, out = cli(workdir, "ray_sweep", "with", "first.yaml", "-m", "localhost:27017:sweeps", mongo=state)
    assert code == 0, out
    write(workdir / "wider.yaml", "grid: {x: [1.0, 2.0, 3.0, 4.0]}\nsweep: {name: wider}\n")
    code, out = cli(workdir, "ray_sweep", "with", "wider.yaml", "-m", "localhost:27017:sweeps", "--skip-done",
                    mongo=state)
    assert code == 0, out
    assert "skip-done: 3 of 4 trials already COMPLETED" in out, out
    with open(workdir / "dump.json") as f:
        runs = json.load(f)["sweeps"]["runs"]
    assert sorted(r["config"]["x"] for r in runs) == [1.0, 2.0, 3.0, 4.0]
    assert [r["meta"]["sweep"]["name"] for r in runs if r["config"]["x"] == 4.0] == ["wider"]
    assert "experiment.name_1_status_1" in json.load(open(workdir / "dump.json"))["sweeps"]["indexes"]

    # an ended sweep's status from its runs in MongoDB, by address and name
    code, out = cli(workdir, "sweep_status", "localhost:27017:sweeps", "first", mongo=state)
    assert code == 0 and "sweep 'first'" in out and "2 COMPLETED" in out and "no run RUNNING" in out, out
    assert "best so far: trial" in out and "result -1" in out, out  # x=1 and x=3 both end at -1
    code, out = cli(workdir, "sweep_status", "localhost:27017:sweeps", "nothing-like-it", mongo=state)
    assert code == 2 and "no runs of a sweep of this name" in out, out


def test_rerun_failed_runs_only_the_failed_trials(workdir):
    # x=3 fails its first attempt (counted in flaky/), the others complete
    (workdir / "flaky").mkdir()
    write(workdir / "grid.yaml", f"fixed: {{flaky_dir: {str(workdir / 'flaky')!r}}}\n"
                                 "zip: {x: [1.0, 2.0, 3.0], flaky_failures: [0, 0, 1]}\n"
                                 "sweep: {name: flaky}\n")
    code, out = cli(workdir, "ray_sweep", "with", "grid.yaml", "-F", "runs")
    assert code == 1, out
    before = file_runs(workdir / "runs")
    assert [r["status"] for r in before].count("FAILED") == 1
    code, out = cli(workdir, "ray_sweep", "with", "grid.yaml", "-F", "runs", "--rerun", "failed")
    assert code == 0, out
    assert "rerun failed: 1 trial(s) FAILED, INTERRUPTED or TIMEOUT to run" in out, out
    runs = file_runs(workdir / "runs")
    assert len(runs) == len(before) + 1
    assert runs[-1]["status"] == "COMPLETED" and runs[-1]["config"]["flaky_failures"] == 1
    code, out = cli(workdir, "ray_sweep", "with", "grid.yaml", "-F", "runs", "--rerun", "everything")
    assert code == 2 and "--rerun" in out and "failed" in out and "Traceback" not in out, out


def test_bad_skip_settings_get_one_line_and_exit_2(workdir):
    write(workdir / "typo.yaml", "grid: {x: [1.0]}\nsweep: {name: typo, skip_done: true, skip_ignore: [slep]}\n")
    code, out = cli(workdir, "ray_sweep", "with", "typo.yaml", "-F", "runs")
    assert code == 2 and "sweep: skip_ignore" in out and "did you mean 'sleep'" in out, out
    write(workdir / "kind.yaml", "grid: {x: [1.0]}\nsweep: {name: kind, skip_done: yes please}\n")
    code, out = cli(workdir, "ray_sweep", "with", "kind.yaml", "-F", "runs")
    assert code == 2 and "sweep: skip_done" in out and "true or false" in out, out
    write(workdir / "space.yaml", "space: {x: {uniform: [0, 4]}}\ntune: {metric: loss, mode: min, num_samples: 1,"
                                  " skip_ignore: [slep]}\n")
    code, out = cli(workdir, "tune_with", "space.yaml", "-F", "runs", "--skip-done")
    assert code == 2 and "tune: skip_ignore" in out and "did you mean 'sleep'" in out, out
    write(workdir / "space.yaml", "space: {x: {uniform: [0, 4]}}\ntune: {metric: loss, mode: min, num_samples: 1}\n")
    code, out = cli(workdir, "tune_with", "space.yaml", "-F", "runs", "--rerun", "failed")
    assert code == 2 and "--rerun" in out and "ray_sweep" in out and "--resume" in out, out
    assert "Traceback" not in out
    assert not (workdir / "runs").exists() or not os.listdir(workdir / "runs")


@pytest.mark.long
def test_trials_handed_to_a_running_skip_done_sweep_are_skipped_when_an_earlier_run_holds_them(workdir):
    from test_campaign import start, status, wait_for

    code, out = cli(workdir, "with", "x=2.0", "-F", "runs")
    assert code == 0, out
    grid = "sweep: {{name: live, skip_done: true, skip_ignore: [sleep]}}\ngrid:\n  x: [{xs}]\n  sleep: [6.0]\n"
    write(workdir / "grid.yaml", grid.format(xs="7.0"))
    folder = str(workdir / "sweeps" / "live")
    driver = start(workdir, "ray_sweep", "grid.yaml")
    try:
        wait_for(lambda: status(folder).get("running"), "the running trial")
        write(workdir / "grid.yaml", grid.format(xs="7.0, 2.0, 9.0"))
        code, out = cli(workdir, "ray_sweep", "grid.yaml", "-F", "runs")
        assert code == 0 and "added 2 trial(s) (#1-#2, 1 of them SKIPPED" in out, out
        driver.wait(timeout=120)
        log = driver.stdout.read()
    finally:
        driver.kill()
    assert driver.returncode == 0, log
    assert xs(file_runs(workdir / "runs")) == [2.0, 7.0, 9.0]  # x=2 ran once, alone
    entries = {e["index"]: e for e in ledger(workdir / "sweeps" / "live") if "control" not in e}
    assert entries[1]["status"] == "SKIPPED" and entries[1]["done_in"]["run_id"] == 1
    assert "3 trials: 2 COMPLETED, 1 SKIPPED" in log, log


def test_a_search_gives_tune_the_result_of_an_earlier_run_of_a_sampled_config_instead_of_running_it(workdir):
    code, out = cli(workdir, "with", "x=2.0", "-F", "runs")  # a plain Sacred run: its last loss is 1/3
    assert code == 0, out
    space = "space: {{x: {{grid: [1.0, 2.0, 3.0]}}}}\ntune: {{name: {name}, metric: loss, mode: min, num_samples: 1{more}}}\n"
    write(workdir / "space.yaml", space.format(name="first", more=""))
    code, out = cli(workdir, "tune_with", "space.yaml", "-F", "runs", "--skip-done", "--dry-run")
    assert code == 0 and "skip-done: 1 COMPLETED run(s) of this experiment and source" in out, out
    assert len(file_runs(workdir / "runs")) == 1  # a dry run runs nothing

    code, out = cli(workdir, "tune_with", "space.yaml", "-F", "runs", "--skip-done")
    assert code == 0, out
    runs = file_runs(workdir / "runs")
    assert xs(runs) == [1.0, 2.0, 3.0] and len(runs) == 3  # x=2 did not run again
    entries = [e for e in ledger(workdir / "sweeps" / "first") if "control" not in e]
    (skipped,) = [e for e in entries if e["status"] == "SKIPPED"]
    assert skipped["done_in"]["run_id"] == 1 and skipped["done_in"]["sweep"] is None
    assert skipped["trial_id"] and skipped["metrics"]["loss"] == pytest.approx(1 / 3)
    assert sorted(e["status"] for e in entries) == ["COMPLETED", "COMPLETED", "SKIPPED"]
    # Tune ranked the earlier run's loss with the rest: it is the best, and the table says where it is
    assert "best: trial" in out and "done before: " + os.path.join("runs", "1") in out, out
    assert out.count(" SKIPPED ") == 1, out

    # a second search of the same grid (skip_done in its file) runs nothing at all
    write(workdir / "space.yaml", space.format(name="second", more=", skip_done: true"))
    code, out = cli(workdir, "tune_with", "space.yaml", "-F", "runs")
    assert code == 0, out
    assert len(file_runs(workdir / "runs")) == 3
    assert sorted(e["status"] for e in ledger(workdir / "sweeps" / "second")) == ["SKIPPED"] * 3
