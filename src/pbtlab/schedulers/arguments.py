"""Checks of scheduler arguments, shared by the schedulers: each bad value is a ConfigError naming it.

    >>> number("quantile_fraction", 0.25, 0, 0.5)
    0.25
    >>> number("quantile_fraction", 0.7, 0, 0.5)
    Traceback (most recent call last):
    ...
    pbtlab.errors.ConfigError: quantile_fraction must be in [0, 0.5], got 0.7
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError, describe
from pbtlab.space import Domain, Function, GridSearch

__all__ = ["check_mutations", "number"]


def check_mutations(mutations: Any, path: str = "hyperparam_mutations") -> None:
    """``hyperparam_mutations``: per key a domain, a non-empty list, a function of no arguments, or a dict."""
    if not isinstance(mutations, Mapping):
        raise ConfigError(f"{path} must be a dict, got {describe(mutations)}")
    for key, value in mutations.items():
        where = f"{path}[{key!r}]"
        if isinstance(value, Function):
            raise ConfigError(
                f"{where} is a tune.sample_from(...), which PBT cannot perturb: it must be a domain such as "
                f"tune.uniform(...), a list of values, or a function of no arguments; got {value!r}")
        if isinstance(value, GridSearch):
            raise ConfigError(f"{where} is a tune.grid_search(...): it must be a domain, a list or a callable; "
                              f"got {value!r}")
        if isinstance(value, Mapping):
            if not value:
                raise ConfigError(f"{where} must be a non-empty dict of mutations; got {{}}")
            check_mutations(value, where)
        elif isinstance(value, (list, tuple)):
            if not value:
                raise ConfigError(f"{where} must be a non-empty list of the values to choose from; got {value!r}")
        elif not isinstance(value, Domain) and not callable(value):
            raise ConfigError(
                f"{where} must be a dict, list, tuple, tune domain or callable, got {describe(value)}")


def number(name: str, value: Any, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> float:
    """``value`` as a float, if it is a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be a finite number, got {describe(value)}")
    value = float(value)
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and value > high
    if bad_low or bad_high:
        left = "(" if low_open else "["
        allowed = f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ConfigError(f"{name} must be in {allowed}, got {value:g}")
    return value
