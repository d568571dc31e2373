"""The bad-input corpus: each entry exits 2 with one line naming the file, key and fix;
no traceback, no Ray started, no sweep folder or run created."""

import os
import sys

import pytest

import sacred_ray.engine.cluster as cluster
from sacred_ray.cli import main

GOOD = "grid:\n  x: [1.0, 2.0]\n"
# a "billion laughs": 400 bytes whose aliases stand for 9**9 values
BOMB = "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
BOMB = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\n" + BOMB + "grid:\n  x: *i\n"
SPACE = "space:\n  x: {uniform: [0, 3]}\n"

# (files, arguments after the program, start of the error line after "error: ")
CORPUS = [
    ({"g.yaml": "grid: [1, 2\n"}, ["ray_sweep", "g.yaml"], "g.yaml: line 2: not valid YAML"),
    ({"g.yaml": "grid:\n  x: [1]\n  x: [2]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: line 3: key 'x' is given twice"),
    ({"g.yaml": "- x\n"}, ["ray_sweep", "g.yaml"], "g.yaml: must be a mapping of sections"),
    ({"g.yaml": ""}, ["ray_sweep", "g.yaml"], "g.yaml: is empty; give at least a grid: or fixed: section"),
    ({"g.yaml": "gird:\n  x: [1]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: gird: unknown key; accepted:"),
    ({"g.yaml": GOOD + "sweep: {concurrency: 2}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: concurrency: unknown key"),
    ({"g.yaml": GOOD + "sweep: {max_concurrent: two}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: max_concurrent: must be a whole number"),
    ({"g.yaml": GOOD + "sweep: {timeout: -3}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: timeout: must be seconds above 0"),
    ({"g.yaml": "random:\n  params: {x: {gaussian: [0, 1]}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: random: params: x: unknown distribution 'gaussian'"),
    ({"g.yaml": "random:\n  params: {x: {uniform: [0, 1, 2]}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: random: params: x: uniform: takes 2 arguments"),
    ({"g.yaml": "zip:\n  x: [1.0, 2.0]\n  y: [1]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: zip: zipped lists must have equal length"),
    ({"g.yaml": "grid: {}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: expected a non-empty mapping"),
    ({"g.yaml": "grid:\n  x: []\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: x: empty list"),
    ({"g.yaml": GOOD + "exclude: [{x: [1.0, 2.0]}]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: gives no trials (exclude removed all 2)"),
    ({"g.yaml": "grid:\n  x: {logspace: [-1, 1, 3]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: x: logspace: logspace takes positive bounds"),
    ({"g.yaml": "seeds: 0\ngrid: {x: [1.0]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: seeds: seeds must be at least 1"),
    ({"g.yaml": "variants: [a, b]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: variants: expected a mapping"),
    ({}, ["ray_sweep", "missing.yaml"], "missing.yaml: no such file"),
    ({"g.yaml": "grid:\n  stepz: [1]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: 'stepz' is not a config entry of 'toy'; did you mean 'steps'?"),
    ({"g.yaml": "grid:\n  opt.lrr: [1]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: 'opt.lrr' is not a config entry of 'toy'; did you mean 'opt.lr'?"),
    ({"g.yaml": "grid:\n  +size: [big, huge]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: +size: 'huge' is not a named config of 'toy'"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "xx=1"], "g.yaml: command line: 'xx' is not a config entry of 'toy'; did you mean 'x'?"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "tiny"], "g.yaml: command line: 'tiny' is not a named config of 'toy'"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "--frobnicate"], "command line: --frobnicate: unknown option"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "-c"], "command line: -c: needs a value"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "--dry-run=yes"], "command line: --dry-run: takes no value"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "-m", "http://db:1"], "command line: -m: cannot parse 'http://db:1'"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "-m", "mongodb://u:pw@"], "command line: -m: cannot parse 'mongodb://u:***@'"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "-m", "localhost:27017:db.runs:12"], "command line: -m: a run id to overwrite"),
    ({"g.yaml": GOOD + "sweep: {resources: {gpu: 1}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: resources: one trial needs GPU=1"),
    ({"g.yaml": GOOD + "sweep: {resources: {cpu: 512}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: resources: one trial needs CPU=512"),
    ({"g.yaml": GOOD + "sweep: {resources: {custom: {tpu: 1}}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: resources: one trial needs tpu=1"),
    ({"g.yaml": GOOD}, ["ray_sweep"], "command line: ray_sweep: needs a sweep file"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "--address", "ray://head:10001"], "command line: --address: 'ray://head:10001' is a Ray Client address"),
    ({"s.yaml": SPACE + "tune: {address: 'ray://head:10001'}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: address: 'ray://head:10001' is a Ray Client address"),
    ({"s.yaml": SPACE}, ["ray_sweep", "s.yaml"], "s.yaml: space: is a tune_with section; run this file with tune_with"),
    ({"g.yaml": GOOD}, ["tune_with", "g.yaml"], "g.yaml: grid: is a ray_sweep section; run this file with ray_sweep"),
    ({"s.yaml": "space:\n  x: [1, 2]\n"}, ["tune_with", "s.yaml"], "s.yaml: space: x: a bare list is not a distribution"),
    ({"s.yaml": SPACE + "tune: {scheduler: pbt}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: pbt needs perturbation_interval"),
    ({"s.yaml": SPACE + "tune: {metric: [loss]}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: metric: must be a metric name"),
    ({"s.yaml": "space:\n  xx: {uniform: [0, 1]}\n"}, ["tune_with", "s.yaml"], "s.yaml: space: 'xx' is not a config entry of 'toy'"),
    ({"s.yaml": SPACE + "tune: {search: optuna}\n"}, ["tune_with", "s.yaml"], 's.yaml: tune: search: optuna is not installed; pip install "sacred-ray[optuna]"'),
    ({"s.yaml": SPACE + "tune: {search: hyperopt}\n"}, ["tune_with", "s.yaml"], 's.yaml: tune: search: hyperopt is not installed; pip install "sacred-ray[hyperopt]"'),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "--address", "127.0.0.1:1"], "command line: --address: cannot reach a Ray cluster at 127.0.0.1:1"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "--address", "not an address"], "command line: --address: 'not an address' is not a Ray address"),
    ({"g.yaml": GOOD}, ["ray_sweep", "g.yaml", "--address", "head:99999"], "command line: --address: 'head:99999' is not a Ray address"),
    ({"s.yaml": SPACE + "tune: {address: '127.0.0.1:1'}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: address: cannot reach a Ray cluster at 127.0.0.1:1"),
    # small files that would eat the machine: counted before anything is built
    ({"g.yaml": BOMB}, ["ray_sweep", "g.yaml"], "g.yaml: stands for more than 100,000 values once its YAML aliases"),
    ({"g.yaml": "grid:\n  x: {range: [0, 1000000000]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: x: range: gives 1,000,000,000 values"),
    ({"g.yaml": "grid:\n  x: {range: [0.0, 1.0, 1.0e-9]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: x: range: gives 1,000,000,000 values"),
    ({"g.yaml": "grid:\n  x: {linspace: [0, 1, 1000000000]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: x: linspace: gives 1,000,000,000 values"),
    ({"g.yaml": "grid:\n  x: {logspace: [1, 10, 2000000]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: x: logspace: gives 2,000,000 values"),
    ({"g.yaml": "seeds: 1000000000\ngrid: {x: [1.0]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: seeds: 1,000,000,000 seeds is more than"),
    ({"g.yaml": "grid:\n  x: {range: [1000]}\n  y: {range: [1000]}\n  steps: {range: [1000]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: means 1,000,000,000 trials, more than 1,000,000"),
    ({"g.yaml": GOOD, "notes.txt": "mine"}, ["ray_sweep", "g.yaml", "-F", "notes.txt"], "notes.txt is a file, not a folder; give -F a folder the runs can be written to"),
    ({"g.yaml": GOOD, "notes.txt": "mine"}, ["ray_sweep", "g.yaml", "-F", "notes.txt/runs"], "notes.txt is a file; give -F a folder the runs can be written to"),
    # how-to-run settings of either file
    ({"g.yaml": GOOD + "sweep: {name: ../elsewhere}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: name: '../elsewhere' may hold only letters"),
    ({"g.yaml": GOOD + "sweep: {mode: best}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: mode: must be min or max, got 'best'"),
    ({"g.yaml": GOOD + "sweep: {retries: -1}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: retries: must be at least 0, got -1"),
    ({"g.yaml": GOOD + "sweep: {max_concurrent: 0}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: max_concurrent: must be at least 1, got 0"),
    ({"g.yaml": GOOD + "sweep: {fail_fast: maybe}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: fail_fast: must be true or false"),
    ({"g.yaml": GOOD + "sweep: {resources: {memory: lots}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: resources: memory: memory is bytes or a size like 2GiB"),
    ({"g.yaml": GOOD + "sweep: {resources: {gpu: 1.5}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: resources: gpu: a fraction of a GPU must be below 1"),
    ({"g.yaml": GOOD + "sweep: {resources: {tpu: 1}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: resources: tpu: unknown resource; accepted: cpu, gpu, memory, custom"),
    ({"g.yaml": GOOD + "sweep: {runtime_env: [torch]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: runtime_env: must be a mapping (Ray's runtime_env)"),
    ({"g.yaml": GOOD + "sweep: {dir: 5}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: dir: must be a folder path, got 5"),
    ({"s.yaml": SPACE + "tune: {num_samples: 0}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: num_samples: must be at least 1, got 0"),
    ({"s.yaml": SPACE + "tune: {max_concurrent_trials: 0}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: max_concurrent_trials: must be at least 1, got 0"),
    ({"s.yaml": SPACE + "tune: {search: {type: random, speed: 3}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: search: speed: unknown option; accepted: type, seed"),
    ({"s.yaml": SPACE + "tune: {scheduler: {type: asha, bogus: 1}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: bogus: unknown option for asha; accepted:"),
    ({"s.yaml": SPACE + "tune: {scheduler: {type: asha, max_t: -1}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: max_t: must be a number above 0, got -1"),
    # scheduler options each valid but wrong together, or that Ray would refuse once the search ran
    ({"s.yaml": SPACE + "tune: {scheduler: {type: asha, grace_period: 150}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: grace_period: must be at most max_t, 100 (ASHA's default max_t), got 150: raise max_t or lower grace_period"),
    ({"s.yaml": SPACE + "tune: {scheduler: {type: asha, max_t: 10, grace_period: 20}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: grace_period: must be at most max_t, 10, got 20"),
    ({"s.yaml": SPACE + "tune: {scheduler: {type: asha, reduction_factor: 1}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: reduction_factor: must be above 1"),
    ({"s.yaml": SPACE + "tune: {scheduler: {type: hyperband, reduction_factor: 0.5}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: reduction_factor: must be above 1"),
    ({"s.yaml": SPACE + "tune: {scheduler: {type: asha, brackets: 1.5}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: brackets: must be a whole number, got 1.5"),
    ({"s.yaml": SPACE + "tune: {scheduler: {type: median, min_samples_required: 2.5}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: min_samples_required: must be a whole number"),
    ({"s.yaml": SPACE + "tune: {scheduler: {type: pbt, perturbation_interval: 2, burn_in_period: -1}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: burn_in_period: must be a number of at least 0, got -1"),
    ({"s.yaml": SPACE + "tune: {mode: up}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: mode: must be min or max, got 'up'"),
    # distributions and generators with arguments they cannot take
    ({"s.yaml": "space:\n  x: {uniform: [1, 0]}\n"}, ["tune_with", "s.yaml"], "s.yaml: space: x: uniform: lower (1) must be below upper (0)"),
    ({"s.yaml": "space:\n  x: {loguniform: [0, 1]}\n"}, ["tune_with", "s.yaml"], "s.yaml: space: x: loguniform: lower must be positive on a log scale"),
    ({"g.yaml": "grid:\n  x: {range: [0, 10, 0]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: x: range: step must not be 0"),
    ({"g.yaml": "grid:\n  x: {linspace: [0, 1, 0]}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: x: linspace: num must be a whole number of at least 1"),
    # two definitions of one entry, and keys inside dict values
    ({"g.yaml": "grid:\n  opt.lr: [0.5]\n  opt: [{lr: 7}]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: 'opt' and 'opt.lr' both set opt.lr; set it once"),
    ({"g.yaml": "fixed: {opt: {lr: 7}}\ngrid:\n  opt.lr: [0.5]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: opt.lr: also set in fixed; set each key in one place"),
    ({"g.yaml": "grid:\n  opt: [{lrr: 7}]\n"}, ["ray_sweep", "g.yaml"], "g.yaml: grid: 'opt.lrr' is not a config entry of 'toy'; did you mean 'opt.lr'?"),
    # every setting is checked before Ray starts
    ({"s.yaml": SPACE + "tune: {max_failures: -1}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: max_failures: must be at least 0, got -1"),
    ({"s.yaml": SPACE + "tune: {scheduler: {type: asha, max_t: .nan}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: scheduler: max_t: must be a number above 0, got nan"),
    ({"s.yaml": SPACE + "tune: {search: {type: random, seed: abc}}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: search: seed: must be a whole number, got 'abc'"),
    ({"s.yaml": SPACE + "tune: {metric: ''}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: metric: must be a metric name logged with _run.log_scalar, or result; got ''"),
    ({"s.yaml": SPACE + "tune: {time_budget_s: .inf}\n"}, ["tune_with", "s.yaml"], "s.yaml: tune: time_budget_s: must be seconds above 0, got inf"),
    ({"g.yaml": GOOD + "sweep: {resources: {cpu: .nan}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: resources: cpu: must be a number at least 0, got nan"),
    ({"g.yaml": GOOD + "sweep: {resources: {custom: {CPU: 1}}}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: resources: custom: CPU: is not a custom resource; write cpu: 1 beside custom"),
    ({"g.yaml": GOOD + "sweep: {timeout: .inf}\n"}, ["ray_sweep", "g.yaml"], "g.yaml: sweep: timeout: must be seconds above 0, got inf"),
]


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for bad input")

    for module in ("sacred_ray.engine.session",):
        __import__(module)
        monkeypatch.setattr(sys.modules[module], "connect", refuse)
    monkeypatch.setattr(cluster, "connect", refuse)
    import ray

    # as from a fresh process, even when another test of this session started a Ray here
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setitem(sys.modules, "optuna", None)  # "a searcher that is not installed"
    monkeypatch.setitem(sys.modules, "hyperopt", None)


@pytest.mark.slow
@pytest.mark.parametrize("files,args,message", CORPUS, ids=[c[2][:45] for c in CORPUS])
def test_bad_input_exits_2_with_one_line(toy, tmp_path, monkeypatch, capsys, no_ray, files, args, message):
    assert len(CORPUS) + len(FOLDERS) >= 80
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    code = main(toy, ["toy.py"] + args[:1] + ["-F", "runs"] + args[1:])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: ") and message in err, err
    if "-F" in args:
        assert err.startswith("error: command line: -F: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sweeps").exists()


def test_a_near_miss_command_says_which_was_meant(toy, capsys):
    with pytest.raises(SystemExit) as exit_:
        toy.run_commandline(["toy.py", "ray_swep", "with", "g.yaml"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == "error: command line: unknown command 'ray_swep'; did you mean 'ray_sweep'?"


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files)


FOLDERS = [
    ("sweep: {dir: .}\n", "g.yaml: sweep: dir: {here} holds files that are not a sweep's"),
    ("sweep: {dir: data}\n", "g.yaml: sweep: dir: {here}/data holds files that are not a sweep's"),
    ("sweep: {dir: notes.txt}\n", "g.yaml: sweep: dir: {here}/notes.txt is a file, not a folder"),
    ("sweep: {dir: notes.txt/sub}\n", "g.yaml: sweep: dir: cannot create {here}/notes.txt/sub: {here}/notes.txt is a file"),
    ("sweep: {dir: ..}\n", "g.yaml: sweep: dir: {parent} holds files that are not a sweep's"),
]


@pytest.mark.parametrize("settings,message", FOLDERS, ids=[f[0].strip() for f in FOLDERS])
def test_a_folder_sacred_ray_did_not_make_is_never_written_or_moved(toy, tmp_path, monkeypatch, capsys, no_ray,
                                                                    settings, message):
    """`dir: .` used to rename the whole project folder on the second sweep."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "train.csv").write_text("a,b\n")
    (project / "notes.txt").write_text("mine\n")
    (project / "g.yaml").write_text(GOOD + settings)
    monkeypatch.chdir(project)
    before = _tree(tmp_path)
    for _ in range(2):
        code = main(toy, ["toy.py", "ray_sweep", "g.yaml", "-F", "runs"])
        err = capsys.readouterr().err
        assert code == 2
        expected = message.format(here=project, parent=tmp_path)
        assert err.startswith("error: " + expected), err
        assert "choose a new or empty folder with sweep: dir" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _tree(tmp_path) == before


def test_an_empty_folder_or_a_sweep_folder_is_used_and_only_a_sweep_folder_moved(toy, tmp_path, monkeypatch):
    from sacred_ray.engine.folder import MARKER, SweepFolder, check_folder

    empty = tmp_path / "empty"
    empty.mkdir()
    check_folder(str(empty), "g.yaml", "sweep: dir")
    first = SweepFolder(str(empty))
    first.record({"key": "a", "status": "COMPLETED"})
    first.close()
    assert (empty / MARKER).exists()
    check_folder(str(empty), "g.yaml", "sweep: dir")  # ours now: accepted again
    second = SweepFolder(str(empty))
    second.close()
    assert second.moved_aside and os.path.exists(os.path.join(second.moved_aside, "ledger.jsonl"))
    assert os.listdir(empty) == [MARKER]
