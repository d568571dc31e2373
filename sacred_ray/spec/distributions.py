"""Distributions and value generators of the sweep-file language.

A parameter written as a one-key mapping names a distribution (``{uniform: [0, 1]}``)
or a generator of grid values (``{range: [2, 8, 2]}``). Distribution names and
arguments are Ray Tune's (``ray.tune.uniform`` ...), so the same file means the same
thing in ``random.params`` (sampled here, reproducibly) and in ``space`` (compiled to
Tune by the engine).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .errors import SpecError

PRIMITIVE = (str, int, float, bool, type(None))


def _quantized(x: float, q: float) -> float:
    return clean_float(round(x / q) * q)


def _categories(args: tuple) -> list:
    """What a searcher chooses among: the values, or their positions when they are not plain."""
    return list(args) if all(isinstance(c, PRIMITIVE) for c in args) else list(range(len(args)))


def _log_uniform(rng: random.Random, lo: float, hi: float, base: float) -> float:
    return base ** rng.uniform(math.log(lo, base), math.log(hi, base))


def _arg(args: tuple, i: int, default: Any) -> Any:
    return args[i] if len(args) > i else default


@dataclass(frozen=True)
class Kind:
    """One distribution of the language, in every form it takes.

    ``params`` are its arguments (Ray Tune's names and order), of which ``required`` must
    be given. ``sample(args, rng)`` draws a value as Tune's sampler of the same name would
    (ray_sweep's random section and tune_with's own generator use it). ``optuna(trial,
    name, args)`` suggests a value through an Optuna trial and ``hyperopt(hp, label, args)``
    builds hyperopt's expression; None where that searcher cannot express it. A searcher
    hands back a position for ``categorical`` kinds whose values are not plain, and a float
    for ``integer`` kinds (``decode`` undoes both)."""

    params: tuple
    required: int
    sample: Callable
    optuna: Optional[Callable] = None
    hyperopt: Optional[Callable] = None
    integer: bool = False
    categorical: bool = False

    def decode(self, args: tuple, raw: Any) -> Any:
        """A searcher's suggestion as the value the trial runs with."""
        raw = raw.item() if hasattr(raw, "item") else raw  # numpy scalars from the searcher
        if self.categorical and not all(isinstance(c, PRIMITIVE) for c in args):
            return args[int(raw)]
        return int(round(raw)) if self.integer else raw


KINDS: dict = {
    "uniform": Kind(
        ("lower", "upper"), 2, lambda a, rng: rng.uniform(a[0], a[1]),
        optuna=lambda t, n, a: t.suggest_float(n, a[0], a[1]),
        hyperopt=lambda hp, n, a: hp.uniform(n, a[0], a[1])),
    "quniform": Kind(
        ("lower", "upper", "q"), 3, lambda a, rng: _quantized(rng.uniform(a[0], a[1]), a[2]),
        optuna=lambda t, n, a: t.suggest_float(n, a[0], a[1], step=a[2]),
        hyperopt=lambda hp, n, a: hp.quniform(n, a[0], a[1], a[2])),
    "loguniform": Kind(
        ("lower", "upper", "base"), 2, lambda a, rng: _log_uniform(rng, a[0], a[1], _arg(a, 2, 10)),
        optuna=lambda t, n, a: t.suggest_float(n, a[0], a[1], log=True),
        hyperopt=lambda hp, n, a: hp.loguniform(n, math.log(a[0]), math.log(a[1]))),
    "qloguniform": Kind(
        ("lower", "upper", "q", "base"), 3,
        lambda a, rng: _quantized(_log_uniform(rng, a[0], a[1], _arg(a, 3, 10)), a[2]),
        optuna=lambda t, n, a: _quantized(t.suggest_float(n, a[0], a[1], log=True), a[2]),
        hyperopt=lambda hp, n, a: hp.qloguniform(n, math.log(a[0]), math.log(a[1]), a[2])),
    "randn": Kind(
        ("mean", "sd"), 0, lambda a, rng: rng.gauss(_arg(a, 0, 0.0), _arg(a, 1, 1.0)),
        hyperopt=lambda hp, n, a: hp.normal(n, _arg(a, 0, 0.0), _arg(a, 1, 1.0))),
    "qrandn": Kind(
        ("mean", "sd", "q"), 3, lambda a, rng: _quantized(rng.gauss(a[0], a[1]), a[2]),
        hyperopt=lambda hp, n, a: hp.qnormal(n, a[0], a[1], a[2])),
    "randint": Kind(
        ("lower", "upper"), 2, lambda a, rng: rng.randrange(int(a[0]), int(a[1])),
        optuna=lambda t, n, a: t.suggest_int(n, a[0], a[1] - 1),
        hyperopt=lambda hp, n, a: hp.randint(n, a[0], a[1]), integer=True),
    "qrandint": Kind(
        ("lower", "upper", "q"), 2,
        lambda a, rng: int(round(rng.randint(int(a[0]), int(a[1])) / _arg(a, 2, 1)) * _arg(a, 2, 1)),
        optuna=lambda t, n, a: t.suggest_int(n, a[0], a[1], step=_arg(a, 2, 1)),
        hyperopt=lambda hp, n, a: hp.quniform(n, a[0], a[1], _arg(a, 2, 1)), integer=True),
    "lograndint": Kind(
        ("lower", "upper", "base"), 2,
        lambda a, rng: min(int(math.exp(rng.uniform(math.log(a[0]), math.log(a[1])))), int(a[1]) - 1),
        optuna=lambda t, n, a: t.suggest_int(n, a[0], a[1] - 1, log=True),
        hyperopt=lambda hp, n, a: hp.qloguniform(n, math.log(a[0]), math.log(a[1] - 1), 1), integer=True),
    "qlograndint": Kind(
        ("lower", "upper", "q", "base"), 3,
        lambda a, rng: int(round(math.exp(rng.uniform(math.log(a[0]), math.log(a[1]))) / a[2]) * a[2]),
        optuna=lambda t, n, a: int(round(t.suggest_int(n, a[0], a[1], log=True) / a[2]) * a[2]),
        hyperopt=lambda hp, n, a: hp.qloguniform(n, math.log(a[0]), math.log(a[1]), a[2]), integer=True),
    "choice": Kind(
        (), 1, lambda a, rng: a[rng.randrange(len(a))],
        optuna=lambda t, n, a: t.suggest_categorical(n, _categories(a)),
        hyperopt=lambda hp, n, a: hp.choice(n, _categories(a)), categorical=True),
    "grid": Kind((), 1, lambda a, rng: a[rng.randrange(len(a))], categorical=True),
    "value": Kind((), 0, lambda a, rng: a[0], optuna=lambda t, n, a: a[0], hyperopt=lambda hp, n, a: a[0]),
}
# name -> (argument names, number of required arguments): what a file may write
DISTRIBUTIONS: dict = {name: (kind.params, kind.required) for name, kind in KINDS.items()}
GENERATORS = ("range", "linspace", "logspace", "value")
SAMPLED = tuple(n for n in DISTRIBUTIONS if n not in ("grid", "value"))


def _accepted(names: Sequence[str]) -> str:
    return ", ".join(names)


def clean_float(x: float) -> float:
    """Round away binary noise (0.30000000000000004 -> 0.3) so values read as written."""
    return float(f"{x:.12g}")


def _number(value: Any, source: str, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(source, where, f"{what} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(source, where, f"{what} must be a finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class Distribution:
    """One sampled (or, for ``grid``/``value``, enumerated) parameter.

    ``name`` is a Tune distribution name, ``args`` its positional arguments
    (``choice`` and ``grid``: the list of categories; ``value``: ``(constant,)``).
    """

    name: str
    args: tuple

    @property
    def kind(self) -> Kind:
        return KINDS[self.name]

    def sample(self, rng: random.Random) -> Any:
        """Draw one value the way Ray Tune's sampler of the same name would."""
        return self.kind.sample(self.args, rng)

    def nearest(self, value: Any) -> Any:
        """The value this distribution can draw that is nearest ``value``: inside its bounds (a
        randint's upper bound excluded), on its step ``q``, whole for the integer kinds. PBT's
        explore scales a value by 0.8 or 1.2; this keeps the result in the space the user gave."""
        if (self.kind.categorical or self.name == "value" or isinstance(value, bool)
                or not isinstance(value, (int, float)) or not math.isfinite(value)):
            return value
        arg = dict(zip(self.kind.params, self.args))
        q, lo, hi, x = arg.get("q"), arg.get("lower"), arg.get("upper"), float(value)
        if q:
            x = round(x / q) * q
        if lo is not None:
            if self.name in ("randint", "lograndint"):
                hi -= 1
            if q and math.ceil(lo / q - 1e-9) <= math.floor(hi / q + 1e-9):
                lo, hi = math.ceil(lo / q - 1e-9) * q, math.floor(hi / q + 1e-9) * q  # the outermost steps inside
            x = min(max(x, lo), hi)
        if self.kind.integer:
            return int(round(x))
        return clean_float(x) if q else x

    def describe(self) -> str:
        """As a person would write it: ``choice(small, large)``, ``uniform(0, 1)``."""
        if self.name == "value":
            return _shown(self.args[0])
        return f"{self.name}({', '.join(_shown(x) for x in self.args)})"


def _shown(value: Any) -> str:
    if isinstance(value, tuple):  # a named-config choice: the names it applies
        return _shown(value[0]) if len(value) == 1 else "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, str) and value and value.strip() == value and "," not in value:
        return value
    return repr(value)


def parse_distribution(
    raw: Any, source: str, where: str, allowed: Sequence[str]
) -> Distribution:
    """Parse ``{name: args}`` into a Distribution, checking names and arguments."""
    if isinstance(raw, list):
        raise SpecError(
            source, where,
            f"a bare list is not a distribution; write {{choice: {raw!r}}} to sample "
            f"from it or {{grid: {raw!r}}} to try each (accepted: {_accepted(allowed)})",
        )
    if not isinstance(raw, dict) or len(raw) != 1:
        if not isinstance(raw, dict):
            raise SpecError(
                source, where,
                f"expected a distribution like {{uniform: [0, 1]}} or {{value: {raw!r}}}, "
                f"got {raw!r} (accepted: {_accepted(allowed)})",
            )
        raise SpecError(
            source, where,
            f"a distribution is a mapping with exactly one key, got {sorted(map(str, raw))} "
            f"(accepted: {_accepted(allowed)})",
        )
    (name, args), = raw.items()
    if name not in allowed:
        raise SpecError(
            source, where,
            f"unknown distribution {name!r}; accepted: {_accepted(allowed)}",
        )
    return make_distribution(name, args, source, f"{where}: {name}")


def make_distribution(name: str, args: Any, source: str, where: str) -> Distribution:
    if name == "value":
        return Distribution("value", (args,))
    if name == "grid" and isinstance(args, dict) and len(args) == 1 and next(iter(args)) in GENERATORS:
        (generator, generator_args), = args.items()  # {grid: {range: [1, 10]}}, as in a grid file
        args = expand_generator(generator, generator_args, source, f"{where}: {generator}")
    if name in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise SpecError(source, where, f"{name} takes a non-empty list of values, got {args!r}")
        return Distribution(name, tuple(args))
    names, required = DISTRIBUTIONS[name]
    if args is None:
        args = []
    if not isinstance(args, list):
        args = [args]
    if not required <= len(args) <= len(names):
        count = str(required) if required == len(names) else f"{required} to {len(names)}"
        raise SpecError(
            source, where,
            f"takes {count} arguments [{', '.join(names)}], got {len(args)}",
        )
    values = [_number(v, source, where, argname) for v, argname in zip(args, names)]
    _check_arguments(name, dict(zip(names, values)), source, where)
    if name.endswith("randint"):
        values = [int(v) for v in values]
    return Distribution(name, tuple(values))


def _check_arguments(name: str, arg: dict, source: str, where: str) -> None:
    """What each argument must be, by its name: bounds in order, positive scales and steps."""
    if "lower" in arg and not arg["lower"] < arg["upper"]:
        raise SpecError(source, where, f"lower ({arg['lower']}) must be below upper ({arg['upper']})")
    if name.startswith(("log", "qlog")) and arg["lower"] <= 0:
        raise SpecError(source, where, f"lower must be positive on a log scale, got {arg['lower']}")
    if "q" in arg and arg["q"] <= 0:
        raise SpecError(source, where, f"q must be positive, got {arg['q']}")
    if "sd" in arg and arg["sd"] <= 0:
        raise SpecError(source, where, f"sd must be positive, got {arg['sd']}")
    if "base" in arg and (arg["base"] <= 0 or arg["base"] == 1):
        raise SpecError(source, where, f"base must be positive and not 1, got {arg['base']}")
    if name.endswith("randint"):
        for k in ("lower", "upper", "q"):
            if k in arg and not float(arg[k]).is_integer():
                raise SpecError(source, where, f"{k} must be a whole number, got {arg[k]}")


MAX_VALUES = 1_000_000  # values one generator may give: a sweep has at most this many trials


def _not_too_many(count: int, source: str, where: str) -> None:
    if count > MAX_VALUES:
        raise SpecError(source, where, f"gives {count:,} values, so the sweep means {count:,} trials, more than "
                                       f"{MAX_VALUES:,} (or more, times its other axes); use a larger step or random sampling")


def expand_generator(name: str, args: Any, source: str, where: str) -> list:
    """The list of values of a grid generator: range, linspace, logspace, value."""
    if name == "value":
        return [args]
    if not isinstance(args, list):
        args = [args]
    if name == "range":
        if not 1 <= len(args) <= 3:
            raise SpecError(source, where, f"takes [stop], [start, stop] or [start, stop, step], got {args!r}")
        nums = [_number(v, source, where, "range bound") for v in args]
        start, stop, step = (0, nums[0], 1) if len(nums) == 1 else (nums + [1])[:3]
        if step == 0:
            raise SpecError(source, where, "step must not be 0")
        integers = all(isinstance(v, int) for v in (start, stop, step))
        count = len(range(start, stop, step)) if integers else max(0, math.ceil((stop - start) / step - 1e-9))
        _not_too_many(count, source, where)  # counted before anything is built
        values = list(range(start, stop, step)) if integers else [clean_float(start + i * step) for i in range(count)]
    else:
        if len(args) != 3:
            raise SpecError(source, where, f"takes [lower, upper, num], got {args!r}")
        lo = _number(args[0], source, where, "lower")
        hi = _number(args[1], source, where, "upper")
        num = args[2]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise SpecError(source, where, f"num must be a whole number of at least 1, got {num!r}")
        _not_too_many(num, source, where)
        if name == "linspace":
            values = [clean_float(lo + (hi - lo) * i / max(num - 1, 1)) for i in range(num)]
        else:
            if lo <= 0 or hi <= 0:
                raise SpecError(source, where, "logspace takes positive bounds [lower, upper, num], like numpy.geomspace")
            ratio = math.log(hi / lo)
            values = [clean_float(lo * math.exp(ratio * i / max(num - 1, 1))) for i in range(num)]
    if not values:
        raise SpecError(source, where, f"gives no values: {args!r}")
    return values
