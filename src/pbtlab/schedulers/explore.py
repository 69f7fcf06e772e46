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

``bounds`` keeps a perturbed value of a bounded domain (``uniform``, ``loguniform``, ``randint``...) inside
it: :class:`Clip` (``"clip"``, the same as ``clip_to_domain=True``) or :class:`Reflect` (``"reflect"``), which
mirrors an overshoot back off the bound, in log space for log domains (``loguniform(1e-4, 1e-1)``: 0.12
reflects to 0.1 / 1.2 = 0.0833):

    >>> config, changes = perturb_config({"lr": 0.1}, {"lr": tune.loguniform(1e-4, 1e-1)},
    ...                                  np.random.default_rng(1), resample_probability=0.0, perturbation_factors=(1.2,),
    ...                                  bounds="reflect")
    >>> changes[0].op, round(config["lr"], 4)
    ('* 1.2 (reflected)', 0.0833)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError, describe
from pbtlab.nested import copy_tree
from pbtlab.schedulers.base import HyperparamChange
from pbtlab.space import Domain, Integer

__all__ = ["BOUNDS", "Clip", "PerturbBounds", "Reflect", "bounds_policy", "perturb_config", "reflect_into"]

Mutation = Any  # dict | list | tuple | Domain | Callable[[], Any]


class PerturbBounds:
    """How a perturbed value of a bounded domain is kept inside it (None, Ray's default: not at all).

    ``before_rounding`` sees the value multiplied by its factor and may move it (and say how, for the op);
    ``after_rounding`` brings the rounded value onto the domain (by default the domain's own clip).
    """

    name: str = ""

    def before_rounding(self, domain: Domain, value: Any) -> tuple[Any, str | None]:
        return value, None

    def after_rounding(self, domain: Domain, value: Any) -> Any:
        return domain.clip(value)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Clip(PerturbBounds):
    """Clip a perturbed value to its domain's bounds and quantization (``perturb_bounds="clip"``)."""

    name = "clip"


class Reflect(PerturbBounds):
    """Mirror an overshoot back off the bound (in log space for log domains), then clip what rounding moved
    out (``perturb_bounds="reflect"``)."""

    name = "reflect"

    def before_rounding(self, domain: Domain, value: Any) -> tuple[Any, str | None]:
        reflected = reflect_into(domain, value)
        return (reflected, "reflected") if reflected != value else (value, None)


#: The ``perturb_bounds`` strings and what they mean: not at all (Ray), clipped, or reflected off the bound.
BOUNDS: dict[str | None, PerturbBounds | None] = {None: None, "clip": Clip(), "reflect": Reflect()}


def bounds_policy(value: str | PerturbBounds | None, name: str = "bounds") -> PerturbBounds | None:
    """The policy a ``perturb_bounds`` value names: None, ``"clip"``, ``"reflect"`` or a :class:`PerturbBounds`.

        >>> bounds_policy("reflect"), bounds_policy(None)
        (Reflect(), None)
    """
    if isinstance(value, PerturbBounds):
        return value
    if isinstance(value, str) or value is None:
        if value in BOUNDS:
            return BOUNDS[value]
    raise ConfigError(f"{name} must be None, 'clip' or 'reflect', got {value!r} (or pass Clip() or Reflect() "
                      "from pbtlab.schedulers.strategies)")


def perturb_config(config: Mapping[str, Any], mutations: Mapping[str, Mutation], rng: np.random.Generator, *,
                   resample_probability: float = 0.25, perturbation_factors: Sequence[float] = (1.2, 0.8),
                   clip_to_domain: bool = False, bounds: str | PerturbBounds | None = None,
                   custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                   ) -> tuple[dict[str, Any], tuple[HyperparamChange, ...]]:
    """A new config with every key of ``mutations`` explored, and the changes made (``config`` is not changed)."""
    policy = bounds_policy(bounds)
    if clip_to_domain:
        if isinstance(policy, Reflect):
            raise ConfigError("clip_to_domain=True and bounds='reflect' contradict each other: choose one")
        policy = BOUNDS["clip"]
    changes: list[HyperparamChange] = []
    new_config = _explore_level(dict(config), mutations, "", changes, rng, resample_probability,
                                tuple(perturbation_factors), policy)
    if custom_explore_fn is not None:
        explored = custom_explore_fn(new_config)
        if not isinstance(explored, dict):
            raise ConfigError(f"custom_explore_fn must return the new config dict, got {describe(explored)}")
        new_config = explored
    return new_config, tuple(changes)


def _explore_level(config: dict[str, Any], mutations: Mapping[str, Mutation], prefix: str,
                   changes: list[HyperparamChange], rng: np.random.Generator, resample_probability: float,
                   factors: tuple[float, ...], bounds: PerturbBounds | None) -> dict[str, Any]:
    new_config = copy_tree(config)  # deepcopy's result for a config, several times faster (pbtlab.nested)
    for key, distribution in mutations.items():
        name = f"{prefix}{key}"
        if key not in config:
            raise ConfigError(
                f"hyperparam_mutations names {name!r}, but the trial's config has no such key "
                f"(it has {sorted(map(str, config))}); add it to param_space")
        old = config[key]
        if isinstance(distribution, Mapping):
            new_config[key] = _explore_level(old, distribution, f"{name}/", changes, rng, resample_probability,
                                             factors, bounds)
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
                if bounds is not None and isinstance(distribution, Domain):
                    new, moved = bounds.before_rounding(distribution, new)
                    if moved:
                        op = f"{op} ({moved})"
            if isinstance(old, bool):
                new = bool(new)
            elif isinstance(old, (int, np.integer)):
                new = int(round(new))
            if bounds is not None and isinstance(distribution, Domain):
                new = bounds.after_rounding(distribution, new)
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


def domain_bounds(domain: Domain) -> tuple[float, float, bool] | None:
    """(low, high, log) of a bounded numeric domain (an integer domain's highest value, not its exclusive end);
    None for unbounded or non-numeric domains (``randn``, ``choice``, ``sample_from``)."""
    low, high = getattr(domain, "lower", None), getattr(domain, "upper", None)
    if low is None or high is None:
        return None
    if isinstance(domain, Integer):
        high = high - 1
    return float(low), float(high), bool(getattr(domain, "log", False))


def reflect_into(domain: Domain, value: Any) -> Any:
    """``value`` mirrored back into ``domain``'s bounds (in log space for log domains); unchanged if inside.

        >>> from pbtlab import tune
        >>> reflect_into(tune.uniform(0.0, 1.0), 1.2), reflect_into(tune.uniform(0.0, 1.0), -0.25)
        (0.8, 0.25)
    """
    found = domain_bounds(domain)
    if found is None or isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return value
    low, high, log = found
    if low <= value <= high or high <= low:
        return value
    if log:
        if value <= 0:
            return value
        return float(math.exp(_reflect(math.log(value), math.log(low), math.log(high))))
    return _reflect(float(value), low, high)


def _reflect(x: float, low: float, high: float) -> float:
    width = high - low
    offset = (x - low) % (2 * width)  # a triangle wave: repeated reflections off both bounds
    return low + (offset if offset <= width else 2 * width - offset)
