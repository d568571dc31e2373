"""ray_sweep from Python, on a private local Ray: what the user's observers record."""

import mongomock
import pytest
from sacred.observers import MongoObserver, RunObserver

import sacred_ray
from sacred_ray.api import run_sweep


class Recording(RunObserver):
    """An observer added in code: remembers every event it receives, per instance."""

    instances = []

    def __init__(self):
        self.events = []
        Recording.instances.append(self)

    def __copy__(self):
        clone = Recording()
        return clone

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        self.events.append(("started", config, meta_info))
        return f"rec-{config['x']}"

    def heartbeat_event(self, info, captured_out, beat_time, result):
        self.events.append(("heartbeat", dict(info), captured_out))

    def log_metrics(self, metrics_by_name, info):
        self.events.append(("metrics", metrics_by_name))

    def artifact_event(self, name, filename, metadata=None, content_type=None):
        with open(filename) as f:
            self.events.append(("artifact", name, f.read()))

    def completed_event(self, stop_time, result):
        self.events.append(("completed", result))

    def failed_event(self, fail_time, fail_trace):
        self.events.append(("failed", "".join(fail_trace)))


@pytest.mark.slow
def test_observer_added_in_code_gets_every_trial(ray_session, toy, tmp_path):
    Recording.instances.clear()
    toy.observers.append(Recording())
    try:
        spec = {"grid": {"x": [1.0, 2.0, 3.0]}, "fixed": {"artifact": True},
                "sweep": {"dir": str(tmp_path / "sw"), "name": "code-observer"}}
        result = run_sweep(toy, spec, progress=False)
    finally:
        toy.observers.clear()
    assert result.ok and result.exit_code == 0
    used = [obs for obs in Recording.instances[1:] if obs.events]
    assert len(used) == 3  # a fresh instance per trial, the prototype itself untouched
    assert Recording.instances[0].events == []
    for obs in used:
        kinds = [e[0] for e in obs.events]
        assert kinds[0] == "started" and kinds[-1] == "completed"
        config = obs.events[0][1]
        artifact = [e for e in obs.events if e[0] == "artifact"]
        assert artifact == [("artifact", "out.txt", f"artifact of x={config['x']}")]
        last_beat = [e for e in obs.events if e[0] == "heartbeat"][-1]
        assert f"hello from x={config['x']}" in last_beat[2]
        # the trial saw the id the driver's observer assigned
        assert last_beat[1]["seen_id"] == f"rec-{config['x']}"
        assert obs.events[-1][1] == -((config["x"] - 2) ** 2)
    assert sorted(r.run_id for r in result.results) == ["rec-1.0", "rec-2.0", "rec-3.0"]


def test_worker_and_driver_observers_agree_on_each_runs_id(ray_session, toy, tmp_path, mongo_db):
    """-F is written by the worker itself, -m and code observers by the driver; as for a run
    alone, the highest priority observer (MongoDB) picks the id and the others use it."""
    import json

    Recording.instances.clear()
    toy.observers.append(Recording())
    try:
        spec = {"grid": {"x": [1.0, 2.0, 3.0]}, "sweep": {"dir": str(tmp_path / "sw")}}
        options = {"--mongo_db": "localhost:27017:sweeps", "--file_storage": str(tmp_path / "runs")}
        result = run_sweep(toy, spec, options=options, progress=False)
    finally:
        toy.observers.clear()
    assert result.exit_code == 0
    runs = list(mongo_db.runs.find())
    assert sorted(r["_id"] for r in runs) == sorted(r.run_id for r in result.results) == [1, 2, 3]
    for run in runs:
        folder = tmp_path / "runs" / str(run["_id"])
        on_file = json.loads((folder / "run.json").read_text())
        assert on_file["status"] == "COMPLETED" and json.loads((folder / "config.json").read_text()) == run["config"]
        assert json.loads((folder / "info.json").read_text())["seen_id"] == run["info"]["seen_id"] == run["_id"]
        assert on_file["meta"]["options"]["--mongo_db"] == run["meta"]["options"]["--mongo_db"] == "localhost:27017:sweeps"
        assert on_file["meta"]["options"]["--file_storage"] == str(tmp_path / "runs")
    assert sorted(len([e for e in obs.events if e[0] == "completed"]) for obs in Recording.instances[1:]) == [1, 1, 1]


def test_mongo_records_runs_as_omniboard_reads_them(ray_session, toy, tmp_path, mongo_db):
    spec = {"grid": {"x": [1.0, 3.0], "+size": ["big", "small"]}, "fixed": {"steps": 4},
            "sweep": {"dir": str(tmp_path / "sw"), "name": "mongo"}}
    result = run_sweep(toy, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 0
    runs = list(mongo_db.runs.find())
    assert len(runs) == 4
    assert {r["_id"] for r in runs} == {r.run_id for r in result.results}
    for run in runs:
        assert run["status"] == "COMPLETED"
        assert run["meta"]["sweep"]["name"] == "mongo"
        assert run["meta"]["comment"] == "sweep mongo"
        cfg = run["config"]
        expected_y = 10 if run["meta"]["named_configs"] == ["big"] else -10
        assert cfg["y"] == expected_y and cfg["steps"] == 4
        assert run["result"] == -((cfg["x"] - 2) ** 2) + expected_y
        assert f"hello from x={cfg['x']}" in run["captured_out"]
        assert run["info"]["ray"]["pid"] > 0 and run["info"]["ray"]["node_id"]
        assert run["info"]["seen_id"] == run["_id"]
        assert run["host"]["hostname"]
        # Omniboard follows info.metrics to the metrics collection
        (link,) = run["info"]["metrics"]
        metric = mongo_db.metrics.find_one({"_id": mongomock.ObjectId(link["id"])})
        assert metric["name"] == "loss" and metric["run_id"] == run["_id"]
        assert metric["steps"] == [0, 1, 2, 3]
        assert metric["values"][-1] == pytest.approx((cfg["x"] - 2) ** 2 + 0.25)
        assert run["experiment"]["sources"]  # the source file reached GridFS


def test_failing_trial_is_failed_with_traceback_and_the_sweep_goes_on(ray_session, toy, tmp_path, mongo_db):
    spec = {"grid": {"x": [1.0, 2.0, 3.0]}, "exclude": [], "variants": {
        "ok": {}, "bad": {"fixed": {"fail": True}, "grid": {"x": [5.0]}}},
        "sweep": {"dir": str(tmp_path / "sw"), "name": "failing"}}
    result = run_sweep(toy, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 1
    assert result.counts == {"COMPLETED": 3, "FAILED": 1}
    failed = mongo_db.runs.find_one({"status": "FAILED"})
    assert failed["config"]["x"] == 5.0
    assert "ValueError: boom x=5.0" in "".join(failed["fail_trace"])
    assert mongo_db.runs.count_documents({"status": "COMPLETED"}) == 3
    assert mongo_db.runs.count_documents({"status": "RUNNING"}) == 0


@pytest.mark.slow
def test_two_hundred_trivial_trials_are_two_hundred_runs(ray_session, toy, tmp_path, mongo_db):
    spec = {"grid": {"x": {"range": [200]}}, "fixed": {"steps": 1},
            "sweep": {"dir": str(tmp_path / "sw"), "name": "many"}}
    result = run_sweep(toy, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert result.exit_code == 0
    runs = list(mongo_db.runs.find({}, {"_id": 1, "config.x": 1, "status": 1}))
    assert len(runs) == 200
    assert len({r["_id"] for r in runs}) == 200
    assert sorted(r["config"]["x"] for r in runs) == list(range(200))
    assert {r["status"] for r in runs} == {"COMPLETED"}


def test_infeasible_resources_are_refused_before_any_trial(ray_session, toy, tmp_path, mongo_db):
    spec = {"grid": {"x": [1.0]}, "sweep": {"dir": str(tmp_path / "sw"), "resources": {"gpu": 1}}}
    with pytest.raises(sacred_ray.SpecError, match="no node of the Ray cluster can run a trial that needs .*GPU=1"):
        run_sweep(toy, spec, options={"--mongo_db": "localhost:27017:sweeps"}, progress=False)
    assert mongo_db.runs.count_documents({}) == 0


@pytest.mark.slow
def test_max_concurrent_bounds_trials_in_flight(ray_session, toy, tmp_path):
    spec = {"grid": {"x": [1.0, 2.0, 3.0, 4.0]}, "fixed": {"sleep": 0.3},
            "sweep": {"dir": str(tmp_path / "sw"), "max_concurrent": 1}}
    obs_dir = tmp_path / "runs"
    result = run_sweep(toy, spec, options={"--file_storage": str(obs_dir)}, progress=False)
    assert result.exit_code == 0
    import json

    spans = []
    for run_id in (r.run_id for r in result.results):
        run = json.loads((obs_dir / str(run_id) / "run.json").read_text())
        spans.append((run["start_time"], run["stop_time"]))
    spans.sort()
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        assert start >= stop  # never two trials at once


@pytest.mark.slow
def test_trials_never_outnumber_the_cpus_they_asked_for(ray_session, toy, tmp_path):
    """Each trial takes one of the 2 CPUs: a third must never run while two do (a worker
    that blocks in ray.get hands its CPU back to Ray, which then starts another trial)."""
    import json

    # both workers up first, the experiment imported in each (under a loaded machine a second
    # worker could take longer to come up than the whole sweep took, and the sweep ran one at a time)
    warm = {"grid": {"x": [0.0, 1.0]}, "fixed": {"sleep": 1.0}, "sweep": {"dir": str(tmp_path / "warm")}}
    assert run_sweep(toy, warm, progress=False).exit_code == 0
    # long enough for a worker that has not imported the experiment yet to join in
    spec = {"grid": {"x": [float(x) for x in range(8)]}, "fixed": {"sleep": 0.5}, "sweep": {"dir": str(tmp_path / "sw")}}
    obs_dir = tmp_path / "runs"
    result = run_sweep(toy, spec, options={"--file_storage": str(obs_dir)}, progress=False)
    assert result.exit_code == 0
    edges = []
    for r in result.results:
        run = json.loads((obs_dir / str(r.run_id) / "run.json").read_text())
        edges += [(run["start_time"], 1), (run["stop_time"], -1)]
    running = most = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # a stop before a start at the same instant
        running += step
        most = max(most, running)
    assert most == 2, sorted(edges)


@pytest.mark.slow
def test_mongo_observer_in_code_is_copied_per_trial(ray_session, toy, tmp_path, mongo_db):
    toy.observers.append(MongoObserver.create(url="localhost:27017", db_name="sweeps"))
    try:
        spec = {"grid": {"x": [1.0, 2.0, 3.0, 4.0]}, "sweep": {"dir": str(tmp_path / "sw")}}
        result = run_sweep(toy, spec, progress=False)
    finally:
        toy.observers.clear()
    assert result.exit_code == 0
    assert sorted(r["config"]["x"] for r in mongo_db.runs.find({"status": "COMPLETED"})) == [1.0, 2.0, 3.0, 4.0]


def test_updates_apply_over_a_grid_that_was_already_resolved(ray_session, toy, tmp_path):
    """run_sweep(ex, resolved, updates=...) used to drop the updates silently."""
    from sacred_ray.checks import resolve_grid

    spec = tmp_path / "g.yaml"
    spec.write_text(f"grid:\n  x: [1.0, 3.0]\nfixed: {{steps: 1}}\nsweep: {{dir: {tmp_path / 'sweep'}}}\n")
    grid = resolve_grid(toy, str(spec), {"opt.lr": 0.5})
    result = run_sweep(toy, grid, updates={"steps": 2}, named_configs=("big",),
                       options={"--file_storage": str(tmp_path / "runs")}, progress=False)
    assert result.exit_code == 0
    assert sorted(r.config["x"] for r in result.results) == [1.0, 3.0]
    for r in result.results:
        # the earlier update, the new one and the named config all apply
        assert r.config["opt"]["lr"] == 0.5 and r.config["steps"] == 2 and r.config["y"] == 10
        assert r.metrics["loss"] is not None
    header = (tmp_path / "sweep" / "spec.yaml").read_text()
    assert f"spec_file: {spec}" in header


def test_a_trial_that_asks_for_no_cpu_runs_as_documented(ray_session, toy, tmp_path):
    """`resources: {cpu: 0}` used to be refused as if no node could run the trial."""
    spec = {"grid": {"x": [1.0, 2.0, 3.0]}, "sweep": {"resources": {"cpu": 0}, "dir": str(tmp_path / "s")}}
    result = run_sweep(toy, spec, options={"--file_storage": str(tmp_path / "runs")}, progress=False)
    assert result.exit_code == 0, result.report
    assert [r.status for r in result.results] == ["COMPLETED"] * 3
