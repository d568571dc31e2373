"""Checkpoints under sweep.storage / tune.storage: an S3 bucket, served on 127.0.0.1 by moto's
server, reached by the driver and the Ray workers through pyarrow's file systems (Ray's own
layer), as a real bucket would be."""

import json
import os
import shutil
import socket

import boto3  # with moto, in the test extra: a missing one fails these tests, never skips them
import moto.server as moto_server
import pytest
from conftest import EXPERIMENTS, cli_env, run_cli, write

pytestmark = pytest.mark.slow  # every test here starts Ray or a command line

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A local S3 server with the bucket 'ckpts': (its URI query for pyarrow, a boto3 client)."""
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    client.create_bucket(Bucket="ckpts")
    yield f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1", client
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def keys(client, prefix):
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket="ckpts", Prefix=prefix).get("Contents", []))


def env():
    return {**cli_env(private=True), **CREDENTIALS}  # a Ray started with these, for its workers


def sweep_id_of(folder):
    import yaml

    return yaml.safe_load(open(folder / "spec.yaml"))["id"]


def test_ray_sweep_checkpoints_on_s3_survive_a_killed_worker_and_old_ones_are_pruned(tmp_path, s3):
    query, client = s3
    shutil.copy(os.path.join(EXPERIMENTS, "resumable.py"), tmp_path / "resumable.py")
    (tmp_path / "marks").mkdir()
    write(tmp_path / "grid.yaml", f"grid:\n  steps: [10]\nfixed: {{every: 2, die_at: 6, marks: {tmp_path / 'marks'}}}\n"
                                  f"sweep: {{storage: 's3://ckpts/team?{query}'}}\n")
    proc = run_cli(["resumable.py", "ray_sweep", "with", "grid.yaml", "-F", "runs"], cwd=tmp_path, env=env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_id,) = [d for d in os.listdir(tmp_path / "runs") if d.isdigit()]
    folder = tmp_path / "runs" / run_id
    assert json.load(open(folder / "run.json"))["status"] == "COMPLETED"
    assert json.load(open(folder / "metrics.json"))["total"]["steps"] == list(range(10))  # restored from S3
    (restart,) = json.load(open(folder / "info.json"))["sacred_ray"]["restarts"]
    assert restart["from_step"] == 5  # read back from the checkpoint's meta.json in the bucket
    ledger = json.loads((tmp_path / "sweeps" / "grid" / "ledger.jsonl").read_text().splitlines()[0])
    sweep_id = sweep_id_of(tmp_path / "sweeps" / "grid")  # each sweep its own place: <storage>/<name>/<id>/
    stored = keys(client, f"team/grid/{sweep_id}/checkpoints/{ledger['key']}/")
    numbers = sorted({k.split("/")[5] for k in stored if k.split("/")[5]})
    assert numbers == ["3", "4"]  # five saves, the last two kept
    for n in numbers:
        base = f"team/grid/{sweep_id}/checkpoints/{ledger['key']}/{n}/"
        assert {base + "meta.json", base + "state.pkl"} <= set(stored)
    assert not os.path.exists(tmp_path / "sweeps" / "grid" / "checkpoints")  # nothing kept locally


def test_tune_with_keeps_checkpoints_and_tunes_state_on_s3(tmp_path, s3):
    query, client = s3
    shutil.copy(os.path.join(EXPERIMENTS, "resumable.py"), tmp_path / "resumable.py")
    write(tmp_path / "space.yaml", "space:\n  pause: {choice: [0.01]}\nfixed: {steps: 8, every: 2, raise_at: 4}\n"
                                   f"tune: {{metric: total, num_samples: 1, max_failures: 1, storage: 's3://ckpts/tunes?{query}'}}\n")
    proc = run_cli(["resumable.py", "tune_with", "space.yaml", "-F", "runs"], cwd=tmp_path, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_id,) = [d for d in os.listdir(tmp_path / "runs") if d.isdigit()]
    steps = json.load(open(tmp_path / "runs" / run_id / "metrics.json"))["total"]["steps"]
    assert steps == list(range(8))  # failed at step 4, restored from the bucket, the same run goes on
    sweep_id = sweep_id_of(tmp_path / "sweeps" / "space")
    stored = keys(client, f"tunes/space/{sweep_id}/")
    assert any(k.startswith(f"tunes/space/{sweep_id}/checkpoints/") and k.endswith("/state.pkl") for k in stored)
    assert any(k.startswith(f"tunes/space/{sweep_id}/tune/") for k in stored)  # Tune's own state is there too


@pytest.mark.parametrize("where,expected", [
    ("s3://nosuchbucket/x?{query}", "Bucket 'nosuchbucket' not found"),
    ("s3://ckpts/x?endpoint_override=127.0.0.1:{closed}&scheme=http&region=us-east-1", "connect"),
    ("s3://ckpts/x?{query}&secret_key=HUSH", "query parameter"),  # what pyarrow refuses, the secret hidden
])
def test_storage_that_cannot_be_written_is_one_line_before_anything_starts(tmp_path, s3, where, expected):
    query, _ = s3
    location = where.format(query=query, closed=free_port())
    shutil.copy(os.path.join(EXPERIMENTS, "resumable.py"), tmp_path / "resumable.py")
    write(tmp_path / "grid.yaml", f"grid:\n  steps: [2]\nsweep: {{storage: '{location}'}}\n")
    proc = run_cli(["resumable.py", "ray_sweep", "with", "grid.yaml"], cwd=tmp_path, env=env(), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "grid.yaml: sweep: storage: cannot write checkpoints" in lines[0], proc.stderr
    assert expected.lower() in lines[0].lower() and "HUSH" not in proc.stderr + proc.stdout
    assert "starting a local Ray" not in proc.stdout and not os.path.exists(tmp_path / "sweeps")


def _every_text(*folders):
    """Each file's text under ``folders`` (the sweep folder, the runs' folders), by path."""
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    yield path, f.read().decode("utf-8", "replace")


@pytest.mark.parametrize("command", ["ray_sweep", "tune_with"])
def test_credentials_in_a_storage_uri_are_written_nowhere(tmp_path, s3, command):
    """``s3://KEY:SECRET@bucket`` (pyarrow's own form) checkpoints to the bucket, and the secret
    appears in no file of the sweep folder or of the runs, on no screen, in no run's record."""
    query, client = s3
    shutil.copy(os.path.join(EXPERIMENTS, "resumable.py"), tmp_path / "resumable.py")
    location = f"s3://testing:s3cr3t-S3-key@ckpts/creds?{query}"
    if command == "ray_sweep":
        write(tmp_path / "grid.yaml", f"grid:\n  steps: [4]\nfixed: {{every: 2}}\nsweep: {{storage: '{location}'}}\n")
    else:
        write(tmp_path / "grid.yaml", "space:\n  pause: {choice: [0.01]}\nfixed: {steps: 4, every: 2}\n"
                                      f"tune: {{metric: total, mode: max, storage: '{location}'}}\n")
    proc = run_cli(["resumable.py", command, "with", "grid.yaml", "-F", "runs"], cwd=tmp_path, env=env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(k.endswith("/state.pkl") for k in keys(client, "creds/")), "nothing was checkpointed to the bucket"
    leaks = [path for path, text in _every_text(tmp_path / "sweeps", tmp_path / "runs") if "s3cr3t" in text]
    assert not leaks, leaks
    assert "s3cr3t" not in proc.stdout + proc.stderr
    spec = (tmp_path / "sweeps" / "grid" / "spec.yaml").read_text()
    assert "s3://testing:***@ckpts/creds" in spec  # where it went, without the secret
