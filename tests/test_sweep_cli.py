"""ray_sweep through the command line on a private local Ray, read back from the observers."""

import csv
import json
import os

import pytest
from conftest import EXAMPLES, cli_env, read_dump, run_cli, write
from sacred.host_info import get_host_info

pytestmark = pytest.mark.slow  # every test here starts Ray or a command line

GRID = """\
fixed:
  steps: 4
grid:
  x: [1.0, 2.0, 3.0]
variants:
  fine: {}
  broken:
    fixed: {fail: true}
    grid: {x: [7.0]}
sweep:
  name: toy-sweep
"""


def runs_in(folder):
    out = {}
    for name in os.listdir(folder):
        if name.isdigit():
            run = json.loads((folder / name / "run.json").read_text())
            run["config"] = json.loads((folder / name / "config.json").read_text())
            run["info"] = json.loads((folder / name / "info.json").read_text())
            run["cout"] = (folder / name / "cout.txt").read_text()
            metrics = folder / name / "metrics.json"
            run["metrics"] = json.loads(metrics.read_text()) if metrics.exists() else {}
            out[name] = run
    return out


def test_file_storage_sweep_records_every_trial_and_the_sweep_folder(workdir):
    write(workdir / "grid.yaml", GRID)
    proc = run_cli(["toy.py", "ray_sweep", "with", "grid.yaml", "-F", "runs", "-c", "mine"], cwd=workdir)
    assert proc.returncode == 1, proc.stderr  # one trial fails
    runs = runs_in(workdir / "runs")
    assert len(runs) == 4
    by_x = {r["config"]["x"]: r for r in runs.values()}
    for x in (1.0, 2.0, 3.0):
        run = by_x[x]
        assert run["status"] == "COMPLETED"
        assert run["result"] == -((x - 2) ** 2)
        assert run["meta"]["comment"] == "mine"
        assert run["meta"]["sweep"]["name"] == "toy-sweep" and run["meta"]["sweep"]["variant"] == "fine"
        assert f"hello from x={x}" in run["cout"]
        assert run["metrics"]["loss"]["steps"] == [0, 1, 2, 3]
        assert run["info"]["ray"]["node_id"]
        # what Sacred records for a run alone on this machine (a worker asks the machine once)
        assert run["host"] == json.loads(json.dumps(get_host_info()))
    bad = by_x[7.0]
    assert bad["status"] == "FAILED" and "ValueError: boom x=7.0" in "".join(bad["fail_trace"])

    folder = workdir / "sweeps" / "toy-sweep"
    ledger = [json.loads(line) for line in (folder / "ledger.jsonl").read_text().splitlines()]
    assert sorted(e["status"] for e in ledger) == ["COMPLETED"] * 3 + ["FAILED"]
    assert {str(e["run_id"]) for e in ledger} == set(runs)
    with open(folder / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED", "COMPLETED", "FAILED"]
    assert float(rows[0]["result"]) == 0.0  # sorted best first: x=2
    assert "x: 2.0" in (folder / "best.yaml").read_text()
    # the end of the output: the table, the best trial, the counts
    assert "best: trial 1" in proc.stdout
    assert "4 trials: 3 COMPLETED, 1 FAILED" in proc.stdout
    # progress lines (not a terminal here), and no Ray noise or trial output on the driver
    assert "[4/4] done 3, running 0, failed 1" in proc.stderr
    assert "hello from" not in proc.stdout + proc.stderr


def test_mongo_sweep_lands_in_the_runs_and_metrics_collections(workdir, tmp_path):
    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 3.0]\n  +size: [big, small]\nfixed: {artifact: true}\n")
    dump = tmp_path / "mongo.json"
    proc = run_cli(["toy.py", "ray_sweep", "grid.yaml", "-m", "localhost:27017:sweeps"], cwd=workdir, mongo_dump=dump)
    assert proc.returncode == 0, proc.stderr
    db = read_dump(dump, "sweeps")
    assert len(db["runs"]) == 4 and len(db["metrics"]) == 4
    metric_ids = {m["_id"] for m in db["metrics"]}
    for run in db["runs"]:
        assert run["status"] == "COMPLETED"
        assert run["meta"]["comment"] == "sweep grid"
        (link,) = run["info"]["metrics"]
        assert link["id"] in metric_ids
        assert run["info"]["seen_id"] == run["_id"]
        assert f"hello from x={run['config']['x']}" in run["captured_out"]
        (artifact,) = run["artifacts"]
        assert artifact["name"] == "out.txt"
    files = {f["filename"]: f["data"] for f in db["files"]}
    for run in db["runs"]:
        assert files[f"artifact://runs/{run['_id']}/out.txt"] == f"artifact of x={run['config']['x']}"


@pytest.mark.long
def test_readme_main_command_runs_the_digits_sweep(tmp_path):
    proc = run_cli([os.path.join(EXAMPLES, "digits.py"), "ray_sweep", "with", os.path.join(EXAMPLES, "grid.yaml"),
                    "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = runs_in(tmp_path / "runs")
    assert len(runs) == 10
    assert {r["status"] for r in runs.values()} == {"COMPLETED"}
    assert all(len(r["metrics"]["val_accuracy"]["values"]) == 10 for r in runs.values())
    assert max(r["result"] for r in runs.values()) > 0.9  # the best digits model is a real model
    assert "10 trials: 10 COMPLETED" in proc.stdout


def test_a_terminal_gets_a_live_progress_bar(workdir):
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from conftest import cli_env

    write(workdir / "grid.yaml", "grid:\n  x: [1.0, 2.0, 3.0]\nfixed: {sleep: 0.3}\n")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen([sys.executable, "toy.py", "ray_sweep", "grid.yaml", "-F", "runs"], cwd=workdir,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        screen += chunk
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    text = screen.decode("utf-8", "replace")
    assert "100%|" in text and "3/3" in text and "running" in text  # tqdm's bar, our counts
    assert "[3/3] done" not in text  # the plain lines are for logs, not terminals
    assert "3 trials: 3 COMPLETED" in out.decode()


LEAVES_NOTHING = """\
import os
import ray
from sacred_ray.engine.cluster import connect, disconnect

connect(None, {})
node = ray._private.worker._global_node
pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
disconnect()
alive = []
for pid in pids:
    try:
        os.kill(pid, 0)
        alive.append(pid)
    except ProcessLookupError:
        pass
print("started", len(pids), "alive", alive)
"""


def test_the_ray_a_command_started_is_gone_when_it_ends(tmp_path):
    write(tmp_path / "leaves.py", LEAVES_NOTHING)
    proc = run_cli(["leaves.py"], cwd=tmp_path, env=cli_env(private=True))
    assert proc.returncode == 0, proc.stderr
    started, alive = proc.stdout.split("started ")[1].split(" alive ")
    assert int(started) >= 3 and alive.strip() == "[]"  # monitor, GCS, raylet, ...: all stopped


NAMED_WITH_DOCSTRING = '''
from sacred import Experiment
import sacred_ray

ex = Experiment("named")

@ex.config
def cfg():
    a = 10

@ex.named_config
def variant1():
    """A named configuration with a docstring (Sacred warns that it adds __doc__)."""
    a = 100

@ex.automain
@ex.distribute
def main(a):
    return a
'''


def test_sacreds_named_config_docstring_warning_shows_at_most_once(tmp_path):
    """Sacred warns once, for the run alone, that a named config's docstring adds "__doc__";
    a sweep of that named config shows it no more often on the driver's screen (#12.14)."""
    write(tmp_path / "named.py", NAMED_WITH_DOCSTRING)
    write(tmp_path / "g.yaml", "grid:\n  +v: [variant1]\n  a: [1, 2, 3]\n")
    alone = run_cli(["named.py", "with", "variant1"], cwd=tmp_path)
    swept = run_cli(["named.py", "ray_sweep", "with", "g.yaml", "-F", "runs"], cwd=tmp_path)
    assert alone.returncode == 0 and swept.returncode == 0, swept.stderr
    assert (alone.stdout + alone.stderr).count("__doc__") == 1
    assert (swept.stdout + swept.stderr).count("__doc__") <= 1
