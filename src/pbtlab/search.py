"""``TuneConfig(search_alg=...)``: Ray's ``BasicVariantGenerator`` (random and grid search), and clear
errors for every other searcher.

    >>> import numpy as np
    >>> from pbtlab import tune
    >>> search = BasicVariantGenerator(points_to_evaluate=[{"a": 2, "b": 2}], constant_grid_search=True)
    >>> configs = search.resolve({"a": tune.grid_search([1, 2]), "b": tune.randint(0, 3)}, num_samples=2,
    ...                          rng=np.random.default_rng(0))
    >>> configs[0], len(configs), configs[1]["b"] == configs[2]["b"]
    ({'a': 2, 'b': 2}, 3, True)

``BasicVariantGenerator()`` with its defaults samples exactly what pbtlab samples without a search
algorithm (same values for the same ``TuneConfig(seed)``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError, describe
from pbtlab.rng import seeded
from pbtlab.space import (
    Categorical,
    Domain,
    Float,
    Function,
    GridSearch,
    Integer,
    Path,
    _plain_copy,
    _set,
    _walk,
    grid_variants,
)

__all__ = ["BasicVariantGenerator", "check_search_alg"]

logger = logging.getLogger("pbtlab")


class BasicVariantGenerator:
    """Random and grid search over ``param_space``, with Ray's arguments.

    - ``points_to_evaluate``: configs (dicts, possibly partial) run first; each replaces one of the
      ``num_samples`` samples (all of them run, even if there are more points than samples). Keys the
      point leaves out are grid-expanded and sampled as usual.
    - ``max_concurrent``: at most this many trials run at once (0: no limit); combined with
      ``TuneConfig(max_concurrent_trials)`` the smaller limit wins.
    - ``constant_grid_search``: sample the random values once per sample and keep them for every grid
      point (default: sample anew for each grid point). ``sample_from`` values are still computed per
      grid point, since they may read the grid's values.
    - ``random_state``: an int seed, a ``numpy.random.Generator`` or ``RandomState``. None (default)
      uses the stream seeded by ``TuneConfig(seed)``, so the run is repeatable from ``experiment.json``
      (Ray would use the global ``np.random`` here).
    """

    def __init__(self, points_to_evaluate: Sequence[Mapping[str, Any]] | None = None, max_concurrent: int = 0,
                 constant_grid_search: bool = False,
                 random_state: int | np.random.Generator | np.random.RandomState | None = None) -> None:
        if points_to_evaluate is not None:
            if isinstance(points_to_evaluate, (str, bytes, Mapping)) or not isinstance(points_to_evaluate, Sequence):
                raise ConfigError(f"BasicVariantGenerator(points_to_evaluate=...) must be a list of dicts, "
                                  f"got {describe(points_to_evaluate)}")
            for index, point in enumerate(points_to_evaluate):
                if not isinstance(point, Mapping):
                    raise ConfigError(f"BasicVariantGenerator(points_to_evaluate=...) must be a list of dicts; "
                                      f"item {index} is {describe(point)}")
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 0:
            raise ConfigError(f"BasicVariantGenerator(max_concurrent=...) must be an int >= 0 (0: no limit), "
                              f"got {describe(max_concurrent)}")
        if not isinstance(constant_grid_search, bool):
            raise ConfigError(f"BasicVariantGenerator(constant_grid_search=...) must be True or False, "
                              f"got {describe(constant_grid_search)}")
        seed_like = isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) \
            and random_state >= 0  # checked first: only another value needs numpy.random imported to check
        if random_state is not None and not seed_like \
                and not isinstance(random_state, (np.random.Generator, np.random.RandomState)):
            raise ConfigError(f"BasicVariantGenerator(random_state=...) must be an int >= 0, a numpy Generator or "
                              f"RandomState, or None, got {describe(random_state)}")
        self.points_to_evaluate = [copy.deepcopy(dict(p)) for p in points_to_evaluate or []]
        self.max_concurrent = max_concurrent
        self.constant_grid_search = constant_grid_search
        self.random_state = random_state

    def __repr__(self) -> str:
        return (f"BasicVariantGenerator(points_to_evaluate={self.points_to_evaluate!r}, "
                f"max_concurrent={self.max_concurrent}, constant_grid_search={self.constant_grid_search}, "
                f"random_state={self.random_state!r})")

    def _generator(self, rng: np.random.Generator) -> np.random.Generator:
        state = self.random_state
        if state is None:
            return rng
        if isinstance(state, (int, np.integer)):  # as np.random.default_rng(int(state))
            return seeded(int(state))
        if isinstance(state, np.random.Generator):
            return state
        return np.random.default_rng(state.randint(0, 2**32, size=4))  # a RandomState (checked in __init__)

    def resolve(self, param_space: Mapping[str, Any] | None, num_samples: int,
                rng: np.random.Generator) -> list[dict[str, Any]]:
        """The trials' configs: first the points (each grid-expanded over what it leaves open), then the
        remaining ``num_samples - len(points)`` samples, each over the whole grid."""
        space = dict(param_space or {})
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigError(f"num_samples must be an int >= 1, got {describe(num_samples)}")
        generator = self._generator(rng)
        configs: list[dict[str, Any]] = []
        for index, point in enumerate(self.points_to_evaluate):
            configs.extend(self._variants(_preset(space, point, index), generator))
        for _ in range(max(0, num_samples - len(self.points_to_evaluate))):
            configs.extend(self._variants(space, generator))
        return configs

    def _variants(self, space: Mapping[str, Any], rng: np.random.Generator) -> list[dict[str, Any]]:
        """One sample: every grid point (first grid key varies fastest), random values sampled."""
        base: Any = _plain_copy(space)
        if self.constant_grid_search:
            for path, leaf in _walk(base):
                if isinstance(leaf, Domain) and not isinstance(leaf, Function):
                    _set(base, path, leaf.sample(rng))
        return grid_variants(base, rng)


def _point_leaves(point: Mapping[str, Any], path: Path = ()) -> list[tuple[Path, Any]]:
    leaves: list[tuple[Path, Any]] = []
    for key, value in point.items():
        if isinstance(value, Mapping) and value:
            leaves.extend(_point_leaves(value, (*path, key)))
        else:
            leaves.append(((*path, key), value))
    return leaves


def _in_domain(domain: Any, value: Any) -> bool:
    if isinstance(domain, GridSearch):
        return value in domain.values
    if isinstance(domain, Categorical):
        return value in domain.categories
    if isinstance(domain, (Float, Integer)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        return bool(domain.lower <= value <= domain.upper if isinstance(domain, Float)
                    else domain.lower <= value < domain.upper)
    return True


def _preset(space: Mapping[str, Any], point: Mapping[str, Any], index: int) -> dict[str, Any]:
    """``space`` with the point's values put in place of its domains (checked: the keys must exist)."""
    preset: Any = _plain_copy(space)
    for path, value in _point_leaves(point):
        node: Any = preset
        for depth, key in enumerate(path):
            if not isinstance(node, Mapping) or key not in node:
                where = "/".join(map(str, path[:depth])) or "param_space"
                keys = sorted(map(str, node)) if isinstance(node, Mapping) else []
                raise ConfigError(
                    f"BasicVariantGenerator(points_to_evaluate=...) item {index} sets {'/'.join(map(str, path))!r}, "
                    f"which is not in param_space (keys under {where}: {keys}); add it to param_space")
            node = node[key]
        if isinstance(node, (Domain, GridSearch)) and not isinstance(node, Function) and not _in_domain(node, value):
            logger.warning(f"[pbtlab] points_to_evaluate item {index}: {'/'.join(map(str, path))}={value!r} is "
                           f"outside its search space {node!r}")
        elif not isinstance(node, (Domain, GridSearch, Mapping)) and node != value:
            logger.warning(f"[pbtlab] points_to_evaluate item {index}: {'/'.join(map(str, path))}={value!r} "
                           f"replaces the constant {node!r} in param_space")
        _set(preset, path, copy.deepcopy(value))
    return preset  # type: ignore[no-any-return]


#: Searchers Ray ships, by module, for the error message.
_SEARCHER_NAMES = {
    "optuna": "Optuna (OptunaSearch)", "hyperopt": "HyperOpt (HyperOptSearch)", "ax": "Ax (AxSearch)",
    "bayesopt": "BayesOpt (BayesOptSearch)", "bohb": "BOHB (TuneBOHB)", "hebo": "HEBO (HEBOSearch)",
    "nevergrad": "Nevergrad (NevergradSearch)", "zoopt": "ZOOpt (ZOOptSearch)",
    "concurrency_limiter": "ConcurrencyLimiter", "repeater": "Repeater",
}


def check_search_alg(search_alg: Any) -> None:
    """A clear error for anything but pbtlab's :class:`BasicVariantGenerator` (TuneConfig calls this)."""
    if search_alg is None or isinstance(search_alg, BasicVariantGenerator):
        return
    kind = type(search_alg)
    module = getattr(kind, "__module__", "") or ""
    if isinstance(search_alg, str):
        feature = f"the searcher named {search_alg!r}"
    elif kind.__name__ == "BasicVariantGenerator":
        raise ConfigError(
            f"TuneConfig(search_alg=...) got Ray's BasicVariantGenerator ({module}); use pbtlab's, with the same "
            "arguments: from pbtlab.tune.search import BasicVariantGenerator")
    else:
        label = next((name for key, name in _SEARCHER_NAMES.items() if f".{key}" in f".{module}"), kind.__name__)
        feature = f"the {label} searcher ({module}.{kind.__name__})"
    advice = ("pbtlab supports only BasicVariantGenerator (random and grid search over param_space, "
              "from pbtlab.tune.search). Describe the space with tune.uniform/choice/grid_search..., and let "
              "PopulationBasedTraining(hyperparam_mutations=...) adapt it during training")
    if kind.__name__ == "ConcurrencyLimiter":
        advice = "limit concurrency with TuneConfig(max_concurrent_trials=...) or BasicVariantGenerator(max_concurrent=...)"
    elif kind.__name__ == "Repeater":
        advice = "repeat configs by listing them in BasicVariantGenerator(points_to_evaluate=[...]) once per repeat"
    raise ConfigError(f"TuneConfig(search_alg=...): {feature} is not supported by pbtlab; {advice}")
