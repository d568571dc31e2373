"""Bad sweep files: every one is a single line naming the file, the key and the fix."""

import pytest

from sacred_ray.spec import SpecError, load_grid, load_space

BAD_GRIDS = [
    ("grid:\n  x: [1, 2]\n  x: [3]\n", "bad.yaml: line 3: key 'x' is given twice"),
    ("grid: [1, 2\n", "bad.yaml: line 2: not valid YAML"),
    ("- 1\n- 2\n", "bad.yaml: must be a mapping of sections"),
    ("", "bad.yaml: is empty"),
    ("grids:\n  x: [1]\n", "bad.yaml: grids: unknown key; accepted: fixed, grid, zip, random, seeds, exclude, variants, sweep"),
    ("grid:\n", "bad.yaml: grid: expected a non-empty mapping"),
    ("grid: {}\n", "bad.yaml: grid: expected a non-empty mapping"),
    ("grid:\n  x: []\n", "bad.yaml: grid: x: empty list; an axis needs at least one value"),
    ("grid:\n  x: {range: [1, 1]}\n", "bad.yaml: grid: x: range: gives no values"),
    ("grid:\n  x: {range: [0, 5, 0]}\n", "bad.yaml: grid: x: range: step must not be 0"),
    ("grid:\n  x: {linspace: [0, 1]}\n", "bad.yaml: grid: x: linspace: takes [lower, upper, num]"),
    ("grid:\n  x: {logspace: [0, 1, 3]}\n", "positive bounds"),
    ("grid:\n  'bad key': [1]\n", "bad.yaml: grid: 'bad key' is not a config path"),
    ("grid:\n  +: [a]\n", "'+' needs a label"),
    ("grid:\n  +size: [1]\n", "named configs are given by name"),
    ("zip:\n  a: [1, 2]\n  b: [1]\n", "bad.yaml: zip: zipped lists must have equal length (a has 2, b has 1)"),
    ("random:\n  samples: 0\n  params: {a: {uniform: [0, 1]}}\n", "bad.yaml: random: samples: must be a whole number of at least 1"),
    ("random:\n  samples: 3\n", "bad.yaml: random: samples without params"),
    ("random:\n  params: {a: {unifrom: [0, 1]}}\n", "bad.yaml: random: params: a: unknown distribution 'unifrom'; accepted: uniform"),
    ("random:\n  params: {a: {uniform: [0]}}\n", "bad.yaml: random: params: a: uniform: takes 2 arguments [lower, upper], got 1"),
    ("random:\n  params: {a: {uniform: [1, 0]}}\n", "lower (1) must be below upper (0)"),
    ("random:\n  params: {a: {loguniform: [0, 1]}}\n", "lower must be positive on a log scale"),
    ("random:\n  params: {a: {uniform: [a, 1]}}\n", "lower must be a number, got 'a'"),
    ("random:\n  params: {a: [1, 2]}\n", "a bare list is not a distribution; write {choice: [1, 2]}"),
    ("random:\n  sample: 3\n", "bad.yaml: random: sample: unknown key; accepted: samples, seed, params"),
    ("seeds: 0\n", "bad.yaml: seeds: seeds must be at least 1"),
    ("seeds: [1, 1]\n", "lists a seed twice"),
    ("seeds: many\n", "seeds is a count or a non-empty list of integers"),
    ("fixed: {seed: 3}\nseeds: 2\n", "use one of seeds: or seed"),
    ("grid: {x: [1, 2]}\nexclude:\n  - {y: 1}\n", "bad.yaml: exclude[0]: y: is not swept or fixed in this file"),
    ("grid: {x: [1, 2]}\nexclude:\n  - {x: [1, 2]}\n", "bad.yaml: gives no trials (exclude removed all 2)"),
    ("grid: {x: [1]}\nfixed: {x: 2}\n", "also set in fixed; set each key in one place"),
    ("variants: []\n", "bad.yaml: variants: expected a mapping of variant names"),
    ("variants:\n  a: {sweep: {name: x}}\n", "bad.yaml: variants: a: sweep: unknown key"),
    ("variants:\n  a: [1]\n", "bad.yaml: variants: a: a variant is a mapping"),
    ("fixed: {x: 1}\nsweep: {nmae: x}\n", "bad.yaml: sweep: nmae: unknown key; accepted: name, max_concurrent"),
    ("fixed: {x: 1}\nsweep: {name: 'a b'}\n", "bad.yaml: sweep: name: 'a b' may hold only letters"),
    ("fixed: {x: 1}\nsweep: {max_concurrent: 0}\n", "bad.yaml: sweep: max_concurrent: must be at least 1"),
    ("fixed: {x: 1}\nsweep: {resources: {gpus: 1}}\n", "bad.yaml: sweep: resources: gpus: unknown resource; accepted: cpu, gpu, memory, custom"),
    ("fixed: {x: 1}\nsweep: {resources: {gpu: 1.5}}\n", "a fraction of a GPU must be below 1"),
    ("fixed: {x: 1}\nsweep: {resources: {memory: lots}}\n", "memory is bytes or a size like 2GiB"),
    ("fixed: {x: 1}\nsweep: {timeout: -1}\n", "bad.yaml: sweep: timeout: must be seconds above 0"),
    ("fixed: {x: 1}\nsweep: {mode: biggest}\n", "bad.yaml: sweep: mode: must be min or max"),
    ("space:\n  x: {uniform: [0, 1]}\n", "bad.yaml: space: is a tune_with section; run this file with tune_with"),
    ("grid:\n  x: {range: [2000000]}\n", "means 2,000,000 trials, more than 1,000,000"),
]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SpecError, match="no-such.yaml: no such file; check the path"):
        load_grid(str(tmp_path / "no-such.yaml"))


BAD_SPACES = [
    ("space:\n  x: [1, 2]\n", "bad.yaml: space: x: a bare list is not a distribution; write {choice: [1, 2]} to sample from it or {grid: [1, 2]}"),
    ("space:\n  x: {unifrom: [0, 1]}\n", "bad.yaml: space: x: unknown distribution 'unifrom'; accepted: uniform, quniform"),
    ("space:\n  x: {randint: [1.5, 3]}\n", "lower must be a whole number"),
    ("space:\n  x: {choice: []}\n", "choice takes a non-empty list of values"),
    ("grid:\n  x: [1]\n", "bad.yaml: grid: is a ray_sweep section; run this file with ray_sweep"),
    ("fixed: {x: 1}\n", "bad.yaml: space: nothing to search"),
    ("space: {x: {uniform: [0, 1]}}\ntune: {metric: 3}\n", "bad.yaml: tune: metric: must be a metric name"),
    ("space: {x: {uniform: [0, 1]}}\ntune: {search: bayes}\n", "bad.yaml: tune: search: unknown search 'bayes'; accepted: random, grid, optuna, hyperopt"),
    ("space: {x: {uniform: [0, 1]}}\ntune: {scheduler: {type: asha, max_tt: 3}}\n", "bad.yaml: tune: scheduler: max_tt: unknown option for asha; accepted: max_t, grace_period"),
    ("space: {x: {uniform: [0, 1]}}\ntune: {scheduler: pb3}\n", "unknown scheduler 'pb3'; accepted: fifo, asha, hyperband, median, pbt"),
    ("space: {x: {uniform: [0, 1]}}\ntune: {num_samples: 0}\n", "bad.yaml: tune: num_samples: must be at least 1"),
    ("space: {x: {uniform: [0, 1]}}\ntune: {mode: up}\n", "bad.yaml: tune: mode: must be min or max"),
    ("space: {x: {uniform: [0, 1]}}\ntune: {search: grid}\n", "search: grid enumerates only grid/choice values"),
    ("space: {x: {grid: [1, 2]}}\ntune: {search: optuna}\n", "optuna cannot enumerate grid values; write {choice: [...]}"),
    ("space: {x: {uniform: [0, 1]}}\ntune: {sweep: 1}\n", "bad.yaml: tune: sweep: unknown key"),
    ("space: {+size: {uniform: [0, 1]}}\n", "named configs are searched with choice"),
]


CASES = [(load_grid, text, message) for text, message in BAD_GRIDS]
CASES += [(load_space, text, message) for text, message in BAD_SPACES]


@pytest.mark.parametrize("loader,text,message", CASES, ids=[f"{c[0].__name__}: {c[2][:40]}" for c in CASES])
def test_bad_files_give_one_line_naming_file_and_key(tmp_path, loader, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        loader(str(path))
    text = str(err.value)
    assert message in text
    assert "\n" not in text
    assert text.startswith("bad.yaml")
