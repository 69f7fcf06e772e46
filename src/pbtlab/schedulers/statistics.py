"""Statistics PBT's strategies use: Welch's t-test (numpy only, no scipy).

    >>> welch_t_test([1.0, 1.1, 0.9], [1.0, 1.1, 0.9])
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["welch_t_test"]


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test that samples ``a`` and ``b`` have the same mean (numpy only).

        >>> round(welch_t_test([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0]), 3)
        0.071
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    var_x, var_y = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    difference = float(x.mean() - y.mean())
    if var_x + var_y == 0.0:
        return 1.0 if difference == 0.0 else 0.0
    t = difference / math.sqrt(var_x + var_y)
    dof = (var_x + var_y) ** 2 / (var_x ** 2 / (len(x) - 1) + var_y ** 2 / (len(y) - 1))
    return float(_regularized_incomplete_beta(float(dof) / 2.0, 0.5, float(dof / (dof + t * t))))


def _regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), by its continued fraction (modified Lentz), using the symmetry I_x(a,b) = 1 - I_(1-x)(b,a)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _regularized_incomplete_beta(b, a, 1.0 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return math.exp(log_front) * fraction / a
