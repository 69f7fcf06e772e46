"""PB2, Population Based Bandits (Parker-Holder et al., 2020), with Ray Tune 2.60's arguments.

PB2 is PBT whose explore step is a time-varying GP bandit: the population's recent reward changes
(per unit of ``time_attr``) are modelled by a Gaussian process over (time, reward before the change,
hyperparameters normalized to ``hyperparam_bounds``), and a clone's new hyperparameters maximize the
upper confidence bound (GP-UCB) at the donor's time and reward. The GP is scikit-learn's
(``pip install 'pbtlab[pb2]'``); only the time-varying kernel is defined here.

    >>> pb2 = PB2(time_attr="training_iteration", perturbation_interval=5, metric="mean_accuracy",
    ...           mode="max", hyperparam_bounds={"lr": [0.0001, 0.02]})
    >>> pb2.describe()["hyperparam_bounds"]
    {'lr': [0.0001, 0.02]}

Differences from Ray's PB2 (see docs/pb2.md):

- Seeded: initial values and the acquisition's candidates come from the run's generator.
- The acquisition (Ray's: ``mean + sqrt(beta_t) * variance``) is maximized over ``num_candidates`` random
  points (Ray: L-BFGS-B from 10 random starts).
- The GP keeps the most recent 200 reward changes (Ray picks a window of 200 or more by marginal
  likelihood once it has more than 200).
- Each explore event records why: ``op`` is ``pb2 ucb=... mean=... var=... (N candidates, M points)``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab._optional import require
from pbtlab.nested import get_path, set_path
from pbtlab.errors import ConfigError, describe
from pbtlab.schedulers.arguments import number
from pbtlab.schedulers.base import HyperparamChange, TrialInfo, class_path
from pbtlab.schedulers.pbt import PopulationBasedTraining, refuse_custom_explore_fn
from pbtlab.space import Float

__all__ = ["MAX_GP_POINTS", "PB2", "time_varying_kernel"]

#: How many of the most recent reward changes the GP is fitted on.
MAX_GP_POINTS = 200
#: Ray's UCB constants: beta_t = C1 + max(0, log(C2 * n)).
_UCB_C1, _UCB_C2 = 0.2, 0.4


def _sklearn_gp() -> tuple[Any, Any, Any, Any]:
    """scikit-learn's GP pieces, imported here only (the one place ``pbtlab[pb2]`` is needed)."""
    processes = require("sklearn.gaussian_process", "pb2", "PB2's Gaussian processes")
    kernels = require("sklearn.gaussian_process.kernels", "pb2", "PB2's Gaussian processes")
    return processes.GaussianProcessRegressor, kernels.ConstantKernel, kernels.Hyperparameter, kernels.Kernel


_KERNEL_CLASS: type | None = None


def time_varying_kernel(length_scale: float = 1.0, epsilon: float = 0.1) -> Any:
    """The TV-GP-UCB kernel (Bogunovic et al., 2016) as a scikit-learn ``Kernel``: column 0 is time, the
    rest are features; ``k = exp(-|x - x'|^2 / (2 l^2)) * (1 - epsilon)^(|t - t'| / 2)``.

        >>> import numpy as np
        >>> k = time_varying_kernel(1.0, 0.19)
        >>> float(k(np.array([[0.0, 0.5]]), np.array([[2.0, 0.5]]))[0, 0])
        0.81
    """
    global _KERNEL_CLASS
    if _KERNEL_CLASS is None:
        _KERNEL_CLASS = _make_kernel_class()
    return _KERNEL_CLASS(length_scale=length_scale, epsilon=epsilon)


def _make_kernel_class() -> type:
    _, _, Hyperparameter, Kernel = _sklearn_gp()

    class TimeVaryingSquaredExponential(Kernel):  # type: ignore[valid-type,misc]  # sklearn's, imported lazily
        """Squared exponential over features, times a forgetting factor over time (column 0)."""

        def __init__(self, length_scale: float = 1.0, epsilon: float = 0.1,
                     length_scale_bounds: tuple[float, float] = (1e-3, 1e3),
                     epsilon_bounds: tuple[float, float] = (1e-5, 0.5)) -> None:
            self.length_scale = length_scale
            self.epsilon = epsilon
            self.length_scale_bounds = length_scale_bounds
            self.epsilon_bounds = epsilon_bounds

        @property
        def hyperparameter_length_scale(self) -> Any:
            return Hyperparameter("length_scale", "numeric", self.length_scale_bounds)

        @property
        def hyperparameter_epsilon(self) -> Any:
            return Hyperparameter("epsilon", "numeric", self.epsilon_bounds)

        def __call__(self, X: Any, Y: Any = None, eval_gradient: bool = False) -> Any:
            X = np.atleast_2d(X)
            Y = X if Y is None else np.atleast_2d(Y)
            time_gap = np.abs(X[:, :1] - Y[:, :1].T)
            squared = ((X[:, None, 1:] - Y[None, :, 1:]) ** 2).sum(axis=2)
            spatial = np.exp(-squared / (2.0 * self.length_scale ** 2))
            forget = (1.0 - self.epsilon) ** (time_gap / 2.0)
            K = spatial * forget
            if not eval_gradient:
                return K
            # derivatives with respect to log(length_scale) and log(epsilon), as sklearn optimizes
            d_length = K * squared / self.length_scale ** 2
            d_epsilon = -K * (time_gap / 2.0) * self.epsilon / (1.0 - self.epsilon)
            return K, np.dstack([d_length, d_epsilon])

        def diag(self, X: Any) -> Any:
            return np.ones(np.atleast_2d(X).shape[0])

        def is_stationary(self) -> bool:
            return False

    return TimeVaryingSquaredExponential


@dataclasses.dataclass(frozen=True, slots=True)
class _Observation:
    """A trial's score at a check, with the hyperparameters it trained with up to then."""

    trial_id: str
    time: float
    values: tuple[float, ...]
    score: float

    def to_list(self) -> list[Any]:
        return [self.trial_id, self.time, list(self.values), self.score]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> _Observation:
        return cls(str(data[0]), float(data[1]), tuple(float(v) for v in data[2]), float(data[3]))


def _flatten_bounds(bounds: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[float, float]]:
    if not isinstance(bounds, Mapping):
        raise ConfigError(f"hyperparam_bounds must be a dict of name -> [low, high], got {describe(bounds)}")
    flat: dict[str, tuple[float, float]] = {}
    for key, value in bounds.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten_bounds(value, f"{name}/"))
            continue
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
            raise ConfigError(f"hyperparam_bounds[{name!r}] must be a [low, high] pair, got {describe(value)}")
        low = number(f"hyperparam_bounds[{name!r}] low", value[0])
        high = number(f"hyperparam_bounds[{name!r}] high", value[1])
        if not low < high:
            raise ConfigError(f"hyperparam_bounds[{name!r}] must have low < high, got [{value[0]!r}, {value[1]!r}]")
        flat[name] = (low, high)
    return flat


def _bounds_to_domains(bounds: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _bounds_to_domains(value) if isinstance(value, Mapping) else Float(value[0], value[1], kind="uniform")
            for key, value in bounds.items()}


class PB2(PopulationBasedTraining):
    """Population Based Bandits with Ray Tune's arguments and defaults.

    Args (Ray's): ``time_attr``, ``metric``, ``mode``, ``perturbation_interval``, ``quantile_fraction``,
    ``log_config``, ``require_attrs``, ``synch``, ``custom_explore_fn`` as in
    :class:`PopulationBasedTraining`, and

        hyperparam_bounds: ``{name: [low, high]}`` (a dict for nested keys): the continuous hyperparameters
            PB2 chooses. A trial whose config lacks one starts with a uniform sample.

    pbtlab's own:
        num_candidates: random points the acquisition is evaluated at to choose a config.
    """

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        perturbation_interval: float = 60.0,
        hyperparam_bounds: Mapping[str, Any] | None = None,
        quantile_fraction: float = 0.25,
        log_config: bool = True,
        require_attrs: bool = True,
        synch: bool = False,
        custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        *,
        num_candidates: int = 1000,
    ) -> None:
        if not hyperparam_bounds:
            raise ConfigError("PB2 needs hyperparam_bounds, e.g. PB2(hyperparam_bounds={'lr': [1e-4, 1e-1]}); "
                              f"got {hyperparam_bounds!r}")
        self._bounds_flat = _flatten_bounds(hyperparam_bounds)
        if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
            raise ConfigError(f"num_candidates must be a positive int, got {describe(num_candidates)}")
        _sklearn_gp()  # fail now, not at the first explore, when scikit-learn is missing
        super().__init__(
            time_attr=time_attr, metric=metric, mode=mode, perturbation_interval=perturbation_interval,
            hyperparam_mutations=_bounds_to_domains(hyperparam_bounds), quantile_fraction=quantile_fraction,
            resample_probability=0.0, custom_explore_fn=custom_explore_fn, log_config=log_config,
            require_attrs=require_attrs, synch=synch)
        self.hyperparam_bounds = copy.deepcopy(dict(hyperparam_bounds))
        self.num_candidates = num_candidates
        self._observations: list[_Observation] = []
        self._pending: list[tuple[float, ...]] = []  # configs chosen since the population's time last advanced
        self._pending_time = -math.inf

    # -- data ----------------------------------------------------------------------------------------
    def on_check(self, trial: TrialInfo, time_value: float, score: float) -> None:
        """Each check is a data point: the trial's score at ``time_value`` with its current hyperparameters."""
        if not math.isfinite(score):
            return  # an unrankable score teaches the GP nothing
        values = tuple(float(get_path(trial.config, name)) for name in self._bounds_flat)
        self._observations.append(_Observation(trial.trial_id, time_value, values, score))

    def _reward_changes(self) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[float, float, float]]]:
        """(X, y, last): rows ``[time, reward before, *hyperparameters]`` and the reward change per unit of
        time that followed, for each trial's consecutive checks with the same hyperparameters; ``last``
        maps a trial to its latest (time, reward before, reward after)."""
        ordered = sorted(enumerate(self._observations), key=lambda item: (item[1].time, item[0]))
        previous: dict[tuple[str, tuple[float, ...]], _Observation] = {}
        rows: list[list[float]] = []
        changes: list[float] = []
        last: dict[str, tuple[float, float, float]] = {}
        for _, obs in ordered:
            key = (obs.trial_id, obs.values)
            before = previous.get(key)
            previous[key] = obs
            if before is None or obs.time <= before.time:
                continue
            rows.append([obs.time, before.score, *obs.values])
            changes.append((obs.score - before.score) / (obs.time - before.time))
            last[obs.trial_id] = (obs.time, before.score, obs.score)
        return np.array(rows, dtype=float).reshape(-1, 2 + len(self._bounds_flat)), np.array(changes), last

    # -- explore -------------------------------------------------------------------------------------
    def explore(self, target: TrialInfo, donor: TrialInfo | None,
                config: dict[str, Any]) -> tuple[dict[str, Any], Sequence[HyperparamChange]]:
        """``config`` (the donor's) with the bounded hyperparameters chosen by GP-UCB at the donor's time and
        reward; unchanged when the donor has no measured reward change yet (as Ray)."""
        base = donor if donor is not None else target
        X, y, last = self._reward_changes()
        new_config = copy.deepcopy(config)
        names = list(self._bounds_flat)
        if base.trial_id not in last:
            changes = tuple(HyperparamChange(name, get_path(config, name), "pb2: kept (no reward change measured "
                                             "for the donor yet)", get_path(config, name)) for name in names)
            return self._custom(new_config), changes
        time_now = X[:, 0].max()
        if time_now > self._pending_time:
            self._pending, self._pending_time = [], time_now
        chosen, why = self._select(X[-MAX_GP_POINTS:], y[-MAX_GP_POINTS:], np.array(last[base.trial_id][:2]))
        changes_list = []
        for name, value in zip(names, chosen):
            old = get_path(config, name)
            new: Any = round(float(value)) if isinstance(old, (int, np.integer)) and not isinstance(old, bool) \
                else float(value)
            set_path(new_config, name, new)
            changes_list.append(HyperparamChange(name, old, why, new))
        self._pending.append(tuple(float(v) for v in chosen))
        # The target continues from the donor's point with the new values: its next change is measured from there.
        donor_time, _, donor_score = last[base.trial_id]
        self._observations.append(_Observation(
            target.trial_id, donor_time, tuple(float(get_path(new_config, n)) for n in names), donor_score))
        return self._custom(new_config), tuple(changes_list)

    def _custom(self, config: dict[str, Any]) -> dict[str, Any]:
        if self.custom_explore_fn is None:
            return config
        explored = self.custom_explore_fn(config)
        if not isinstance(explored, dict):
            raise ConfigError(f"custom_explore_fn must return the new config dict, got {describe(explored)}")
        return explored

    def _select(self, X_raw: np.ndarray, y_raw: np.ndarray, fixed_raw: np.ndarray) -> tuple[np.ndarray, str]:
        """The hyperparameters maximizing UCB at ``fixed_raw`` = (time, reward before), and the op text."""
        GaussianProcessRegressor, ConstantKernel, _, _ = _sklearn_gp()
        low = np.array([b[0] for b in self._bounds_flat.values()])
        high = np.array([b[1] for b in self._bounds_flat.values()])
        fixed_low, fixed_high = X_raw[:, :2].min(axis=0), X_raw[:, :2].max(axis=0)
        scale_low = np.concatenate([fixed_low, low])
        scale_span = np.concatenate([fixed_high - fixed_low, high - low]) + 1e-8
        X = (X_raw - scale_low) / scale_span
        y = np.clip((y_raw - y_raw.mean()) / (y_raw.std() + 1e-8), -2.0, 2.0)
        fixed = (fixed_raw - fixed_low) / (fixed_high - fixed_low + 1e-8)
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * time_varying_kernel()
        model = GaussianProcessRegressor(kernel=kernel, alpha=1e-6, optimizer="fmin_l_bfgs_b", random_state=0)
        with warnings.catch_warnings():  # a hyperparameter at its bound is expected with few points
            warnings.simplefilter("ignore")
            model.fit(X, y)
        # The variance also counts configs just chosen for other trials (Desautels et al., 2014): their
        # outcome is unknown, but a GP's variance does not depend on it, so they are added with y = 0.
        variance_model = model
        if self._pending:
            pending = (np.array(self._pending) - low) / (high - low)
            X_pending = np.hstack([np.tile(fixed, (len(pending), 1)), pending])
            variance_model = GaussianProcessRegressor(kernel=model.kernel_, alpha=1e-6, optimizer=None)
            variance_model.fit(np.vstack([X, X_pending]), np.concatenate([y, np.zeros(len(pending))]))
        candidates = self.rng.uniform(0.0, 1.0, size=(self.num_candidates, len(low)))
        points = np.hstack([np.tile(fixed, (len(candidates), 1)), candidates])
        mean = model.predict(points)
        _, std = variance_model.predict(points, return_std=True)
        kappa = math.sqrt(_UCB_C1 + max(0.0, math.log(_UCB_C2 * len(X))))
        variance = std ** 2
        ucb = mean + kappa * variance  # Ray's bonus: the variance (the paper's GP-UCB takes the std, exploring more)
        best = int(np.argmax(ucb))
        chosen = low + candidates[best] * (high - low)
        why = (f"pb2 ucb={ucb[best]:.3f} mean={mean[best]:.3f} var={variance[best]:.3f} "
               f"({len(candidates)} candidates, {len(X)} points)")
        return chosen, why

    # -- description and state -----------------------------------------------------------------------
    def debug_string(self) -> str:
        return f"PB2: {self.num_checkpoints} checkpoints, {self.num_perturbations} perturbs"

    def describe(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__, "class": class_path(type(self)), "time_attr": self.time_attr,
            "metric": self.metric, "mode": self.mode, "perturbation_interval": self.perturbation_interval,
            "hyperparam_bounds": _plain(self.hyperparam_bounds), "quantile_fraction": self.quantile_fraction,
            "log_config": self.log_config, "require_attrs": self.require_attrs, "synch": self.synch,
            "custom_explore_fn": getattr(self.custom_explore_fn, "__qualname__", None),
            "num_candidates": self.num_candidates,
        }

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> PB2:  # type: ignore[override]
        """Rebuild from ``describe()`` output (experiment.json), for resuming a run."""
        refuse_custom_explore_fn(description)
        return cls(
            time_attr=description["time_attr"], metric=description["metric"], mode=description["mode"],
            perturbation_interval=description["perturbation_interval"],
            hyperparam_bounds=description["hyperparam_bounds"], quantile_fraction=description["quantile_fraction"],
            log_config=description["log_config"], require_attrs=description["require_attrs"],
            synch=description["synch"], num_candidates=description["num_candidates"])

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["pb2"] = {
            "observations": [obs.to_list() for obs in self._observations],
            "pending": [list(p) for p in self._pending],
            "pending_time": None if self._pending_time == -math.inf else self._pending_time,
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        pb2 = state["pb2"]
        self._observations = [_Observation.from_list(row) for row in pb2["observations"]]
        self._pending = [tuple(float(v) for v in p) for p in pb2["pending"]]
        self._pending_time = -math.inf if pb2["pending_time"] is None else float(pb2["pending_time"])

    def observations(self) -> list[tuple[str, float, tuple[float, ...], float]]:
        """The GP's data: (trial, time, hyperparameter values, sign-adjusted score), in the order recorded."""
        return [(o.trial_id, o.time, o.values, o.score) for o in self._observations]


def _plain(bounds: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) if isinstance(v, Mapping) else [float(v[0]), float(v[1])] for k, v in bounds.items()}
