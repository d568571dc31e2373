"""What must never happen, tried through the real command line: a sweep that hangs on a
message it cannot read, a result that loses the end report, a folder that is not a sweep's
moved or written over."""

import csv
import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import EXPERIMENTS, cli_env, read_dump, run_cli, write
from test_faults import file_runs, ledger

pytestmark = pytest.mark.slow  # every test here starts Ray or a command line


def own_types(tmp_path):
    shutil.copy(os.path.join(EXPERIMENTS, "own_types.py"), tmp_path / "own_types.py")
    return tmp_path


def _without_volatile(run):
    keep = ("config", "result", "status")
    out = {k: run[k] for k in keep}
    out["config"] = {k: v for k, v in out["config"].items() if k != "seed"}
    return out


def test_classes_of_the_experiment_cross_to_the_drivers_observers_as_they_do_alone(tmp_path):
    """An Enum in the config, a dataclass result, an unpicklable info value, with -m: the
    driver used to drop the start message and the sweep hung forever."""
    work = own_types(tmp_path)
    write(work / "grid.yaml", "grid:\n  x: [1.0, 2.0]\nsweep: {timeout: 120}\n")
    dump = tmp_path / "sweep.json"
    proc = run_cli(["own_types.py", "ray_sweep", "grid.yaml", "-m", "localhost:27017:sweeps"], cwd=work,
                   mongo_dump=dump, timeout=180)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    runs = {r["config"]["x"]: r for r in read_dump(dump, "sweeps")["runs"]}
    assert sorted(runs) == [1.0, 2.0] and {r["status"] for r in runs.values()} == {"COMPLETED"}

    alone_dump = tmp_path / "alone.json"
    alone = run_cli(["own_types.py", "with", "x=2.0", "-m", "localhost:27017:sweeps"], cwd=work,
                    mongo_dump=alone_dump)
    assert alone.returncode == 0, alone.stderr
    (run_alone,) = read_dump(alone_dump, "sweeps")["runs"]
    # config (the Enum), result (the dataclass) and info as the run alone records them
    assert _without_volatile(runs[2.0]) == _without_volatile(run_alone)
    assert "__main__.Optimizer" in json.dumps(runs[2.0]["config"])
    assert runs[2.0]["info"]["best"] == run_alone["info"]["best"]
    assert runs[2.0]["info"]["lock"] == run_alone["info"]["lock"]


def test_a_result_too_large_for_a_float_still_gives_the_report_and_summary(tmp_path):
    work = own_types(tmp_path)
    write(work / "grid.yaml", "grid:\n  x: [1.0, 2.0]\n  huge: [true]\nsweep: {name: huge}\n")
    proc = run_cli(["own_types.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "2 trials: 2 COMPLETED" in proc.stdout
    with open(work / "sweeps" / "huge" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
    for name in os.listdir(work / "runs"):
        if name.isdigit():
            run = json.loads((work / "runs" / name / "run.json").read_text())
            assert run["status"] == "COMPLETED" and run["result"] == 10**400


def test_an_unreadable_start_fails_that_trial_with_the_reason_and_the_sweep_goes_on(tmp_path):
    """A value of a class the driver cannot import (here: a module only the workers have)."""
    work = own_types(tmp_path)
    hidden = tmp_path / "worker_only"
    hidden.mkdir()
    write(hidden / "elsewhere.py", "class Thing:\n    def __init__(self, v):\n        self.v = v\n")
    write(work / "exp.py", '''
import os, sys
from sacred import Experiment
import sacred_ray  # noqa: F401

ex = Experiment("hidden")

@ex.config
def config():
    x = 1.0

@ex.automain
@ex.distribute(num_cpus=1)
def main(x, _run):
    if x > 1 and "WORKER_ONLY" in os.environ:
        sys.path.insert(0, os.environ["WORKER_ONLY"])
        import elsewhere
        _run.info["thing"] = elsewhere.Thing(x)
        _run.log_scalar("loss", 1.0, 0)
        import time; time.sleep(1.5)  # past the first second: heartbeats are relayed live
    return x
''')
    write(work / "grid.yaml", "grid:\n  x: [1.0, 2.0]\nsweep: {timeout: 60}\n")
    dump = tmp_path / "m.json"
    env = dict(os.environ, RAY_ADDRESS="local", PYTHONUNBUFFERED="1", WORKER_ONLY=str(hidden))
    proc = run_cli(["exp.py", "ray_sweep", "grid.yaml", "-m", "localhost:27017:sweeps", "-b", "0.2"], cwd=work,
                   mongo_dump=dump, env=env, timeout=180)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    runs = {r["config"]["x"]: r for r in read_dump(dump, "sweeps")["runs"]}
    assert runs[1.0]["status"] == "COMPLETED"
    assert runs[2.0]["status"] == "FAILED"
    assert "could not read the trial's heartbeat message" in "".join(runs[2.0]["fail_trace"])
    assert "elsewhere" in "".join(runs[2.0]["fail_trace"])


def test_a_trial_stuck_before_its_run_starts_still_times_out(workdir):
    """The timeout counts from when a worker takes the trial, not from the run's start: a
    config that never finishes (or a start that is never answered) cannot hang the sweep."""
    write(workdir / "slow_config.py", '''
import time
from sacred import Experiment
import sacred_ray  # noqa: F401

ex = Experiment("slow_config")

@ex.config
def config():
    x = 1.0
    if x > 1:
        time.sleep(120)

@ex.automain
@ex.distribute(num_cpus=1)
def main(x):
    return x
''')
    # 10 s: the quick trial's worker start and imports fit in it on a loaded machine (4 s did not)
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0]\nsweep: {timeout: 10}\n")
    import time

    began = time.monotonic()
    proc = run_cli(["slow_config.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=workdir, timeout=100)
    assert time.monotonic() - began < 60
    assert proc.returncode == 1, proc.stderr
    ledger = [json.loads(line) for line in (workdir / "sweeps" / "grid" / "ledger.jsonl").read_text().splitlines()]
    by_key = {e["index"]: e for e in ledger}
    assert by_key[0]["status"] == "COMPLETED"
    assert by_key[1]["status"] == "TIMEOUT" and "timed out after 10s" in by_key[1]["error"]


def test_an_experiment_started_with_python_m_imports_as_a_module_on_the_workers(tmp_path):
    """Relative imports work on the workers as they do for `python -m pkg.exp` alone."""
    import subprocess
    import sys

    from conftest import cli_env

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    write(pkg / "__init__.py", "")
    write(pkg / "helpers.py", "OFFSET = 100.0\n")
    write(pkg / "exp.py", '''
from sacred import Experiment
import sacred_ray  # noqa: F401

from .helpers import OFFSET

ex = Experiment("packaged")

@ex.config
def config():
    x = 1.0

@ex.automain
@ex.distribute(num_cpus=1)
def main(x):
    return x + OFFSET
''')
    write(tmp_path / "grid.yaml", "grid:\n  x: [1.0, 2.0]\n")
    proc = subprocess.run([sys.executable, "-m", "pkg.exp", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, env=cli_env())
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = sorted(json.loads((tmp_path / "runs" / n / "run.json").read_text())["result"]
                     for n in os.listdir(tmp_path / "runs") if n.isdigit())
    assert results == [101.0, 102.0]


@pytest.mark.long
def test_a_second_sweep_of_the_same_name_while_the_first_runs_hands_it_over_or_is_refused(workdir):
    """Two sweeps of one name at once used to lose the first one's summary. The same ray_sweep
    again hands its trials to the running one (all are in it: nothing to add); a tune_with of
    that name is refused."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import cli_env

    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0]\nfixed: {sleep: 4.0}\nsweep: {name: busy}\n")
    first = subprocess.Popen([sys.executable, "toy.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=workdir,
                             env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        marker = workdir / "sweeps" / "busy" / ".sacred-ray-sweep"
        status = workdir / "sweeps" / "busy" / "status.json"
        deadline = time.monotonic() + 60
        while not (marker.exists() and "in use by pid" in marker.read_text() and status.exists()) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        second = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=workdir)
        assert second.returncode == 0, second.stderr
        assert f"the sweep 'busy' is running (pid {first.pid}): nothing to add: all 2 trial(s) are in the sweep " \
               "already" in second.stdout
        write(workdir / "space.yaml", "space:\n  x: {uniform: [0, 1]}\ntune: {name: busy, metric: loss, num_samples: 1}\n")
        third = run_cli(["toy.py", "tune_with", "space.yaml", "-F", "runs"], cwd=workdir)
        assert third.returncode == 2
        assert third.stderr.startswith("error: sweep folder: ") and "is in use by another sweep that is still running" \
            f" (pid {first.pid})" in third.stderr, third.stderr
        assert len(third.stderr.strip().splitlines()) == 1
    finally:
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert "2 trials: 2 COMPLETED" in out
    with open(workdir / "sweeps" / "busy" / "summary.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["COMPLETED", "COMPLETED"]
    third = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=workdir)  # free again once it ended
    assert third.returncode == 0, third.stderr
    assert "was moved to sweeps/busy." in third.stdout


def test_resume_of_a_sweep_that_never_ran_says_so_and_unobserved_is_a_warning(workdir):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0]\nsweep: {name: fresh}\n")
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-F", "runs", "--resume", "-u"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "resume: there is no earlier sweep 'fresh' in sweeps/fresh; starting it from the beginning" in proc.stdout
    assert "warning: ignoring -u: a sweep's trials are recorded by the observers you give" in proc.stderr
    assert "2 trials: 2 COMPLETED" in proc.stdout


def test_code_after_run_commandline_runs_as_after_sacreds_own_commands(tmp_path):
    """The old style, `ex.run_commandline()` then more code: the sweep returns its result."""
    write(tmp_path / "old_style.py", '''
from sacred import Experiment
import sacred_ray

ex = Experiment("old_style")
sacred_ray.distribute(ex)

@ex.config
def config():
    x = 1.0

@ex.main
def main(x):
    if x > 1:
        raise ValueError("too big")
    return x

if __name__ == "__main__":
    result = ex.run_commandline()
    if hasattr(result, "results"):
        print("after the sweep:", type(result).__name__, result.exit_code, sorted(r.status for r in result.results))
    else:
        print("after the run:", type(result).__name__)
''')
    write(tmp_path / "grid.yaml", "grid:\n  x: [0.5, 1.0]\n")
    proc = run_cli(["old_style.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "after the sweep: SweepResult 0 ['COMPLETED', 'COMPLETED']" in proc.stdout
    # as after a Sacred run that failed, a sweep that did not complete ends the script: exit 1
    write(tmp_path / "grid.yaml", "grid:\n  x: [1.0, 2.0]\n")
    failed = run_cli(["old_style.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    assert "after the sweep" not in failed.stdout and "Traceback" not in failed.stderr
    alone = run_cli(["old_style.py", "with", "x=1.0"], cwd=tmp_path)  # Sacred's own command, as before
    assert alone.returncode == 0 and "after the run: Run" in alone.stdout


@pytest.mark.long(3)
def test_a_million_values_logged_just_before_the_end_all_reach_the_observers(tmp_path):
    """Sacred waits 2 s for a run's last heartbeat: with a million values in it the run was
    COMPLETED first, its metrics.json cut short when the sweep's end stopped the worker, and the
    ledger's metrics empty."""
    shutil.copy(os.path.join(EXPERIMENTS, "burst.py"), tmp_path / "burst.py")
    write(tmp_path / "g.yaml", "grid:\n  n: [1000000]\n")
    proc = run_cli(["burst.py", "ray_sweep", "with", "g.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.load(open(tmp_path / "runs" / "1" / "metrics.json"))
    assert len(metrics["loss"]["steps"]) == 1_000_000 and metrics["loss"]["values"][-1] == 1e-06
    (entry,) = ledger(tmp_path / "sweeps" / "g")
    assert entry["metrics"] == {"loss": 1e-06} and entry["steps"] == {"loss": 1_000_000}


@pytest.mark.parametrize("command,spec", [
    ("ray_sweep", "grid:\n  a: [1, 2, 3, 4, 5, 6]\n"),
    ("tune_with", "space:\n  a: {grid: [1, 2, 3, 4, 5, 6]}\ntune: {num_samples: 1}\n"),
])
def test_every_trials_captured_output_has_sacreds_and_the_experiments_log_lines(tmp_path, command, spec):
    """Sacred's ingredient.py example: the first run each worker process ran lacked Sacred's
    INFO lines and the _log line (logging's handler was made after it had been redirected)."""
    shutil.copy(os.path.join(EXPERIMENTS, "ingredient.py"), tmp_path / "ingredient.py")
    write(tmp_path / "s.yaml", spec)
    proc = run_cli(["ingredient.py", command, "with", "s.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the lines `python ingredient.py with a=1 -F alone` has in its cout.txt (Sacred's fd capture)
    expected = ["INFO - my_experiment - Running command 'run'", "INFO - my_experiment - Started run with ID",
                "loading dataset from 'my_dataset.npy'", "INFO - dataset.load_data - reading my_dataset.npy",
                "normalizing dataset", "data=1", "INFO - my_experiment - Completed after"]
    runs = [d for d in os.listdir(tmp_path / "runs") if d.isdigit()]
    assert len(runs) == 6
    for run in runs:
        out = (tmp_path / "runs" / run / "cout.txt").read_text()
        assert [line for line in expected if line not in out] == [], (run, out)


@pytest.mark.parametrize("command,spec", [
    ("ray_sweep", "grid:\n  n: [3, 5]\n"),
    ("tune_with", "space:\n  n: {choice: [3, 5]}\ntune: {metric: result, mode: max, num_samples: 2}\n"),
])
def test_sacreds_captured_out_filter_example_reads_the_sweep_as_a_run(tmp_path, command, spec):
    """Sacred's own example does ``run = ex.run_commandline()`` and prints ``run.captured_out``:
    after a sweep or a search it gets the sweep's end text, and status, result and config
    are the best trial's, as a Run's would be."""
    shutil.copy(os.path.join(EXPERIMENTS, "captured_out_filter.py"), tmp_path / "progress.py")
    with open(tmp_path / "progress.py", "a") as f:
        f.write("    print('status:', run.status, 'result:', run.result, 'config n:', run.config['n'])\n")
    write(tmp_path / "s.yaml", spec)
    proc = run_cli(["progress.py", command, "with", "s.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = proc.stdout.split("Captured output: \n", 1)[1]
    assert "best: trial " in shown and ", result = 5: n=5" in shown  # the sweep's end text
    assert "status: COMPLETED result: 5 config n: 5" in proc.stdout
    assert "AttributeError" not in proc.stderr


def test_the_end_says_why_trials_failed_and_when_nothing_recorded_the_runs(workdir):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0, 7.0]\nsweep: {name: why}\n"
                                 "variants:\n  ok: {}\n  bad: {fixed: {fail: true}, grid: {x: [7.0]}}\n")
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml"], cwd=workdir, env=cli_env(private=True))  # says it starts one
    assert proc.returncode == 1, proc.stderr
    assert "failed: trial 3 (no run): ValueError: boom x=7.0" in proc.stdout, proc.stdout
    assert "best: trial 1 (no observer recorded it: add -F runs or -m)" in proc.stdout
    assert "starting a local Ray (" in proc.stderr


LOG_EXAMPLE = '''
"""Like Sacred's log_example: a logger set up at import, lines logged and printed in the run."""
import logging

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("log_example")
logger = logging.getLogger("my_custom_logger")
handler = logging.StreamHandler()
handler.setFormatter(logging.Formatter("[%(levelname).1s] %(name)s >> %(message)s"))
logger.addHandler(handler)
logger.setLevel(logging.INFO)
ex.logger = logger


@ex.config
def cfg():
    x = 1


@ex.automain
@ex.distribute
def main(x, _log):
    _log.info("logged info x=%s", x)
    print(f"printed x={x}", flush=True)
    return x
'''


def test_a_runs_captured_output_is_what_the_run_alone_captures(tmp_path):
    """Forcing sys capture on workers lost every logging line, Sacred's own included."""
    write(tmp_path / "log_example.py", LOG_EXAMPLE)
    write(tmp_path / "grid.yaml", "grid:\n  x: [1]\n")
    # the reference run alone, again while Sacred's fd capture (a race with its tee process) has
    # caught none of it: a loaded machine (the full suite beside a 50-run loop) saw it empty
    for attempt in range(1, 4):
        alone = run_cli(["log_example.py", "with", "x=1", "-F", "alone"], cwd=tmp_path)
        assert alone.returncode == 0, alone.stderr
        expected = set((tmp_path / "alone" / str(attempt) / "cout.txt").read_text().splitlines())
        if expected:
            break
    swept = run_cli(["log_example.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    # Alone, Sacred's fd capture reads through a tee process and can miss lines written shortly
    # before the run ends (seen: the last print, "Completed after", even a logging line), so the
    # sweep's run holds every line alone captured (stdout and stderr reach fd capture through two
    # pipes: their order may differ) and every line the run writes, and nothing else.
    swept_lines = set((tmp_path / "runs" / "1" / "cout.txt").read_text().splitlines())
    assert expected and expected <= swept_lines
    written = ("Running command 'main'", "Started run with ID", "logged info x=1", "printed x=1", "Completed after",
               "Result: 1")
    assert all(any(mark in line for line in swept_lines) for mark in written), swept_lines
    assert all(any(mark in line for mark in written) for line in swept_lines - expected), swept_lines - expected
    assert any("Completed after" in line for line in swept_lines)
    assert "logged info" not in swept.stdout + swept.stderr  # the trial's output stays in its run


def test_a_dry_run_of_900000_trials_streams_in_flat_memory_and_keeps_lines_short(workdir):
    """--dry-run of a huge grid walks the trials once without holding them (#15.6): the
    900,000-trial dry run stays within a small, fixed amount of memory; the table shows the
    first and last trials, and no line grows with the values (a long fixed list is cut)."""
    write(workdir / "big.yaml", "grid:\n  x: {range: [0, 900]}\n  y: {range: [0, 1000]}\n"
                                f"fixed: {{opt: {{lr: 0.5, momentum: {list(range(3000))}}}}}\n")
    measured = ("import atexit, resource, runpy, sys\n"
                "atexit.register(lambda: print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                "file=sys.stderr))\n"
                "sys.argv = ['toy.py', 'ray_sweep', 'with', 'big.yaml', '--dry-run']\n"
                "runpy.run_path('toy.py', run_name='__main__')\n")
    proc = run_cli(["-c", measured], cwd=workdir, timeout=200)
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(re.search(r"PEAK_KB (\d+)", proc.stderr).group(1)) / 1024
    assert peak_mb < 400, f"{peak_mb:.0f} MB"  # the list of 900,000 trials took 830 MB
    lines = proc.stdout.splitlines()
    assert lines[-1] == "900000 trials"
    assert "... 899,000 more trials" in proc.stdout
    assert lines[-2].split()[:3] == ["899999", "899", "999"]
    assert max(len(line) for line in lines) <= 420  # "every trial: opt.momentum=[0, 1, ..." is cut
    assert any(line.startswith("every trial:") and line.endswith("…") for line in lines)
    # the trials listed are the ones that run: trial i is x = i // 1000, y = i % 1000, with its key
    from sacred_ray.spec.trial import key_digest

    fixed = {"opt.lr": 0.5, "opt.momentum": list(range(3000))}  # the file's keys, dotted
    shown = {int(line.split()[0]): line.split()[1:] for line in lines if line[:1].isdigit() and len(line.split()) == 4}
    assert len(shown) == 1000 and sorted(shown)[-10:] == list(range(899990, 900000))
    for i, (x, y, key) in shown.items():
        assert (int(x), int(y)) == divmod(i, 1000)
        assert key == key_digest({**fixed, "x": i // 1000, "y": i % 1000}, (), None).hex()[:12]


@pytest.fixture
def small_disk(tmp_path):
    """A 12 KiB filesystem (tmpfs): room for a sweep folder's first files, not for its ledger."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_under_the_sweep_folder_stops_the_sweep_cleanly_and_says_so(workdir, small_disk):
    write(workdir / "g.yaml", f"grid:\n  x: {{range: [0, 20]}}\nsweep: {{dir: {small_disk / 's'}}}\n")
    proc = run_cli(["toy.py", "ray_sweep", "with", "g.yaml", "-F", "runs"], cwd=workdir, env=cli_env(private=True))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "the sweep stopped: cannot write" in proc.stdout and "No space left on device" in proc.stdout
    assert "20 trials: " in proc.stdout
    # every trial that ran is recorded, with its status, by the observers
    runs = [json.load(open(workdir / "runs" / d / "run.json")) for d in os.listdir(workdir / "runs") if d.isdigit()]
    assert runs and {r["status"] for r in runs} <= {"COMPLETED", "INTERRUPTED"}
    assert "RUNNING" not in {r["status"] for r in runs}
    # no file of the folder is left cut short
    assert not [f for f in os.listdir(small_disk / "s") if f.endswith(".tmp")]
    assert not (small_disk / "s" / "best.yaml").exists() or (small_disk / "s" / "best.yaml").stat().st_size


def test_after_a_resume_of_an_edited_grid_every_record_numbers_a_trial_alike(workdir):
    """A trial keeps its number across --resume, however the grid was edited: a value put in
    front gets the next free number, not one an earlier trial had (#15.10)."""
    write(workdir / "g.yaml", "grid:\n  x: [1.0, 2.0, 3.0]\n")
    assert run_cli(["toy.py", "ray_sweep", "with", "g.yaml", "-F", "runs"], cwd=workdir).returncode == 0
    write(workdir / "g.yaml", "grid:\n  x: [0.5, 1.0, 2.0, 3.0]\n")
    proc = run_cli(["toy.py", "ray_sweep", "with", "g.yaml", "-F", "runs", "--resume"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    folder = workdir / "sweeps" / "g"
    listed = {json.loads(line)["values"]["x"]: json.loads(line)["index"]
              for line in (folder / "trials.jsonl").read_text().splitlines()}
    assert listed == {1.0: 0, 2.0: 1, 3.0: 2, 0.5: 3}
    ledger = [json.loads(line) for line in (folder / "ledger.jsonl").read_text().splitlines()]
    assert {e["config"]["x"]: e["index"] for e in ledger} == listed
    folders = [workdir / "runs" / d for d in os.listdir(workdir / "runs") if d.isdigit()]
    assert len(folders) == 4  # one run per trial: the three earlier ones were not run again
    by_x = {json.load(open(f / "config.json"))["x"]: json.load(open(f / "run.json"))["meta"]["sweep"]["trial"]
            for f in folders}
    assert by_x == listed
    rows = list(csv.DictReader(open(folder / "summary.csv")))
    assert {float(r["x"]): int(r["index"]) for r in rows} == listed


@pytest.mark.long(2)
def test_failed_trials_reach_the_screen_as_one_line_each_not_as_ray_or_tune_noise(workdir):
    """A worker that dies and a Tune trial that raises are reported by the sweep, a line each:
    Ray's "(raylet) A worker died" paragraph and Tune's traceback per failed trial stay off the
    screen (#15.10)."""
    write(workdir / "die.yaml", "grid:\n  x: [1.0, 2.0]\nfixed: {exit_hard: true}\n")
    died = run_cli(["toy.py", "ray_sweep", "with", "die.yaml", "-F", "runs"], cwd=workdir)
    assert died.returncode == 1
    screen = died.stdout + died.stderr
    assert "(raylet)" not in screen and "A worker died or was killed" not in screen
    assert screen.count("failed: trial ") == 2 and "worker died" in screen

    shutil.copy(os.path.join(EXPERIMENTS, "curves.py"), workdir / "curves.py")
    write(workdir / "fs.yaml", "space:\n  quality: {grid: [0.1, 0.9]}\nfixed: {fail_below: 0.5, steps: 3, pause: 0}\n"
                               "tune: {metric: loss, mode: min, search: grid}\n")
    raised = run_cli(["curves.py", "tune_with", "fs.yaml", "-F", "runs"], cwd=workdir)
    assert raised.returncode == 1
    screen = raised.stdout + raised.stderr
    assert "Traceback" not in screen and "Trial task failed" not in screen and "did not complete" not in screen
    assert "RuntimeError: quality 0.1 is below 0.5" in screen and screen.count("failed: trial ") == 1


def test_a_torn_last_ledger_line_is_skipped_and_said_and_swallows_no_later_record(workdir):
    """A driver killed while writing a trial's ledger line leaves it cut short: --resume skips
    that one line and says so; the trial's run, which file storage holds COMPLETED, gets a new
    line of its own from that record instead of running again (a second --resume runs nothing)."""
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0, 3.0]\nsweep: {name: torn, max_concurrent: 1}\n")
    args = ["toy.py", "ray_sweep", "with", "grid.yaml", "-F", "runs"]
    assert run_cli(args, cwd=workdir).returncode == 0
    path = workdir / "sweeps" / "torn" / "ledger.jsonl"
    text = path.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    path.write_text(text[:len(text) - len(last) // 2 - 1])  # half the last line, no newline
    torn_key = json.loads(last)["key"]

    proc = run_cli(args + ["--resume"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "ledger.jsonl: line 3 was cut short (a driver stopped while writing it); skipped it" in proc.stdout
    assert "resume: 1 run(s) the workers recorded COMPLETED after the ledger's last line" in proc.stdout
    assert "resume: all 3 trials of 'torn' are already COMPLETED; nothing to run" in proc.stdout
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["key"] == torn_key and json.loads(lines[-1])["status"] == "COMPLETED"

    again = run_cli(args + ["--resume"], cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "resume: all 3 trials of 'torn' are already COMPLETED; nothing to run" in again.stdout
    assert "cut short" in again.stdout  # the torn line stays where it was, and is still said
    completed = [r["config"]["x"] for r in file_runs(workdir / "runs") if r["status"] == "COMPLETED"]
    assert sorted(completed) == [1.0, 2.0, 3.0]  # the torn trial ran once: its record counted


def test_a_disk_too_full_for_the_sweep_folders_first_files_is_one_line_and_nothing_started(workdir, small_disk):
    """spec.yaml and trials.jsonl of 3,000 trials do not fit in 12 KiB: one line naming the
    file and the fix, exit 2, no traceback, no Ray started, no run made, no folder left."""
    write(workdir / "g.yaml", f"grid:\n  x: {{range: [0, 3000]}}\nsweep: {{dir: {small_disk / 's'}}}\n")
    proc = run_cli(["toy.py", "ray_sweep", "with", "g.yaml", "-F", "runs"], cwd=workdir)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: g.yaml: sweep: dir: cannot write ") and "No space left on device" in lines[0]
    assert lines[0].endswith("free space there or give sweep.dir another place"), lines[0]
    assert "Ray" not in proc.stdout and not (workdir / "runs").exists()
    assert not (small_disk / "s").exists()


def test_a_tilde_in_sweep_dir_storage_and_file_storage_is_the_home_folder(workdir, tmp_path):
    """``~/...`` in sweep.dir, sweep.storage and -F is the home folder, as in a shell (the
    argument reaches the command unexpanded when quoted, or from a script); no folder named
    ``~`` appears in the project."""
    home = tmp_path / "home"
    home.mkdir()
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0]\nsweep: {dir: ~/sweeps/tilde, storage: ~/ckpts}\n")
    proc = run_cli(["toy.py", "ray_sweep", "with", "grid.yaml", "-F", "~/runs"], cwd=workdir,
                   env=cli_env(HOME=str(home)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (workdir / "~").exists()
    assert len(ledger(home / "sweeps" / "tilde")) == 2
    assert sorted(r["status"] for r in file_runs(home / "runs")) == ["COMPLETED", "COMPLETED"]
    assert (home / "ckpts" / "grid").is_dir()  # <storage>/<name>/: the storage probe wrote (and removed) its file there
