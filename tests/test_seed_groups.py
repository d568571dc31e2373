"""Seed groups: trials that differ only in their Sacred seed are one group, ranked by the mean,
with n, std and a 95% t interval, in the end table, summary.csv, groups.csv and best.yaml."""

import csv
import math
import shutil

import pytest
import yaml
from conftest import EXPERIMENTS, run_cli, write

from sacred_ray.stats import spread, t975

HALF = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * std 1 / sqrt(3)


@pytest.mark.slow
def test_the_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in list(range(1, 200)) + [500, 10_000]:
        assert t975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-5 if df <= 30 else 2e-4)


def test_spread_of_known_values():
    s = spread([9.0, 10.0, 11.0, None, float("nan")])
    assert (s.n, s.mean, s.std) == (3, 10.0, 1.0)
    assert (s.low, s.high) == pytest.approx((10 - HALF, 10 + HALF), abs=1e-3)
    one = spread([4.0])
    assert (one.n, one.mean, one.std, one.low) == (1, 4.0, None, None)
    assert spread([]).mean is None


def test_spread_of_numbers_whose_squares_or_sums_overflow():
    s = spread([1e200, 2e200, float("inf")])  # inf is left out, as NaN is
    assert (s.n, s.mean) == (2, pytest.approx(1.5e200)) and s.std == pytest.approx(2 ** -0.5 * 1e200)
    assert spread([1e308, 1e308]).mean == 1e308  # their sum is past the largest float
    wide = spread([1.7e308, -1.7e308])
    assert (wide.mean, wide.std, wide.low, wide.high) == (0.0, float("inf"), float("-inf"), float("inf"))


@pytest.mark.slow
def test_a_sweep_over_seeds_ranks_configurations_by_their_mean(tmp_path):
    shutil.copy(f"{EXPERIMENTS}/noisy.py", tmp_path / "noisy.py")
    write(tmp_path / "seeds.yaml", "grid:\n  lr: [1.0, 3.0, 4.0, 9.0]\nseeds: [0, 1, 2]\nfixed: {fail_at: 9.0}\n")
    proc = run_cli(["noisy.py", "ray_sweep", "with", "seeds.yaml", "-F", "runs"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # lr 9 fails in every seed
    out = proc.stdout
    # the table: configurations ranked by mean result (higher is better), n, failed, std, CI
    assert "4 configurations x seeds, ranked by the mean result (max)" in out
    table = out[out.index("lr "):].splitlines()
    assert table[2].split()[:5] == ["3", "3", "0", "10", "1"]  # lr 3: base 10
    assert table[3].split()[:5] == ["4", "3", "0", "9", "1"]
    assert table[4].split()[:5] == ["1", "3", "0", "6", "1"]
    assert table[5].split()[:4] == ["9", "0", "3", "-"]  # every seed failed: no mean
    assert f"[{10 - HALF:.6g}, {10 + HALF:.6g}]" in table[2]
    assert f"result mean 10 +- 1 std over 3 seed(s), 95% CI [{10 - HALF:.6g}, {10 + HALF:.6g}]" in out
    assert "failed: trial 9" in out and "ValueError: lr 9.0 diverged" in out

    folder = tmp_path / "sweeps" / "seeds"
    groups = list(csv.DictReader(open(folder / "groups.csv")))
    assert [float(g["lr"]) for g in groups] == [3.0, 4.0, 1.0, 9.0]
    assert float(groups[0]["mean"]) == 10 and float(groups[0]["std"]) == 1
    assert float(groups[0]["ci95_low"]) == pytest.approx(10 - HALF) and float(groups[0]["ci95_high"]) == \
        pytest.approx(10 + HALF)
    assert groups[3]["n"] == "0" and groups[3]["failed"] == "3" and groups[3]["mean"] == ""
    summary = list(csv.DictReader(open(folder / "summary.csv")))
    assert len(summary) == 12
    assert [r["group"] for r in summary[:3]] == ["0", "0", "0"] and {r["lr"] for r in summary[:3]} == {"3.0"}
    assert sorted(float(r["result"]) for r in summary[:3]) == [9.0, 10.0, 11.0]
    assert float(summary[0]["group_mean"]) == 10 and summary[0]["group_n"] == "3"

    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["lr"] == 3.0 and "seed" not in best and best["steps"] == 5
    # best.yaml runs as Sacred loads it, with a seed Sacred draws
    again = run_cli(["noisy.py", "with", str(folder / "best.yaml")], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Result:" in again.stderr or "Completed after" in again.stderr
