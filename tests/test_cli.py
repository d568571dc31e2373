"""The command line as a user types it: --dry-run, errors, help, and plain Sacred untouched."""

import os

import pytest
from conftest import EXAMPLES, cli_env, run_cli, write

DIGITS = os.path.join(EXAMPLES, "digits.py")
GRID = os.path.join(EXAMPLES, "grid.yaml")
# If anything tried to reach Ray, it would fail against this address: a dry run must not.
NO_RAY = cli_env(RAY_ADDRESS="127.0.0.1:9")


@pytest.mark.slow
@pytest.mark.parametrize("spelling", [["ray_sweep", "with", GRID], ["ray_sweep", GRID]])
def test_dry_run_prints_the_trials_and_starts_nothing(tmp_path, spelling):
    proc = run_cli([DIGITS] + spelling + ["--dry-run", "-F", "runs"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "10 trials"
    assert "every trial: epochs=10" in proc.stdout
    header = next(line for line in lines if line.startswith("#"))
    assert header.split() == ["#", "variant", "optimizer.name", "optimizer.lr", "+size", "key"]
    assert sum(1 for line in lines if line.split()[:2] in (["0", "adam"], ["9", "sgd"])) == 2
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_updates_and_named_configs_on_the_line_apply_to_every_trial(tmp_path):
    proc = run_cli([DIGITS, "ray_sweep", "with", GRID, "epochs=3", "alpha=0.5", "large", "--dry-run"],
                   cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0, proc.stderr
    assert "every trial: epochs=3, alpha=0.5, +command line=large" in proc.stdout
    assert proc.stdout.strip().endswith("10 trials")


@pytest.mark.slow
def test_sacred_flags_are_accepted_for_the_trials(tmp_path):
    proc = run_cli([DIGITS, "ray_sweep", GRID, "-c", "my comment", "-n", "other", "-l", "WARNING",
                    "--beat-interval=2", "-F", "runs", "--dry-run"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("10 trials")


@pytest.mark.slow
@pytest.mark.parametrize("spelling", [["tune_with"], ["tune_with", "with"]])
def test_tune_dry_run_prints_the_compiled_space(tmp_path, spelling):
    space = os.path.join(EXAMPLES, "space.yaml")
    proc = run_cli([DIGITS] + spelling + [space, "--dry-run"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0, proc.stderr
    assert "loguniform(" in proc.stdout and "asha" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].endswith("trials")


ERRORS = [
    ("grid:\n  optimizer.lr2: [0.1]\n", [],
     "error: bad.yaml: grid: 'optimizer.lr2' is not a config entry of 'digits'; did you mean 'optimizer.lr'?"),
    ("variants:\n  a:\n    grid:\n      hiden: [[8]]\n", [],
     "error: bad.yaml: variants: a: grid: 'hiden' is not a config entry of 'digits'; did you mean 'hidden'?"),
    ("grid:\n  +size: [small, huge]\n", [],
     "error: bad.yaml: grid: +size: 'huge' is not a named config of 'digits' (named configs: small, large)"),
    ("grid:\n  alpha: {rnage: [1, 3]}\n", [],
     "error: bad.yaml: grid: 'alpha.rnage' is not a config entry of 'digits'; did you mean {range: ...} for 'alpha'?"),
    ("grid:\n  alpha: [0.1]\n", ["epochz=3"],
     "error: bad.yaml: command line: 'epochz' is not a config entry of 'digits'; did you mean 'epochs'?"),
    ("grid:\n  alpha: [0.1]\n", ["--bogus"],
     "error: command line: --bogus: unknown option; see digits.py ray_sweep --help"),
    ("grid:\n  alpha: [0.1]\n", ["-m", "mongodb:/x"],
     "error: command line: -m: cannot parse 'mongodb:/x'; use [host:port:]db_name[.collection]"),
    ("grid:\n  alpha: [0.1]\n", ["-F"], "error: command line: -F: needs a value"),
    ("grid:\n  alpha: [0.1]\n  alpha: [0.2]\n", [], "error: bad.yaml: line 3: key 'alpha' is given twice"),
]


@pytest.mark.slow
@pytest.mark.parametrize("text,extra,message", ERRORS, ids=[e[2][7:50] for e in ERRORS])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, text, extra, message):
    write(tmp_path / "bad.yaml", text)
    proc = run_cli([DIGITS, "ray_sweep", "with", "bad.yaml", "-F", "runs"] + extra, cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_missing_sweep_file_and_missing_file_argument(tmp_path):
    proc = run_cli([DIGITS, "ray_sweep", "with", "nope.yaml"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file; check the path of the sweep file"
    proc = run_cli([DIGITS, "tune_with"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: command line: tune_with: needs a sweep file: digits.py tune_with with space.yaml"


@pytest.mark.slow
def test_help_lists_both_commands(tmp_path):
    proc = run_cli([DIGITS, "--help"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0
    commands = proc.stdout.split("Commands:")[1]
    assert "ray_sweep" in commands and "tune_with" in commands
    proc = run_cli([DIGITS, "ray_sweep", "--help"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0 and "--dry-run" in proc.stdout and "ray_sweep [with] GRID.yaml" in proc.stdout


@pytest.mark.slow
def test_plain_sacred_use_is_unchanged(tmp_path):
    proc = run_cli([DIGITS, "with", "epochs=1", "optimizer.lr=0.01", "-F", "runs"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and "Completed after" in proc.stderr
    assert (tmp_path / "runs" / "1" / "run.json").exists()
    proc = run_cli([DIGITS, "print_config", "with", "epochs=2"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0 and "epochs = 2" in proc.stdout
    # Sacred still refuses what it always refused
    proc = run_cli([DIGITS, "with", "nonexistent_key=1"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 1 and "nonexistent_key" in proc.stderr


EXITING = """\
import atexit
import gc

from sacred import Experiment

import sacred_ray  # noqa: F401

ex = Experiment("exiting")
atexit.register(lambda: print("the script's own atexit handler ran; heap frozen:", gc.get_freeze_count() > 0))


@ex.config
def config():
    x = 1


@ex.automain
@ex.distribute
def main(x):
    return x
"""


@pytest.mark.slow
def test_a_commands_exit_skips_the_final_collections_and_keeps_the_scripts_atexit(tmp_path):
    write(tmp_path / "exiting.py", EXITING)
    write(tmp_path / "grid.yaml", "grid:\n  x: [1, 2]\n")
    proc = run_cli(["exiting.py", "ray_sweep", "grid.yaml", "--dry-run"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0, proc.stderr
    assert "the script's own atexit handler ran; heap frozen: True" in proc.stdout
    proc = run_cli(["exiting.py", "with", "x=2"], cwd=tmp_path, env=NO_RAY)  # Sacred's own commands: as before
    assert proc.returncode == 0, proc.stderr
    assert "the script's own atexit handler ran; heap frozen: False" in proc.stdout


@pytest.mark.slow
def test_a_space_dry_run_shows_values_as_written_and_how_the_count_comes_about(tmp_path):
    write(tmp_path / "space.yaml", "space:\n  epochs: {grid: {range: [1, 4]}}\n  alpha: {uniform: [0, 1]}\n"
                                   "  +size: {choice: [small, large]}\n"
                                   "variants:\n  a: {fixed: {batch_size: 32}}\n  b: {fixed: {batch_size: 128}}\n"
                                   "tune: {num_samples: 6}\n")
    proc = run_cli([DIGITS, "tune_with", "space.yaml", "--dry-run"], cwd=tmp_path, env=NO_RAY)
    assert proc.returncode == 0, proc.stderr
    assert "choice(small, large)" in proc.stdout and "grid(1, 2, 3)" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "6 samples x 6 variants x grid points = 36 trials"


def test_the_examples_extra_installs_what_every_readme_example_needs():
    import configparser

    from conftest import REPO

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    extra = cfg["options.extras_require"]["examples"]
    assert "scikit-learn" in extra and "optuna" in extra  # control.py's search is Optuna's
