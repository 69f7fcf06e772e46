"""PBT's explore step as a plain function: perturb or resample each mutated hyperparameter.

    >>> import numpy as np
    >>> from pbtlab import tune
    >>> config, changes = perturb_config({"lr": 0.1, "layers": 2}, {"lr": tune.loguniform(1e-4, 1e-1)},
    ...                                  np.random.default_rng(0), resample_probability=0.0)
    >>> [(c.param, c.old, c.op) for c in changes], config["layers"]
    ([('lr', 0.1, '* 0.8')], 2)

Each change is recorded as ``HyperparamChange(param, old, op, new)`` with ``op`` in ``resample``,
``* <factor>``, ``shift left``, ``shift right`` (``(noop)`` appended at an end of the list); nested
keys are named ``a/b``. The semantics are Ray Tune's: a list is an ordered set of categories
(resample, or shift one step), anything else is multiplied by a perturbation factor or resampled;
integers are rounded, booleans stay booleans, and values are clipped only with ``clip_to_domain``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError, describe
from pbtlab.schedulers.base import HyperparamChange
from pbtlab.space import Domain

Mutation = Any  # dict | list | tuple | Domain | Callable[[], Any]


def perturb_config(config: Mapping[str, Any], mutations: Mapping[str, Mutation], rng: np.random.Generator, *,
                   resample_probability: float = 0.25, perturbation_factors: Sequence[float] = (1.2, 0.8),
                   clip_to_domain: bool = False,
                   custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                   ) -> tuple[dict[str, Any], tuple[HyperparamChange, ...]]:
    """A new config with every key of ``mutations`` explored, and the changes made (``config`` is not changed)."""
    changes: list[HyperparamChange] = []
    new_config = _explore_level(dict(config), mutations, "", changes, rng, resample_probability,
                                tuple(perturbation_factors), clip_to_domain)
    if custom_explore_fn is not None:
        explored = custom_explore_fn(new_config)
        if not isinstance(explored, dict):
            raise ConfigError(f"custom_explore_fn must return the new config dict, got {describe(explored)}")
        new_config = explored
    return new_config, tuple(changes)


def _explore_level(config: dict[str, Any], mutations: Mapping[str, Mutation], prefix: str,
                   changes: list[HyperparamChange], rng: np.random.Generator, resample_probability: float,
                   factors: tuple[float, ...], clip_to_domain: bool) -> dict[str, Any]:
    new_config = copy.deepcopy(config)
    for key, distribution in mutations.items():
        name = f"{prefix}{key}"
        if key not in config:
            raise ConfigError(
                f"hyperparam_mutations names {name!r}, but the trial's config has no such key "
                f"(it has {sorted(map(str, config))}); add it to param_space")
        old = config[key]
        if isinstance(distribution, Mapping):
            new_config[key] = _explore_level(old, distribution, f"{name}/", changes, rng, resample_probability,
                                             factors, clip_to_domain)
            continue
        if isinstance(distribution, (list, tuple)):
            new, op = _explore_category(old, list(distribution), rng, resample_probability)
        else:
            if rng.random() < resample_probability:
                new = distribution.sample(rng) if isinstance(distribution, Domain) else distribution()
                op = "resample"
            else:
                factor = factors[int(rng.integers(len(factors)))]
                try:
                    new = old * factor
                except TypeError as error:
                    raise ConfigError(
                        f"cannot perturb {name}={old!r} by multiplying it by {factor}: {error}. "
                        f"Give hyperparam_mutations[{key!r}] as a list to treat it as categories") from error
                op = f"* {factor}"
            if isinstance(old, bool):
                new = bool(new)
            elif isinstance(old, (int, np.integer)):
                new = int(round(new))
            if clip_to_domain and isinstance(distribution, Domain):
                new = distribution.clip(new)
        if isinstance(new, np.generic):
            new = new.item()
        new_config[key] = new
        changes.append(HyperparamChange(name, old, op, new))
    return new_config


def _explore_category(old: Any, values: list[Any], rng: np.random.Generator,
                      resample_probability: float) -> tuple[Any, str]:
    if rng.random() < resample_probability or old not in values:
        return copy.deepcopy(values[int(rng.integers(len(values)))]), "resample"
    shift = (-1, 1)[int(rng.integers(2))]
    old_index = values.index(old)
    new_index = min(max(old_index + shift, 0), len(values) - 1)
    op = "shift left" if shift == -1 else "shift right"
    if new_index == old_index:
        op += " (noop)"
    return values[new_index], op
