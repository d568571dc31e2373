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
from typing import Any

from .errors import SpecError

# name -> (argument names, number of required arguments)
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], int]] = {
    "uniform": (("lower", "upper"), 2),
    "quniform": (("lower", "upper", "q"), 3),
    "loguniform": (("lower", "upper", "base"), 2),
    "qloguniform": (("lower", "upper", "q", "base"), 3),
    "randn": (("mean", "sd"), 0),
    "qrandn": (("mean", "sd", "q"), 3),
    "randint": (("lower", "upper"), 2),
    "qrandint": (("lower", "upper", "q"), 2),
    "lograndint": (("lower", "upper", "base"), 2),
    "qlograndint": (("lower", "upper", "q", "base"), 3),
    "choice": ((), 1),
    "grid": ((), 1),
    "value": ((), 0),
}
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
    def categories(self) -> list:
        return list(self.args)

    def sample(self, rng: random.Random) -> Any:
        """Draw one value the way Ray Tune's sampler of the same name would."""
        n, a = self.name, self.args
        if n == "value":
            return a[0]
        if n in ("choice", "grid"):
            return a[rng.randrange(len(a))]
        if n == "uniform":
            return rng.uniform(a[0], a[1])
        if n == "quniform":
            return clean_float(round(rng.uniform(a[0], a[1]) / a[2]) * a[2])
        if n in ("loguniform", "qloguniform"):
            base = a[3] if n == "qloguniform" and len(a) > 3 else (a[2] if n == "loguniform" and len(a) > 2 else 10)
            lo, hi = math.log(a[0], base), math.log(a[1], base)
            x = base ** rng.uniform(lo, hi)
            return clean_float(round(x / a[2]) * a[2]) if n == "qloguniform" else x
        if n in ("randn", "qrandn"):
            mean = a[0] if len(a) > 0 else 0.0
            sd = a[1] if len(a) > 1 else 1.0
            x = rng.gauss(mean, sd)
            return clean_float(round(x / a[2]) * a[2]) if n == "qrandn" else x
        if n == "randint":
            return rng.randrange(int(a[0]), int(a[1]))
        if n == "qrandint":
            q = int(a[2]) if len(a) > 2 else 1
            return int(round(rng.randint(int(a[0]), int(a[1])) / q) * q)
        if n in ("lograndint", "qlograndint"):
            lo, hi = math.log(a[0]), math.log(a[1])
            x = math.exp(rng.uniform(lo, hi))
            if n == "lograndint":
                return min(int(x), int(a[1]) - 1)
            q = int(a[2])
            return int(round(x / q) * q)
        raise AssertionError(n)

    def describe(self) -> str:
        if self.name == "value":
            return repr(self.args[0])
        return f"{self.name}({', '.join(repr(x) for x in self.args)})"


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
    arg = dict(zip(names, values))
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
        values = [int(v) for v in values]
    return Distribution(name, tuple(values))


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
        if all(isinstance(v, int) for v in (start, stop, step)):
            values = list(range(start, stop, step))
        else:
            count = max(0, math.ceil((stop - start) / step - 1e-9))
            values = [clean_float(start + i * step) for i in range(count)]
    else:
        if len(args) != 3:
            raise SpecError(source, where, f"takes [lower, upper, num], got {args!r}")
        lo = _number(args[0], source, where, "lower")
        hi = _number(args[1], source, where, "upper")
        num = args[2]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise SpecError(source, where, f"num must be a whole number of at least 1, got {num!r}")
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
