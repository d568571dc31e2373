"""Arbitrary input never crashes the spec loaders: a trial list (or space) or a SpecError."""

import os
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sacred_ray.spec import GridSpec, SpaceSpec, SpecError, load_grid, load_space

WORDS = ["fixed", "grid", "zip", "random", "seeds", "exclude", "variants", "sweep", "space", "tune", "samples",
         "seed", "params", "x", "opt.lr", "+size", "+", "range", "linspace", "logspace", "value", "uniform",
         "loguniform", "choice", "randint", "qrandint", "grid", "name", "resources", "gpu", "metric", "scheduler",
         "type", "asha", "max_t", "search", "num_samples", "a b", "1x"]
keys = st.sampled_from(WORDS) | st.text(max_size=6) | st.integers(-2, 3)
leaves = (st.none() | st.booleans() | st.integers(-4, 6) | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(max_size=5) | st.sampled_from(WORDS))
values = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=4),
                      max_leaves=25)
documents = st.dictionaries(st.sampled_from(WORDS), values, max_size=6) | values


def _either(loader, document, expected):
    try:
        result = loader(document) if isinstance(document, dict) else loader(_as_file(document))
    except SpecError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(result, expected)


def _as_file(document):
    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        try:
            yaml.safe_dump(document, f)
        except yaml.YAMLError:
            f.write(repr(document))
    return path


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_grid_loader_answers_with_trials_or_its_own_error(document):
    _either(load_grid, document, GridSpec)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_space_loader_answers_with_a_space_or_its_own_error(document):
    _either(load_space, document, SpaceSpec)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_as_a_grid_file(text):
    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    try:
        assert isinstance(load_grid(path), GridSpec)
    except SpecError as e:
        assert "\n" not in str(e)
    finally:
        os.remove(path)
