"""A trainable's report becomes a result row, and stop criteria are checked against it.

    >>> criteria = StopCriteria({"training_iteration": 3})
    >>> criteria.should_stop("t0", {"training_iteration": 2}), criteria.should_stop("t0", {"training_iteration": 3})
    (False, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError
from pbtlab.metrics import has_metric, metric_value
from pbtlab.rundir.records import AUTO_RESULT_FIELDS
from pbtlab.stopper import Stopper  # the base class lives with the Ray-style stoppers

__all__ = ["AUTO_RESULT_FIELDS", "StopCriteria", "Stopper", "result_row"]


def result_row(metrics: dict[str, Any], trial: Any, time_this_iter_s: float,
               checkpoint_dir_name: str | None) -> dict[str, Any]:
    """The row written to ``result.jsonl``: the trainable's metrics plus the automatic fields.

    ``trial`` has already counted this report (its ``iteration`` and clocks include it).
    ``restored_from`` is set on the first row after the trial's state was replaced.
    """
    result = metrics
    result.setdefault("training_iteration", trial.iteration)
    result["time_this_iter_s"] = time_this_iter_s
    result["time_total_s"] = trial.time_total_s
    result["timestamp"] = int(time.time())
    result["trial_id"] = trial.trial_id
    result["iterations_since_restore"] = trial.iterations_since_restore
    result["time_since_restore"] = trial.time_since_restore
    result["done"] = reported_done(result)  # a trainable reporting done=True is stopped (as in Ray)
    result["config"] = trial.config
    result["restored_from"] = trial.restored_from
    result["checkpoint_dir_name"] = checkpoint_dir_name
    return result


def reported_done(metrics: Mapping[str, Any]) -> bool:
    """Did the trainable report ``done=True`` (a bool or numpy bool)? Ray stops such a trial."""
    done = metrics.get("done")
    return bool(done) if isinstance(done, (bool, np.bool_)) else False


class StopCriteria:
    """``RunConfig(stop=...)``: a dict of thresholds (stop once a field reaches its value), or a function
    / ``Stopper`` called with ``(trial_id, result)``; a ``Stopper.stop_all()`` that returns True ends the run."""

    def __init__(self, stop: Any) -> None:
        self.stop = stop
        self.stop_all = False
        self._thresholds = isinstance(stop, Mapping)

    def should_stop(self, trial_id: str, result: Mapping[str, Any]) -> bool:
        stop = self.stop
        if result.get("done") is True:  # result_row made it a plain bool
            return True
        if stop is None:
            return False
        if self._thresholds:
            return self._reached(stop, trial_id, result)
        decision = bool(stop(trial_id, result))
        self.check_stop_all()
        return decision

    @property
    def has_stop_all(self) -> bool:
        """Is there a stopper whose ``stop_all()`` can end the run (e.g. a ``TimeoutStopper``)?"""
        return not isinstance(self.stop, Mapping) and callable(getattr(self.stop, "stop_all", None))

    def check_stop_all(self) -> bool:
        """Ask the stopper's ``stop_all()`` now (after a result, or between results); a True is kept."""
        if not self.stop_all and self.has_stop_all and self.stop.stop_all():
            self.stop_all = True
        return self.stop_all

    @staticmethod
    def _reached(stop: Mapping[str, Any], trial_id: str, result: Mapping[str, Any]) -> bool:
        for key, value in stop.items():  # nested metrics by their "outer/inner" names, as in Ray
            if not has_metric(result, key):
                reported = sorted(k for k in result if k != "config")
                raise ConfigError(
                    f"RunConfig(stop={dict(stop)!r}) names {key!r}, but trial {trial_id} did not report it; "
                    f"it reported {reported}")
            try:
                reached = metric_value(result, key) >= value
            except TypeError:
                raise ConfigError(
                    f"RunConfig(stop={dict(stop)!r}) compares {key!r} with a number, but trial {trial_id} "
                    f"reported {key}={metric_value(result, key)!r}") from None
            if reached:
                return True
        return False


def check_metric_reported(metric: str | None, trial_id: str, reported: Mapping[str, Any],
                          scheduler_checks: bool) -> None:
    """On a trial's first report: the metric to rank by must be there (Ray checks this too)."""
    if metric and not has_metric(reported, metric) and not scheduler_checks:
        raise ConfigError(
            f"TuneConfig(metric={metric!r}) is not in trial {trial_id}'s report: it reported "
            f"{sorted(reported)} (plus the automatic fields). Report it, or set TuneConfig(metric=...) "
            "to one of those (a nested metric is named 'outer/inner')")


def elapsed_budget(elapsed_s: float, budget_s: float | None) -> bool:
    """Has ``TuneConfig(time_budget_s)`` run out after ``elapsed_s`` seconds of the run?

        >>> elapsed_budget(10.5, 10.0), elapsed_budget(9.0, 10.0), elapsed_budget(1e9, None)
        (True, False, False)
    """
    return budget_s is not None and math.isfinite(budget_s) and elapsed_s > budget_s
