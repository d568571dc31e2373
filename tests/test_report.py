"""The end of a sweep: ranking, the table, summary.csv and best.yaml."""

import csv

import yaml

from sacred_ray.engine.folder import SweepFolder
from sacred_ray.engine.results import SweepResult, TrialResult, default_mode, summarize
from sacred_ray.spec import load_grid


def results():
    trials = load_grid({"grid": {"lr": [0.1, 0.01, 0.001]}}).trials
    losses = [0.5, 0.2, 0.9]
    out = [TrialResult(trial=t, status="COMPLETED", run_id=i + 1, result=1 - loss, metrics={"loss": loss},
                       duration=1.0, config={"lr": t.values["lr"], "seed": 7})
           for i, (t, loss) in enumerate(zip(trials, losses))]
    out.append(TrialResult(trial=trials[0], status="FAILED", error="boom"))
    return SweepResult("s", "", out)


def test_sort_by_a_metric_ranks_by_its_last_value_and_writes_best_yaml(tmp_path):
    folder = SweepFolder(str(tmp_path / "s"))
    text = summarize(results(), "loss", None, folder)
    folder.close()
    assert default_mode("loss") == "min" and default_mode("accuracy") == "max"
    rows = list(csv.DictReader(open(tmp_path / "s" / "summary.csv")))
    assert [r["loss"] for r in rows[:3]] == ["0.2", "0.5", "0.9"] and rows[3]["status"] == "FAILED"
    assert "best: trial 1 (run 2), loss = 0.2: lr=0.01" in text
    assert yaml.safe_load((tmp_path / "s" / "best.yaml").read_text()) == {"lr": 0.01, "seed": 7}
    assert text.splitlines()[-1].startswith("4 trials: 3 COMPLETED, 1 FAILED")


def test_by_default_the_result_ranks_highest_first(tmp_path):
    folder = SweepFolder(str(tmp_path / "s"))
    text = summarize(results(), None, None, folder)
    folder.close()
    assert "best: trial 1 (run 2), result = 0.8" in text
