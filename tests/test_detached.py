"""A sweep that outlives its terminal: submitted with --submit as a Ray Job to a local head
running Ray's job server, then seen (counts changing while it runs) and cancelled through
--address from a shell whose folder does not hold the sweep's, as a laptop's would not."""

import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request

import pytest
from conftest import EXPERIMENTS, cli_env, run_cli, write
from test_faults import file_runs

pytestmark = pytest.mark.slow  # every test here starts Ray or a command line


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def head():
    """A head node of its own with Ray's dashboard and job server (ray[default])."""
    from ray.cluster_utils import Cluster

    dashboard = free_port()
    # Its own temp folder (a job's driver finds its cluster by the address file there; other test
    # processes' Rays are on this machine too) and job agent port (Ray's default, 52365, is theirs).
    temp = tempfile.mkdtemp(prefix="rayjob", dir="/tmp")  # short: Ray's socket paths live in it
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": dashboard,
        "dashboard_agent_listen_port": free_port(), "temp_dir": temp})
    # what `ray start --head` leaves in its temp folder, by which a job's driver finds its cluster
    from ray._private.utils import write_ray_address

    write_ray_address(cluster.address, temp)
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            cluster.shutdown()
            pytest.fail("the head's job server did not start within 60 s")
        time.sleep(0.5)
    yield cluster.address, url
    cluster.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def laptop(tmp_path):
    """Another folder with the experiment's file: it sees no sweep folder of the job's."""
    folder = tmp_path / "laptop"
    folder.mkdir()
    shutil.copy(os.path.join(EXPERIMENTS, "toy.py"), folder / "toy.py")
    return folder


def cli(folder, *args, timeout=90):
    proc = run_cli(["toy.py", *args], cwd=folder, timeout=timeout, env=cli_env(RAY_ADDRESS="local"))
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.long
def test_a_submitted_sweep_is_seen_and_cancelled_from_a_shell_that_cannot_see_its_folder(workdir, tmp_path, head,
                                                                                         monkeypatch):
    cluster, jobs = head
    runs = tmp_path / "kept-runs"
    write(workdir / "grid.yaml", "sweep: {name: detached}\ngrid:\n  x: {range: [0, 12]}\n  sleep: [3.0]\n")
    code, out = cli(workdir, "ray_sweep", "grid.yaml", "-F", str(runs), "--submit", "--address", jobs)
    assert code == 0, out
    assert "submitted 'detached' as Ray job sacred-ray-detached-" in out and "ray job logs" in out, out
    job_id = out.split("as Ray job ", 1)[1].split()[0]
    assert not (workdir / "sweeps").exists()  # the driver runs on the head, in the job's copy of the folder

    elsewhere = laptop(tmp_path)
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        code, out = cli(elsewhere, "sweep_status", "detached", "--address", cluster, "--json")
        if code == 0:
            status = json.loads(out.strip().splitlines()[-1])
            seen.append(status.get("done") or 0)
            if status.get("running") and seen[-1] >= 1:
                break
        time.sleep(1)
    else:
        from ray.job_submission import JobSubmissionClient

        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        client = JobSubmissionClient(jobs)
        raise AssertionError(f"the submitted sweep never showed a running trial: {out}\njob "
                             f"{client.get_job_status(job_id)}:\n{client.get_job_logs(job_id)[-3000:]}")
    assert status["name"] == "detached" and status["command"] == "ray_sweep" and status["total"] == 12
    assert status["driver_alive"] and status["state"] == "running"
    code, text = cli(elsewhere, "sweep_status", "detached", "--address", cluster)
    assert code == 0 and "sweep 'detached' (ray_sweep)" in text and "12 trials:" in text, text

    code, out = cli(elsewhere, "sweep_cancel", "detached", "--address", cluster)
    assert code == 0 and out.startswith("the sweep stops"), out

    from ray.job_submission import JobSubmissionClient

    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # Ray's job client would take it over the address given
    client = JobSubmissionClient(jobs)
    deadline = time.monotonic() + 90
    while str(client.get_job_status(job_id)).split(".")[-1] not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline, client.get_job_logs(job_id)
        time.sleep(0.5)
    logs = client.get_job_logs(job_id)
    assert "cancelled by the user" in logs, logs
    recorded = file_runs(str(runs))
    assert recorded and all(r["status"] in ("COMPLETED", "INTERRUPTED") for r in recorded), recorded
    assert any(r["status"] == "INTERRUPTED" for r in recorded) and len(recorded) < 12

    code, out = cli(elsewhere, "sweep_status", "detached", "--address", cluster)  # after it ended, too
    assert code == 0 and "ended: interrupted (cancelled by the user" in out, out
    code, out = cli(elsewhere, "sweep_pause", "detached", "--address", cluster)
    assert code == 2 and "the sweep is not running" in out, out
    code, out = cli(elsewhere, "sweep_status", "no-such-sweep", "--address", cluster)
    assert code == 2 and "no sweep of this name has run on this Ray cluster" in out, out


def test_an_address_where_no_cluster_listens_gets_one_line(tmp_path):
    elsewhere = laptop(tmp_path)
    start = time.monotonic()
    code, out = cli(elsewhere, "sweep_status", "detached", "--address", f"127.0.0.1:{free_port()}")
    assert code == 2 and "cannot reach a Ray cluster at 127.0.0.1:" in out and "Traceback" not in out, out
    code, out = cli(elsewhere, "ray_sweep", "nothing.yaml", "--submit")
    assert code == 2 and "Traceback" not in out, out
    assert time.monotonic() - start < 30
