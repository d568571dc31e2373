"""A mean with its spread and 95% confidence interval, for trials that differ only in their seed.

The interval is Student's t interval of the mean: ``mean +- t(0.975, n-1) * std / sqrt(n)``,
with ``std`` the sample standard deviation (``n - 1`` in the denominator). One value has a
mean and no spread (std and interval are None). No numpy or scipy: the t quantile is a
table for up to 30 degrees of freedom and the Cornish-Fisher expansion beyond (within 1e-4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

# t(0.975, df) for df = 1 .. 30
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)
_Z975 = 1.959963984540054


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t distribution with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = _Z975, float(df)
    return (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3))


@dataclass(frozen=True)
class Spread:
    """n values: their mean, sample standard deviation and 95% t interval of the mean."""

    n: int
    mean: Optional[float]
    std: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None


def spread(values: Iterable[float]) -> Spread:
    """The ``Spread`` of the finite numbers among ``values`` (others are left out)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return Spread(0, None)
    # huge values (1e160 squared, 1e308 summed) in units of the largest, so nothing overflows on
    # the way; a spread wider than floats reach comes out as inf, not an error
    largest = max(abs(x) for x in xs)
    unit = largest if largest > 1e150 else 1.0
    scaled = [x / unit for x in xs]
    mean = math.fsum(scaled) / n
    if n == 1:
        return Spread(1, xs[0])
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in scaled) / (n - 1))
    half = t975(n - 1) * std / math.sqrt(n)
    return Spread(n, mean * unit, std * unit, (mean - half) * unit, (mean + half) * unit)


__all__ = ["Spread", "spread", "t975"]
