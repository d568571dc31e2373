"""The driver's recorder numbers FileStorage runs as Sacred would, without listing the folder each time."""

import datetime
import json

import pytest
from sacred.observers import FileStorageObserver

from sacred_ray.engine.recorder import RunIds, TrialRecorder
from sacred_ray.messages import RunStart


def start(runs, run_ids, x):
    rec = TrialRecorder([FileStorageObserver(str(runs))], run_ids=run_ids)
    answer = rec.start(RunStart(
        ex_info={"name": "t", "base_dir": str(runs), "sources": [], "dependencies": [], "repositories": [],
                 "mainfile": None},
        command="main", host_info={"hostname": "h"}, start_time=datetime.datetime.utcnow(),
        config={"x": x}, meta_info={}, worker={"pid": 1},
    ))
    return answer.run_id


@pytest.mark.slow
def test_runs_continue_after_the_largest_folder_and_skip_one_taken_meanwhile(tmp_path):
    runs = tmp_path / "runs"
    for name in ("1", "2", "5", "notes"):
        (runs / name).mkdir(parents=True)
    ids = RunIds()
    assert start(runs, ids, 1) == "6"  # a string, as Sacred's FileStorageObserver returns it
    assert start(runs, ids, 2) == "7"
    (runs / "8").mkdir()  # another process started a run in the same folder
    assert start(runs, ids, 3) == "9"
    assert start(runs, ids, 4) == "10"
    for run_id, x in (("6", 1), ("7", 2), ("9", 3), ("10", 4)):
        assert json.loads((runs / run_id / "config.json").read_text()) == {"x": x}
        assert json.loads((runs / run_id / "run.json").read_text())["status"] == "RUNNING"


def test_an_empty_or_missing_folder_starts_at_one(tmp_path):
    ids = RunIds()
    assert start(tmp_path / "new", ids, 1) == "1"
    assert start(tmp_path / "new", ids, 2) == "2"
