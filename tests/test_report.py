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


class _Terminal:
    """A stream that says it is a terminal, as a user's would."""

    def __init__(self):
        import io

        self.buffer = io.StringIO()

    def isatty(self):
        return True

    def write(self, text):
        return self.buffer.write(text)

    def flush(self):
        pass


def test_the_progress_bar_reads_cleanly_and_tune_ranks_by_the_last_report():
    from types import SimpleNamespace

    from sacred_ray.engine.progress import Progress
    from sacred_ray.engine.tune import ProgressCallback

    terminal = _Terminal()
    bar = Progress(4, "search", stream=terminal)
    callback = ProgressCallback(bar, "loss", "min")
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    callback.on_trial_start(0, [], a)
    callback.on_trial_result(0, [], a, {"loss": 0.05})  # a's best report ...
    callback.on_trial_result(0, [], a, {"loss": 0.2})   # ... is not its last
    callback.on_trial_result(0, [], b, {"loss": 0.1})
    bar.close()
    shown = terminal.buffer.getvalue()
    # the line ends showing the best of the trials' last reports: b's 0.1, not a's earlier 0.05
    assert shown.rsplit("best last loss ", 1)[1].startswith("0.1")
    assert "] , running" not in shown and "], running 1, failed 0" in shown
