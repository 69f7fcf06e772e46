"""Stoppers with Ray Tune's names, arguments, defaults and semantics (``pbtlab.tune.stopper``).

A stopper is passed as ``RunConfig(stop=...)``. After every result the engine calls
``stopper(trial_id, result)`` (True stops that trial, recorded as ``trial_complete`` with reason
``stop_criterion``) and then ``stopper.stop_all()`` (True stops every trial, reason ``stop_all``).

    >>> stopper = MaximumIterationStopper(max_iter=2)
    >>> [stopper("t0", {}), stopper("t0", {}), stopper("t1", {})]
    [False, True, False]
    >>> CombinedStopper(MaximumIterationStopper(5), TrialPlateauStopper(metric="loss"))
    CombinedStopper(MaximumIterationStopper(max_iter=5), TrialPlateauStopper(metric='loss', std=0.01, \
num_results=4, grace_period=4, metric_threshold=None, mode=None))

As in Ray, the counters are per stopper object and count *calls* (results seen), not
``training_iteration``: a PBT trial that cloned a donor keeps its own count.
"""

from __future__ import annotations

import datetime
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

from pbtlab.errors import ConfigError, describe
from pbtlab.metrics import has_metric, metric_value

__all__ = [
    "CombinedStopper", "ExperimentPlateauStopper", "FunctionStopper", "MaximumIterationStopper", "NoopStopper",
    "Stopper", "TimeoutStopper", "TrialPlateauStopper",
]


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) \
        and math.isfinite(float(value))


def _check_int(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{where} must be an int >= {minimum}, got {describe(value)}")
    return int(value)


def _check_metric(where: str, metric: Any) -> str:
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"{where}(metric=...) must be a non-empty str (a key the trainable reports), "
                          f"got {describe(metric)}")
    return metric


class Stopper:
    """Base class: ``__call__(trial_id, result) -> bool`` stops one trial, ``stop_all() -> bool`` the run.

    The defaults never stop, so a subclass overrides what it needs::

        class StopAtLoss(Stopper):
            def __call__(self, trial_id, result):
                return result["loss"] < 0.1
    """

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return False


class NoopStopper(Stopper):
    """Never stops anything (Ray's default stopper)."""

    def __repr__(self) -> str:
        return "NoopStopper()"


class CombinedStopper(Stopper):
    """Stops a trial (or the run) when any of ``stoppers`` does ("or"). Every stopper sees every result.

        >>> CombinedStopper(MaximumIterationStopper(1))("t0", {})
        True
    """

    def __init__(self, *stoppers: Stopper) -> None:
        for index, stopper in enumerate(stoppers):
            if not isinstance(stopper, Stopper):
                raise ConfigError(f"CombinedStopper(*stoppers) takes Stopper objects; argument {index} is "
                                  f"{describe(stopper)} (wrap a function in FunctionStopper(fn))")
        self._stoppers = tuple(stoppers)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        # Ray short-circuits with any(): stoppers after the first that says "stop" do not see this result.
        return any(stopper(trial_id, result) for stopper in self._stoppers)

    def stop_all(self) -> bool:
        return any(stopper.stop_all() for stopper in self._stoppers)

    def __repr__(self) -> str:
        return f"CombinedStopper({', '.join(map(repr, self._stoppers))})"


class MaximumIterationStopper(Stopper):
    """Stops each trial once it has reported ``max_iter`` results.

        >>> stopper = MaximumIterationStopper(max_iter=1)
        >>> stopper("t0", {"training_iteration": 1})
        True
    """

    def __init__(self, max_iter: int) -> None:
        self._max_iter = _check_int("MaximumIterationStopper(max_iter=...)", max_iter, 1)
        self._iter: defaultdict[str, int] = defaultdict(int)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self._iter[trial_id] += 1
        return self._iter[trial_id] >= self._max_iter

    def __repr__(self) -> str:
        return f"MaximumIterationStopper(max_iter={self._max_iter})"


class TrialPlateauStopper(Stopper):
    """Stops a trial whose ``metric`` has plateaued: the standard deviation of its last ``num_results``
    values is below ``std``, after at least ``grace_period`` results; with ``metric_threshold`` the
    latest value must also be at or beyond it (``mode`` "max": >=, "min": <=).

        >>> stopper = TrialPlateauStopper(metric="loss", num_results=2, grace_period=2)
        >>> stopper("t0", {"loss": 1.0}), stopper("t0", {"loss": 1.0})
        (False, True)
    """

    def __init__(self, metric: str, std: float = 0.01, num_results: int = 4, grace_period: int = 4,
                 metric_threshold: float | None = None, mode: str | None = None) -> None:
        self._metric = _check_metric("TrialPlateauStopper", metric)
        if not _is_number(std) or std <= 0:
            raise ConfigError(f"TrialPlateauStopper(std=...) must be a number > 0, got {describe(std)}")
        self._std = float(std)
        self._num_results = _check_int("TrialPlateauStopper(num_results=...)", num_results, 1)
        self._grace_period = _check_int("TrialPlateauStopper(grace_period=...)", grace_period, 0)
        if metric_threshold is not None and not _is_number(metric_threshold):
            raise ConfigError(f"TrialPlateauStopper(metric_threshold=...) must be a number or None, "
                              f"got {describe(metric_threshold)}")
        if mode not in (None, "min", "max"):
            raise ConfigError(f"TrialPlateauStopper(mode=...) must be 'min', 'max' or None, got {describe(mode)}")
        if metric_threshold is not None and mode is None:
            raise ConfigError("TrialPlateauStopper(metric_threshold=...) needs mode='min' or mode='max' "
                              "(which side of the threshold counts as reached)")
        self._metric_threshold = None if metric_threshold is None else float(metric_threshold)
        self._mode = mode
        self._iter: defaultdict[str, int] = defaultdict(int)
        self._trial_results: defaultdict[str, deque[Any]] = defaultdict(lambda: deque(maxlen=self._num_results))

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = metric_value(result, self._metric)
        self._trial_results[trial_id].append(value)
        self._iter[trial_id] += 1
        if self._iter[trial_id] < self._grace_period or len(self._trial_results[trial_id]) < self._num_results:
            return False
        if not _is_number(value):
            return False  # not reported (or not a number): as in Ray, such a trial is never stopped here
        threshold, number = self._metric_threshold, cast(float, value)
        if threshold is not None:
            if self._mode == "min" and number > threshold:
                return False
            if self._mode == "max" and number < threshold:
                return False
        window = list(self._trial_results[trial_id])
        if not all(_is_number(v) for v in window):
            return False
        return float(np.std(window)) < self._std

    def __repr__(self) -> str:
        return (f"TrialPlateauStopper(metric={self._metric!r}, std={self._std}, num_results={self._num_results}, "
                f"grace_period={self._grace_period}, metric_threshold={self._metric_threshold}, mode={self._mode!r})")


class ExperimentPlateauStopper(Stopper):
    """Stops the whole run when the ``top`` best values of ``metric`` seen so far (over all trials and
    results) have a standard deviation <= ``std`` for more than ``patience`` results in a row.

        >>> stopper = ExperimentPlateauStopper(metric="loss", top=2, mode="min")
        >>> stopper("t0", {"loss": 1.0}), stopper("t1", {"loss": 1.0}), stopper.stop_all()
        (False, True, True)
    """

    def __init__(self, metric: str, std: float = 0.001, top: int = 10, mode: str = "min", patience: int = 0) -> None:
        self._metric = _check_metric("ExperimentPlateauStopper", metric)
        if mode not in ("min", "max"):
            raise ConfigError(f"ExperimentPlateauStopper(mode=...) must be 'min' or 'max', got {describe(mode)}")
        if isinstance(top, bool) or not isinstance(top, int) or top <= 1:
            raise ConfigError(f"ExperimentPlateauStopper(top=...) must be an int > 1, got {describe(top)}")
        self._patience = _check_int("ExperimentPlateauStopper(patience=...)", patience, 0)
        if not _is_number(std) or std <= 0:
            raise ConfigError(f"ExperimentPlateauStopper(std=...) must be a number > 0, got {describe(std)}")
        self._std = float(std)
        self._top = top
        self._mode = mode
        self._iterations = 0
        self._top_values: list[float] = []

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if not has_metric(result, self._metric):
            reported = sorted(k for k in result if k != "config")
            raise ConfigError(f"ExperimentPlateauStopper(metric={self._metric!r}): trial {trial_id} did not report "
                              f"it; it reported {reported}")
        values = sorted([*self._top_values, metric_value(result, self._metric)])
        self._top_values = values[: self._top] if self._mode == "min" else values[-self._top:]
        self._iterations = self._iterations + 1 if self.has_plateaued() else 0
        return self.stop_all()

    def has_plateaued(self) -> bool:
        """Are there ``top`` values, with a standard deviation <= ``std``?"""
        return len(self._top_values) == self._top and float(np.std(self._top_values)) <= self._std

    def stop_all(self) -> bool:
        return self.has_plateaued() and self._iterations >= self._patience

    def __repr__(self) -> str:
        return (f"ExperimentPlateauStopper(metric={self._metric!r}, std={self._std}, top={self._top}, "
                f"mode={self._mode!r}, patience={self._patience})")


class TimeoutStopper(Stopper):
    """Stops the run once ``timeout`` (seconds, or a ``datetime.timedelta``) has passed.

    The clock starts at the first ``stop_all()`` check (the first result), as in Ray, so set-up time is
    not counted. pbtlab checks after every result; ``TuneConfig(time_budget_s=...)`` does the same job
    with a clock that starts with the run.

        >>> TimeoutStopper(datetime.timedelta(minutes=1))
        TimeoutStopper(timeout=60.0)
    """

    def __init__(self, timeout: float | datetime.timedelta) -> None:
        if isinstance(timeout, datetime.timedelta):
            seconds = timeout.total_seconds()
        elif _is_number(timeout):
            seconds = float(timeout)
        else:
            raise ConfigError(f"TimeoutStopper(timeout=...) must be a number of seconds or a datetime.timedelta, "
                              f"got {describe(timeout)}")
        if seconds <= 0:
            raise ConfigError(f"TimeoutStopper(timeout=...) must be more than 0 seconds, got {timeout!r}")
        self._timeout_seconds = seconds
        self._budget = seconds
        self._last_check: float | None = None

    def stop_all(self) -> bool:
        now = time.monotonic()
        if self._last_check is not None:
            self._budget -= now - self._last_check
        self._last_check = now
        return self._budget <= 0

    def __repr__(self) -> str:
        return f"TimeoutStopper(timeout={self._timeout_seconds})"


class FunctionStopper(Stopper):
    """Stops a trial when ``function(trial_id, result)`` returns True.

        >>> FunctionStopper(lambda trial_id, result: result["loss"] < 0.1)("t0", {"loss": 0.05})
        True
    """

    def __init__(self, function: Callable[[str, Mapping[str, Any]], bool]) -> None:
        if not callable(function):
            raise ConfigError(f"FunctionStopper(function) needs a function (trial_id, result) -> bool, "
                              f"got {describe(function)}")
        self._fn = function

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return bool(self._fn(trial_id, result))

    @classmethod
    def is_valid_function(cls, fn: Any) -> bool:
        """Is ``fn`` a plain stop function (callable, not a Stopper)? A non-Stopper with ``stop_all`` is an error."""
        is_function = callable(fn) and not isinstance(fn, Stopper)
        if is_function and hasattr(fn, "stop_all"):
            raise ConfigError(
                f"RunConfig(stop=...) got {describe(fn)}, which has stop_all() but is not a Stopper: subclass "
                "pbtlab.tune.Stopper so that stop_all() is called")
        return is_function

    def __repr__(self) -> str:
        return f"FunctionStopper({getattr(self._fn, '__qualname__', repr(self._fn))})"
