"""The grid-file language: each construct, as the trials it produces."""

import pytest

from sacred_ray.spec import SpecError, load_grid


def trials(spec, **kw):
    return load_grid(spec, **kw).trials


def values(spec, **kw):
    return [t.values for t in trials(spec, **kw)]


def test_grid_is_a_cartesian_product_with_the_first_key_slowest():
    assert values({"grid": {"a": [1, 2], "b": ["x", "y"]}}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]


def test_fixed_applies_to_every_trial_and_a_scalar_in_grid_is_one_value():
    assert values({"fixed": {"epochs": 20}, "grid": {"a": [1, 2], "b": 5}}) == [
        {"epochs": 20, "a": 1, "b": 5}, {"epochs": 20, "a": 2, "b": 5}]


def test_generators_range_linspace_logspace_and_value():
    got = values({"grid": {"depth": {"range": [2, 8, 2]}}})
    assert [v["depth"] for v in got] == [2, 4, 6]
    got = values({"grid": {"p": {"linspace": [0, 1, 5]}}})
    assert [v["p"] for v in got] == [0.0, 0.25, 0.5, 0.75, 1.0]
    got = values({"grid": {"lr": {"logspace": [1.0e-4, 1.0e-1, 4]}}})
    assert [v["lr"] for v in got] == [1e-4, 1e-3, 1e-2, 1e-1]
    got = values({"grid": {"widths": {"value": [64, 64]}, "a": [1, 2]}})
    assert [v["widths"] for v in got] == [[64, 64], [64, 64]]
    got = values({"grid": {"f": {"range": [0, 0.3, 0.1]}}})
    assert [v["f"] for v in got] == [0.0, 0.1, 0.2]


def test_dotted_and_nested_keys_mean_the_same_config_path():
    flat = trials({"grid": {"optimizer.lr": [0.1, 0.01]}})
    nested = trials({"grid": {"optimizer": {"lr": [0.1, 0.01]}}})
    assert [t.key for t in flat] == [t.key for t in nested]
    assert flat[0].config_updates == {"optimizer": {"lr": 0.1}}


def test_plus_keys_apply_named_configs_and_the_label_is_only_a_label():
    got = trials({"grid": {"+size": ["small", "large"], "+extra": [["fast", "cheap"]]}})
    assert [t.named_configs for t in got] == [("small", "fast", "cheap"), ("large", "fast", "cheap")]
    assert got[0].updates == {}
    same = trials({"grid": {"+other_label": ["small", "large"], "+x": [["fast", "cheap"]]}})
    assert [t.key for t in same] == [t.key for t in got]


def test_zip_varies_keys_together_as_one_axis():
    got = values({"grid": {"lr": [1, 2]}, "zip": {"dataset": ["c10", "c100"], "classes": [10, 100]}})
    assert got == [
        {"lr": 1, "dataset": "c10", "classes": 10}, {"lr": 1, "dataset": "c100", "classes": 100},
        {"lr": 2, "dataset": "c10", "classes": 10}, {"lr": 2, "dataset": "c100", "classes": 100}]


def test_zip_takes_several_groups():
    got = values({"zip": [{"a": [1, 2], "b": [3, 4]}, {"c": [5, 6], "d": [7, 8]}]})
    assert len(got) == 4 and {"a": 2, "b": 4, "c": 5, "d": 7} in got


def test_random_is_reproducible_per_seed_and_each_parameter_has_its_own_stream():
    spec = {"grid": {"g": [1, 2]}, "random": {"samples": 50, "seed": 7, "params": {
        "u1": {"uniform": [0.0, 1.0]}, "u2": {"uniform": [0.0, 1.0]}, "wd": {"loguniform": [1e-6, 1e-2]},
        "n": {"randint": [0, 3]}, "c": {"choice": ["a", "b"]}}}}
    first, again = values(spec), values(spec)
    assert first == again and len(first) == 100
    assert any(v["u1"] != v["u2"] for v in first)  # not in lockstep
    assert all(1e-6 <= v["wd"] <= 1e-2 for v in first)
    assert {v["n"] for v in first} == {0, 1, 2}
    assert {v["c"] for v in first} == {"a", "b"}
    other = values({**spec, "random": {**spec["random"], "seed": 8}})
    assert [v["u1"] for v in other] != [v["u1"] for v in first]


def test_adding_a_parameter_leaves_the_other_draws_unchanged():
    base = {"random": {"samples": 5, "seed": 1, "params": {"a": {"uniform": [0, 1]}}}}
    more = {"random": {"samples": 5, "seed": 1, "params": {"a": {"uniform": [0, 1]}, "b": {"randn": [0, 1]}}}}
    assert [v["a"] for v in values(base)] == [v["a"] for v in values(more)]


def test_quantized_distributions_land_on_their_grid():
    got = values({"random": {"samples": 30, "params": {
        "q": {"quniform": [0, 1, 0.25]}, "qi": {"qrandint": [0, 20, 5]}, "li": {"lograndint": [1, 100]}}}})
    assert all(v["q"] in (0.0, 0.25, 0.5, 0.75, 1.0) for v in got)
    assert all(v["qi"] % 5 == 0 for v in got)
    assert all(1 <= v["li"] < 100 and isinstance(v["li"], int) for v in got)


def test_seeds_repeat_every_trial_with_sacred_seeds():
    got = trials({"grid": {"a": [1, 2]}, "seeds": 3})
    assert [(t.values["a"], t.seed) for t in got] == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    assert got[0].config_updates == {"a": 1, "seed": 0}
    got = trials({"grid": {"a": [1]}, "seeds": [11, 42]})
    assert [t.seed for t in got] == [11, 42]


def test_exclude_drops_trials_matching_all_keys_and_a_list_means_any_of():
    spec = {"grid": {"lr": [0.1, 0.01], "depth": [2, 4, 6]}, "exclude": [{"lr": 0.1, "depth": [4, 6]}]}
    got = values(spec)
    assert {"lr": 0.1, "depth": 4} not in got and {"lr": 0.1, "depth": 6} not in got
    assert len(got) == 4


def test_exclude_matches_generated_floats_and_named_configs():
    spec = {"grid": {"lr": {"linspace": [0.1, 0.3, 3]}, "+size": ["small", "large"]},
            "exclude": [{"lr": 0.2, "+size": "large"}]}
    got = values(spec)
    assert len(got) == 5 and {"lr": 0.2, "+size": "large"} not in got


def test_variants_inherit_override_and_never_leak_keys():
    spec = {
        "fixed": {"epochs": 5}, "grid": {"lr": [0.1, 0.01]},
        "variants": {
            "recurrent": {"fixed": {"model": "LSTM"}, "grid": {"env": ["Pendulum", "Acrobot"]}},
            "feedforward": {"fixed": {"model": "MLP", "epochs": 9}, "grid": {"env": ["CartPole"], "lr": [1.0]}},
        }}
    got = trials(spec)
    rec = [t for t in got if t.variant == "recurrent"]
    ff = [t for t in got if t.variant == "feedforward"]
    assert len(rec) == 4 and len(ff) == 1
    assert {t.values["model"] for t in rec} == {"LSTM"} and {t.values["env"] for t in rec} == {"Pendulum", "Acrobot"}
    assert ff[0].values == {"epochs": 9, "model": "MLP", "lr": 1.0, "env": "CartPole"}


def test_variants_nest():
    spec = {"variants": {"a": {"fixed": {"m": "A"}, "variants": {
        "small": {"fixed": {"w": 1}}, "wide": {"grid": {"w": [8, 16]}}}}, "b": {"fixed": {"m": "B"}}}}
    got = trials(spec)
    assert [(t.variant, t.values) for t in got] == [
        ("a/small", {"m": "A", "w": 1}), ("a/wide", {"m": "A", "w": 8}),
        ("a/wide", {"m": "A", "w": 16}), ("b", {"m": "B"})]


def test_a_key_a_variant_sets_in_another_section_replaces_the_parent_definition():
    spec = {"grid": {"lr": [1, 2]}, "variants": {"fix": {"fixed": {"lr": 9}}, "keep": {}}}
    assert [t.values["lr"] for t in trials(spec)] == [9, 1, 2]


def test_duplicate_trials_are_dropped_with_a_warning():
    spec = {"variants": {"a": {"fixed": {"x": 1}}, "b": {"fixed": {"x": 1}}, "c": {"fixed": {"x": 2}}}}
    grid = load_grid(spec, source="dup.yaml")
    assert [t.values for t in grid.trials] == [{"x": 1}, {"x": 2}]
    assert grid.warnings == ["dup.yaml: dropped 1 duplicate trial(s) that run the same config as another trial"]


def test_keys_are_stable_and_derived_from_what_runs():
    a = trials({"grid": {"x": [1, 2]}, "sweep": {"name": "one"}})
    b = trials({"fixed": {"x": 2}, "variants": {"v": {}}, "sweep": {"name": "two"}})
    assert a[1].key == b[0].key
    assert len({t.key for t in trials({"grid": {"x": [1, 2], "y": [1, 2]}, "seeds": 2})}) == 8
    assert trials({"fixed": {"x": 1}})[0].key != trials({"fixed": {"x": 1}, "seeds": [0]})[0].key


def test_command_line_updates_and_named_configs_apply_to_every_trial():
    got = trials({"grid": {"x": [1, 2]}, "fixed": {"epochs": 20}}, overrides={"epochs": 3}, named_configs=("small",))
    assert [t.values["epochs"] for t in got] == [3, 3]
    assert [t.named_configs for t in got] == [("small",), ("small",)]


def test_the_sweep_section_is_parsed():
    grid = load_grid({"fixed": {"x": 1}, "sweep": {
        "name": "lr-depth", "max_concurrent": 3, "resources": {"cpu": 2, "gpu": 0.5, "memory": "1GiB", "custom": {"tpu": 1}},
        "retries": 2, "timeout": 60, "fail_fast": True, "metric": "val_loss", "mode": "min"}})
    s = grid.settings
    assert (s.name, s.max_concurrent, s.retries, s.timeout, s.fail_fast) == ("lr-depth", 3, 2, 60.0, True)
    assert (s.resources.cpu, s.resources.gpu, s.resources.memory, s.resources.custom) == (2, 0.5, 2**30, {"tpu": 1})
    assert load_grid({"fixed": {"x": 1}}, source="my grid.yaml").settings.name == "my-grid"


def test_yaml_file_is_read_with_a_safe_loader(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("grid:\n  x: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_grid(str(path))


def test_exponent_floats_are_numbers_and_unicode_keys_are_config_paths():
    """YAML 1.1 read `1e-3` as a string and swept '1e-3'; Sacred accepts a key like λ."""
    from sacred_ray.spec.yaml_file import parse_yaml

    raw = parse_yaml("grid:\n  lr: [1e-3, 2.5E+2]\n  λ: [1]\n  name: ['1e-3']\n", "g.yaml")
    (trial,) = [t for t in load_grid(raw).trials if t.values["lr"] == 0.001]
    assert trial.values == {"lr": 0.001, "λ": 1, "name": "1e-3"}
    assert sorted(t.values["lr"] for t in load_grid(raw).trials) == [0.001, 250.0]


def test_a_top_level_exclude_applies_to_the_variants_that_sweep_its_keys():
    """It used to be refused ("can never match") though it matches the variant's trials."""
    spec = {"grid": {"lr": [0.1, 0.01]}, "exclude": [{"depth": 4, "lr": 0.1}],
            "variants": {"deep": {"grid": {"depth": [2, 4]}}, "flat": {}}}
    values = [t.values for t in load_grid(spec).trials]
    assert {"lr": 0.1, "depth": 4} not in values
    assert {"lr": 0.01, "depth": 4} in values and {"lr": 0.1} in values and len(values) == 5
    with pytest.raises(SpecError, match=r"exclude\[0\]: width: is not swept or fixed in this file"):
        load_grid({**spec, "exclude": [{"width": 4}]})
    with pytest.raises(SpecError, match=r"exclude\[0\]: no variant sets all of depth, width"):
        load_grid({"grid": {"lr": [0.1]}, "exclude": [{"depth": 4, "width": 2}],
                   "variants": {"deep": {"grid": {"depth": [2, 4]}}, "wide": {"grid": {"width": [2, 4]}}}})
