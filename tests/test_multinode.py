"""Scale out, on this machine: a multi-node Ray cluster, joined with --address."""

import datetime
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import EXPERIMENTS, cli_env, run_cli, write
from ray.cluster_utils import Cluster
from test_faults import file_runs

# every test here starts Ray or a command line; one worker runs them all, with one cluster (the module's fixture)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("multinode")]


@pytest.fixture(scope="module")
def cluster():
    """A head and two worker nodes; the second worker declares one GPU (there is none)."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.add_node(num_cpus=2, num_gpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture
def project(tmp_path):
    """A project folder outside every import path: workers get it only as the shipped working_dir."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(os.path.join(EXPERIMENTS, "where.py"), folder / "where.py")
    return folder


def test_ray_sweep_runs_on_several_nodes_from_the_shipped_folder(cluster, project):
    write(project / "grid.yaml", "grid:\n  i: {range: [6]}\nfixed: {seconds: 1.5}\nsweep: {name: multi}\n")
    proc = run_cli(["where.py", "ray_sweep", "with", "grid.yaml", "-F", "runs", "--address", cluster.address],
                   cwd=project)
    assert proc.returncode == 0, proc.stderr
    runs = file_runs(project / "runs")
    assert len(runs) == 6 and {r["status"] for r in runs} == {"COMPLETED"}
    nodes = {r["info"]["ray"]["node_id"] for r in runs}
    assert len(nodes) >= 2
    for run in runs:  # imported from Ray's copy of the folder, not from the user's
        assert run["info"]["module_file"] != str(project / "where.py")
        assert "runtime_resources" in run["info"]["module_file"]


def test_tune_with_runs_on_several_nodes(cluster, project):
    # the first four trials wait for each other (the cluster's 4 CPUs): under a loaded full suite
    # Tune once reused the first actor for every trial before the other nodes' were up
    (project / "barrier").mkdir()
    space = {"fixed": {"seconds": 1.5, "barrier": str(project / "barrier"), "together": 4},
             "space": {"quality": {"uniform": [0, 1]}},
             "tune": {"metric": "loss", "mode": "min", "num_samples": 5, "name": "multi-tune"}}
    write(project / "space.yaml", json.dumps(space))
    proc = run_cli(["where.py", "tune_with", "space.yaml", "-F", "runs", "--address", cluster.address], cwd=project)
    assert proc.returncode == 0, proc.stderr
    runs = file_runs(project / "runs")
    assert len(runs) == 5 and {r["status"] for r in runs} == {"COMPLETED"}
    assert len({r["info"]["ray"]["node_id"] for r in runs}) >= 2


def test_half_a_gpu_per_trial_runs_two_trials_at_a_time(cluster, project):
    write(project / "grid.yaml", "grid:\n  i: {range: [4]}\nfixed: {seconds: 1.5}\n"
                                 "sweep: {name: gpus, resources: {cpu: 0.5, gpu: 0.5}}\n")
    proc = run_cli(["where.py", "ray_sweep", "with", "grid.yaml", "-F", "runs", "--address", cluster.address],
                   cwd=project)
    assert proc.returncode == 0, proc.stderr
    runs = file_runs(project / "runs")
    assert len(runs) == 4 and len({r["info"]["ray"]["node_id"] for r in runs}) == 1  # only the GPU node
    events = []
    for run in runs:
        events.append((datetime.datetime.fromisoformat(run["start_time"]), 1))
        events.append((datetime.datetime.fromisoformat(run["stop_time"]), -1))
    running, most = 0, 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        running += change
        most = max(most, running)
    assert most == 2


def test_a_lost_node_s_trial_resumes_on_another_node_from_its_checkpoint_in_the_same_run(project):
    """The stand-in for a spot preemption: the node running a trial is removed; the trial
    starts again on a node that remains, from the checkpoint it saved (the sweep folder is on
    storage every node shares here), and its run goes on under the same id."""
    shutil.copy(os.path.join(EXPERIMENTS, "resumable.py"), project / "resumable.py")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    doomed = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    try:
        write(project / "grid.yaml", "grid:\n  steps: [24, 25, 26]\nfixed: {every: 4, pause: 0.25}\n"
                                     "sweep: {name: lost}\n")
        proc = subprocess.Popen([sys.executable, "resumable.py", "ray_sweep", "with", "grid.yaml", "-F", "runs",
                                 "-b", "1", "--address", c.address], cwd=project, env=cli_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            running = [r for r in file_runs(project / "runs") if r["status"] == "RUNNING"]
            there = [r for r in running if r["info"].get("ray", {}).get("node_id") == doomed.node_id]
            if there and os.path.isdir(project / "sweeps" / "lost" / "checkpoints"):
                break
            time.sleep(0.2)
        else:
            proc.kill()
            raise AssertionError("no trial ran on the node to lose")
        time.sleep(1.5)  # a checkpoint or two into the trial
        c.remove_node(doomed)
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, out + err
        runs = file_runs(project / "runs")
        assert len(runs) == 3 and {r["status"] for r in runs} == {"COMPLETED"}, out + err
        moved = [r for r in runs if r["info"].get("sacred_ray", {}).get("restarts")]
        assert len(moved) == 1
        restart = moved[0]["info"]["sacred_ray"]["restarts"][0]
        assert restart["node_id"] == doomed.node_id and "worker died" in restart["reason"]
        assert restart["from_step"] is not None and restart["from_step"] >= 3
        assert moved[0]["info"]["ray"]["node_id"] != doomed.node_id  # it finished elsewhere
        steps = moved[0]["config"]["steps"]
        metrics = [json.load(open(project / "runs" / d / "metrics.json")) for d in os.listdir(project / "runs")
                   if d.isdigit() and json.load(open(project / "runs" / d / "config.json"))["steps"] == steps]
        assert len(metrics) == 1 and metrics[0]["total"]["steps"] == list(range(steps))  # each step once
        assert metrics[0]["total"]["values"] == [sum(range(k + 1)) for k in range(steps)]
    finally:
        c.shutdown()
