"""Ray Tune 2.60's public names, and what ``pbtlab run`` and ``pbtlab.tune`` answer for each.

``ray_tune_names.json`` lists every public name of every ``ray.tune`` module (written from the Ray wheel by
``scripts/ray_tune_names.py``; ``tests/test_ray_names.py`` checks it against the installed Ray). A name pbtlab
has is pbtlab's object; a constant (``ray.tune.result.SHOULD_CHECKPOINT``) is its value; any other listed name
imports as an :class:`~pbtlab.unsupported.UnsupportedName` that raises :class:`RayFeatureError` when used,
naming it and what to use instead. A name Ray does not have is an import error, as in Ray.

    >>> is_ray_tune_name("ray.tune.schedulers", "HyperBandForBOHB"), is_ray_tune_name("ray.tune", "NoSuchThing")
    (True, False)
    >>> placeholder("ray.tune.CLIReporter")(metric_columns=["loss"])
    Traceback (most recent call last):
    ...
    pbtlab.compat.ray.advice.RayFeatureError: ray.tune.CLIReporter is not supported by pbtlab: use RunConfig(verbose=0|1|2) ...
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from pbtlab.compat.ray.advice import RayFeatureError, advice_for
from pbtlab.unsupported import UnsupportedName

__all__ = ["constants", "is_ray_tune_module", "is_ray_tune_name", "module_names", "placeholder"]

TABLE = os.path.join(os.path.dirname(__file__), "ray_tune_names.json")


@functools.cache
def _table() -> dict[str, Any]:
    with open(TABLE, encoding="utf-8") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


def module_names(module: str) -> frozenset[str]:
    """The public names of Ray Tune module ``module`` (empty for a module Ray does not have)."""
    return frozenset(_table()["modules"].get(module, ()))


def is_ray_tune_module(module: str) -> bool:
    return module in _table()["modules"]


def is_ray_tune_name(module: str, name: str) -> bool:
    return name in module_names(module)


def constants(module: str) -> dict[str, Any]:
    """The module's constants with Ray's values (tuples as tuples)."""
    values = _table()["constants"].get(module, {})
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _unsupported_error(ray_name: str, shown_as: str) -> Exception:
    return RayFeatureError(f"{shown_as} is not supported by pbtlab: {advice_for(ray_name)}")


def placeholder(name: str, shown_as: str | None = None) -> UnsupportedName:
    """The stand-in for Ray's ``name`` (a dotted path): imports fine, raises RayFeatureError when used, naming
    ``shown_as`` (by default ``name``)."""
    return UnsupportedName(shown_as or name, lambda shown: _unsupported_error(name, shown))
