"""Search spaces: domains that sample, grid expansion and `sample_from` resolution.

All sampling goes through one ``numpy.random.Generator`` handed in by the caller, so a seed fixes
every value::

    >>> import numpy as np
    >>> from pbtlab import tune
    >>> configs = resolve_param_space(
    ...     {"lr": tune.loguniform(1e-4, 1e-1), "h0": tune.grid_search([0.0, 1.0]),
    ...      "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"])},
    ...     num_samples=1, rng=np.random.default_rng(0))
    >>> [c["h1"] for c in configs]
    [1.0, 0.0]
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError, describe

__all__ = [
    "Categorical", "choice", "Domain", "Float", "from_spec", "Function", "grid_search", "grid_variants",
    "GridSearch", "Integer", "lograndint", "loguniform", "Normal", "qloguniform", "qrandint", "qrandn",
    "quniform", "randint", "randn", "resolve_param_space", "resolved_leaves", "sample_from", "to_spec", "uniform",
]


class Domain:
    """A distribution a hyperparameter can be sampled from (and perturbed within)."""

    def sample(self, rng: np.random.Generator) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def clip(self, value: Any) -> Any:
        """Bring a perturbed value back into the domain (used only with ``clip_to_domain``)."""
        return value

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description, written to ``experiment.json``."""
        return {"type": type(self).__name__, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {describe(value)}")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_bounds(kind: str, lower: Any, upper: Any, *, positive: bool = False) -> tuple[float, float]:
    low = _check_number(f"{kind} lower", lower)
    high = _check_number(f"{kind} upper", upper)
    if not low < high:
        raise ConfigError(f"{kind} needs lower < upper, got lower={lower!r}, upper={upper!r}")
    if positive and low <= 0:
        raise ConfigError(f"{kind} needs lower > 0 (it samples in log space), got lower={lower!r}")
    return low, high


def _check_q(kind: str, q: Any) -> float | None:
    if q is None:
        return None
    value = _check_number(f"{kind} q", q)
    if value <= 0:
        raise ConfigError(f"{kind} q must be > 0, got {q!r}")
    return value


def _quantize(value: float, q: float | None) -> float:
    """``value`` on the grid of ``q``: ``float(np.round(value / q) * q)``, to the bit (halves to even, the sign of a
    zero kept), with Python's ``round`` (about 0.1 µs where numpy's takes 1.4 on a float).

        >>> _quantize(0.01234, 5e-4), _quantize(-0.0001, 5e-4), _quantize(0.00075, 5e-4)
        (0.0125, -0.0, 0.001)
    """
    if q is None:
        return value
    steps = value / q
    if not math.isfinite(steps):
        return float(np.round(steps) * q)
    rounded = round(steps)  # an int, halves to even as np.round; exact, so int * q is the float product
    return math.copysign(0.0, steps) * q if rounded == 0 else rounded * q


class Float(Domain):
    """A float in [lower, upper): uniform, log-uniform or normal, optionally quantized to ``q``."""

    def __init__(self, lower: float, upper: float, *, log: bool = False, q: float | None = None,
                 kind: str = "uniform") -> None:
        self.kind = kind
        self.lower, self.upper = _check_bounds(kind, lower, upper, positive=log)
        self.log = log
        self.q = _check_q(kind, q)

    def sample(self, rng: np.random.Generator) -> float:
        lower, upper = self.lower, self.upper
        if self.q is not None:  # as Ray's Quantized: sample on the q-grid inside the bounds
            lower, upper = float(np.ceil(lower / self.q) * self.q), float(np.floor(upper / self.q) * self.q)
        if self.log:
            value = float(np.exp(rng.uniform(np.log(lower), np.log(upper))))
        else:
            value = float(rng.uniform(lower, upper))
        return _quantize(value, self.q)

    def clip(self, value: Any) -> float:
        low, high = ((self.lower, self.upper) if self.q is None else  # the q-grid inside the bounds, as sample()
                     (float(np.ceil(self.lower / self.q) * self.q), float(np.floor(self.upper / self.q) * self.q)))
        return _quantize(min(max(float(value), low), high), self.q)

    def __repr__(self) -> str:
        q = f", q={self.q}" if self.q is not None else ""
        return f"tune.{self.kind}({self.lower}, {self.upper}{q})"


class Normal(Domain):
    """A normally distributed float, optionally quantized (``tune.randn``, ``tune.qrandn``)."""

    def __init__(self, mean: float = 0.0, sd: float = 1.0, q: float | None = None) -> None:
        self.mean = _check_number("randn mean", mean)
        self.sd = _check_number("randn sd", sd)
        if self.sd <= 0:
            raise ConfigError(f"randn sd must be > 0, got {sd!r}")
        self.q = _check_q("randn", q)

    def sample(self, rng: np.random.Generator) -> float:
        return _quantize(float(rng.normal(self.mean, self.sd)), self.q)

    def __repr__(self) -> str:
        if self.q is not None:
            return f"tune.qrandn({self.mean}, {self.sd}, {self.q})"
        return f"tune.randn({self.mean}, {self.sd})"


class Integer(Domain):
    """An integer in [lower, upper) (``randint``) or [lower, upper] (``qrandint``, ``lograndint``)."""

    def __init__(self, lower: int, upper: int, *, log: bool = False, q: int | None = None,
                 kind: str = "randint") -> None:
        for name, value in (("lower", lower), ("upper", upper)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"{kind} {name} must be an int, got {describe(value)}")
        self.kind = kind
        self.lower, self.upper = int(lower), int(upper)
        if not self.lower < self.upper:
            raise ConfigError(f"{kind} needs lower < upper, got lower={lower!r}, upper={upper!r}")
        if log and self.lower <= 0:
            raise ConfigError(f"{kind} needs lower > 0 (it samples in log space), got lower={lower!r}")
        self.log = log
        self.q = int(q) if q is not None else None
        if self.q is not None and self.q <= 0:
            raise ConfigError(f"{kind} q must be > 0, got {q!r}")

    def sample(self, rng: np.random.Generator) -> int:
        lower, upper = self.lower, self.upper
        if self.q is not None and self.q != 1:  # as Ray's Quantized: stay on the q-grid inside the bounds
            lower, upper = int(np.ceil(lower / self.q) * self.q), int(np.floor(upper / self.q) * self.q)
        if self.log:
            value = int(np.exp(rng.uniform(np.log(lower), np.log(upper))))
        else:
            value = int(rng.integers(lower, upper)) if upper > lower else lower
        if self.q is not None:
            value = int(np.round(value / self.q) * self.q)
        return value

    def clip(self, value: Any) -> int:
        q = self.q or 1  # upper is exclusive here (qrandint stores upper + 1); stay on the q-grid inside the bounds
        return int(min(max(int(np.round(value / q)) * q, -(-self.lower // q) * q), (self.upper - 1) // q * q))

    def __repr__(self) -> str:
        return (f"tune.qrandint({self.lower}, {self.upper - 1}, {self.q})" if self.kind == "qrandint"  # as called
                else f"tune.{self.kind}({self.lower}, {self.upper})")


class Categorical(Domain):
    """One of ``categories``, uniformly (``tune.choice``)."""

    def __init__(self, categories: Sequence[Any]) -> None:
        if isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence) or not categories:
            raise ConfigError(f"choice needs a non-empty list of categories, got {describe(categories)}")
        self.categories = list(categories)

    def sample(self, rng: np.random.Generator) -> Any:
        return copy.deepcopy(self.categories[int(rng.integers(len(self.categories)))])

    def clip(self, value: Any) -> Any:
        """The category nearest to a perturbed number (ties: the first); other values unchanged."""
        numbers = [c for c in self.categories if isinstance(c, (int, float)) and not isinstance(c, bool)]
        if value in self.categories or not numbers or isinstance(value, bool) \
                or not isinstance(value, (int, float)):
            return value
        return min(numbers, key=lambda c: abs(c - value))

    def __repr__(self) -> str:
        return f"tune.choice({self.categories!r})"


class _SpecView(dict):
    """What a `sample_from` function receives: the resolved config, also reachable as ``spec.config``.

    Serves both Ray styles, ``lambda spec: spec.config["h0"]`` and ``lambda config: config["h0"]``.
    """

    @property
    def config(self) -> _SpecView:
        return self

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Function(Domain):
    """``tune.sample_from(func)``: a value computed from the rest of the config."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        if not callable(func):
            raise ConfigError(f"sample_from needs a callable, got {describe(func)}")
        self.func = func

    def sample(self, rng: np.random.Generator) -> Any:
        return self.func(_SpecView())

    def resolve(self, config: Mapping[str, Any]) -> Any:
        return self.func(_SpecView(_as_spec(config)))

    def describe(self) -> dict[str, Any]:
        return {"type": "Function", "func": getattr(self.func, "__qualname__", repr(self.func))}

    def __repr__(self) -> str:
        return f"tune.sample_from({getattr(self.func, '__qualname__', self.func)})"


def _as_spec(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _SpecView({k: _as_spec(v) for k, v in value.items() if not isinstance(v, Function)})
    return value


class GridSearch:
    """``tune.grid_search(values)``: one trial per value (crossed with other grids)."""

    def __init__(self, values: Sequence[Any]) -> None:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"grid_search needs a non-empty list of values, got {describe(values)}")
        self.values = list(values)

    def __repr__(self) -> str:
        return f"tune.grid_search({self.values!r})"


# ----------------------------------------------------------------------------------------------
# Public constructors (the `tune.*` names)


def uniform(lower: float, upper: float) -> Float:
    """A float sampled uniformly in [lower, upper)."""
    return Float(lower, upper, kind="uniform")


def quniform(lower: float, upper: float, q: float) -> Float:
    """A uniform float rounded to a multiple of ``q``."""
    return Float(lower, upper, q=q, kind="quniform")


def loguniform(lower: float, upper: float) -> Float:
    """A float sampled uniformly in log space."""
    return Float(lower, upper, log=True, kind="loguniform")


def qloguniform(lower: float, upper: float, q: float) -> Float:
    """A log-uniform float rounded to a multiple of ``q`` (``np.round(x / q) * q``, as Ray)."""
    return Float(lower, upper, log=True, q=q, kind="qloguniform")


def randn(mean: float = 0.0, sd: float = 1.0) -> Normal:
    """A normally distributed float."""
    return Normal(mean, sd)


def qrandn(mean: float, sd: float, q: float) -> Normal:
    """A normal float rounded to a multiple of ``q``."""
    return Normal(mean, sd, q)


def randint(lower: int, upper: int) -> Integer:
    """An integer in [lower, upper)."""
    return Integer(lower, upper, kind="randint")


def qrandint(lower: int, upper: int, q: int = 1) -> Integer:
    """An integer in [lower, upper] rounded to a multiple of ``q``."""
    return Integer(lower, upper + 1, q=q, kind="qrandint")


def lograndint(lower: int, upper: int) -> Integer:
    """An integer sampled in log space from [lower, upper)."""
    return Integer(lower, upper, log=True, kind="lograndint")


def choice(categories: Sequence[Any]) -> Categorical:
    """One of ``categories``. Under PBT a `choice` is perturbed multiplicatively, as in Ray."""
    return Categorical(categories)


def grid_search(values: Sequence[Any]) -> GridSearch:
    """One trial per value; several grids are crossed (the first key varies fastest)."""
    return GridSearch(values)


def sample_from(func: Callable[[Any], Any]) -> Function:
    """A value computed from the config: ``sample_from(lambda spec: 1 - spec.config["h0"])``."""
    return Function(func)


# ----------------------------------------------------------------------------------------------
# Resolution


Path = tuple[Any, ...]


def _walk(value: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """Every leaf under ``value`` with its path through dicts and lists."""
    if isinstance(value, Mapping):
        leaves: list[tuple[Path, Any]] = []
        for key, item in value.items():
            leaves.extend(_walk(item, (*path, key)))
        return leaves
    if isinstance(value, list):
        leaves = []
        for index, item in enumerate(value):
            leaves.extend(_walk(item, (*path, index)))
        return leaves
    return [(path, value)]


def _set(config: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        config = config[key]
    config[path[-1]] = value


def _plain_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    return value


def grid_variants(space: Any, rng: np.random.Generator) -> list[dict[str, Any]]:
    """One config per point of ``space``'s crossed grids (the first grid key varies fastest), each with its
    domains sampled from ``rng``.

        >>> grid_variants({"a": grid_search([1, 2]), "b": grid_search(["x", "y"])}, np.random.default_rng(0))
        [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}, {'a': 1, 'b': 'y'}, {'a': 2, 'b': 'y'}]
    """
    grids = [(path, leaf) for path, leaf in _walk(space) if isinstance(leaf, GridSearch)]
    # itertools.product varies the last factor fastest; reverse so the first grid key varies fastest.
    points = [tuple(reversed(point)) for point in itertools.product(*[g.values for _, g in reversed(grids)])]
    configs = []
    for point in points:
        config = _plain_copy(space)
        for (path, _grid), value in zip(grids, point):
            _set(config, path, copy.deepcopy(value))
        configs.append(_sample_config(config, rng))
    return configs


def resolve_param_space(param_space: Mapping[str, Any] | None, num_samples: int,
                        rng: np.random.Generator) -> list[dict[str, Any]]:
    """Expand grids (crossed, repeated ``num_samples`` times) and sample every domain.

    Order of trials: ``for sample in range(num_samples): for grid_point in grid (first key fastest)``.
    Within one trial, plain domains are sampled in key order, then `sample_from` functions run
    until all are resolved (they may read each other).
    """
    if param_space is None:
        param_space = {}
    if not isinstance(param_space, Mapping):
        raise ConfigError(f"param_space must be a dict, got {describe(param_space)}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"num_samples must be an int >= 1, got {describe(num_samples)}")
    configs = []
    for _ in range(num_samples):
        configs += grid_variants(param_space, rng)
    return configs


def _sample_config(config: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    functions = []
    for path, leaf in _walk(config):
        if isinstance(leaf, Function):
            functions.append((path, leaf))
        elif isinstance(leaf, Domain):
            _set(config, path, leaf.sample(rng))
    unresolved = functions
    while unresolved:
        # Resolve in passes: a function reading a value that another sample_from has not produced yet
        # waits for the next pass. A pass that resolves nothing means a key is missing (or a cycle).
        still: list[tuple[Path, Function]] = []
        failures: list[tuple[Path, Exception]] = []
        for path, function in unresolved:
            try:
                _set(config, path, function.resolve(config))
            except (KeyError, AttributeError, TypeError, IndexError) as error:
                still.append((path, function))
                failures.append((path, error))
        if len(still) == len(unresolved):
            failed_path, first_error = failures[0]
            names = ", ".join("/".join(map(str, p)) for p, _ in still)
            raise ConfigError(
                f"sample_from values could not be resolved (circular or missing keys): {names}. "
                f"sample_from at {'/'.join(map(str, failed_path))} failed: {first_error!r}; the config it saw "
                f"has keys {sorted(map(str, config))}") from first_error
        unresolved = still
    return config


def resolved_leaves(param_space: Mapping[str, Any] | None) -> list[Path]:
    """Paths of the leaves that vary between trials (grids, domains, sample_from)."""
    if not param_space:
        return []
    return [path for path, leaf in _walk(param_space) if isinstance(leaf, (Domain, GridSearch))]


# ----------------------------------------------------------------------------------------------
# Structured descriptions (experiment.json): enough to rebuild a domain when resuming a run.


def to_spec(value: Any) -> Any:
    """A JSON-friendly description of a mutation/domain that :func:`from_spec` can rebuild."""
    if isinstance(value, Mapping):
        return {"nested": {str(k): to_spec(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"values": list(value)}
    if isinstance(value, Function):
        return {"sample_from": getattr(value.func, "__qualname__", repr(value.func))}
    if isinstance(value, Float):
        return {"domain": "Float", "lower": value.lower, "upper": value.upper, "log": value.log, "q": value.q,
                "kind": value.kind}
    if isinstance(value, Integer):
        return {"domain": "Integer", "lower": value.lower, "upper": value.upper, "log": value.log, "q": value.q,
                "kind": value.kind}
    if isinstance(value, Normal):
        return {"domain": "Normal", "mean": value.mean, "sd": value.sd, "q": value.q}
    if isinstance(value, Categorical):
        return {"domain": "Categorical", "categories": value.categories}
    if callable(value):
        return {"callable": f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"}
    return {"constant": value}


def from_spec(spec: Any, where: str = "mutation") -> Any:
    """Rebuild what :func:`to_spec` described; callables cannot be rebuilt (the error says what to do)."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: not a description of a domain: {describe(spec)}")
    if "nested" in spec:
        return {k: from_spec(v, f"{where}/{k}") for k, v in spec["nested"].items()}
    if "values" in spec:
        return list(spec["values"])
    if "constant" in spec:
        return spec["constant"]
    kind = spec.get("domain")
    if kind == "Float":
        return Float(spec["lower"], spec["upper"], log=spec["log"], q=spec["q"], kind=spec["kind"])
    if kind == "Integer":
        return Integer(spec["lower"], spec["upper"], log=spec["log"], q=spec["q"], kind=spec["kind"])
    if kind == "Normal":
        return Normal(spec["mean"], spec["sd"], spec["q"])
    if kind == "Categorical":
        return Categorical(spec["categories"])
    raise ConfigError(
        f"{where} was a function ({spec.get('callable') or spec.get('sample_from')}), which cannot be rebuilt "
        "from experiment.json; pass the same scheduler again: Tuner.restore(path, trainable, "
        "tune_config=TuneConfig(scheduler=...))")
