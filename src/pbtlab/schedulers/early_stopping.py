"""What the early-stopping schedulers (ASHA, HyperBand, the median stopping rule) share: Ray's metric and
mode handling, argument checks that name the argument, and reading a score from a report.

    >>> check_int("max_t", 81, low=1)
    81
    >>> check_int("max_t", 0, low=1)
    Traceback (most recent call last):
    ...
    pbtlab.errors.ConfigError: max_t must be an int >= 1, got 0 (int)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError, describe
from pbtlab.schedulers.arguments import number
from pbtlab.rundir.records import EventKind
from pbtlab.schedulers.base import DecisionNote, TrialScheduler, class_path

__all__ = ["check_common", "check_int", "check_number", "DEFAULT_METRIC", "EarlyStoppingScheduler"]

#: The metric Ray uses when a mode is given without a metric (``ray.tune.result.DEFAULT_METRIC``).
DEFAULT_METRIC = "_metric"


def check_number(name: str, value: Any, low: float | None = None, low_open: bool = False) -> float:
    """A finite number ``>= low`` (``> low`` if ``low_open``), kept an int if it is one (Ray's milestones are
    ints when its arguments are); ConfigError naming ``name`` otherwise."""
    number(name, value, low, None, low_open)
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def check_int(name: str, value: Any, low: int) -> int:
    """An int ``>= low``; ConfigError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an int >= {low}, got {describe(value)}")
    return int(value)


def check_common(time_attr: Any, metric: Any, mode: Any) -> None:
    if not isinstance(time_attr, str) or not time_attr:
        raise ConfigError(f"time_attr must be a result field name (str), got {describe(time_attr)}")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise ConfigError(f"metric must be a result field name (str) or None, got {describe(metric)}")
    if mode is not None and mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")


class EarlyStoppingScheduler(TrialScheduler):
    """Base of the schedulers that stop (or pause) trials by comparing their ``metric`` at ``time_attr``."""

    time_attr: str

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        """The base class's rule, and Ray's default metric name when only a mode is known."""
        if not super().set_search_properties(metric, mode):
            return False
        if self.mode and not self.metric:
            self.metric = DEFAULT_METRIC
        return True

    def rung_note(self, scheduler: str, kind: EventKind, trial_id: str, message: str, bracket: int, rung: int | None,
                  milestone: float | None, time_value: float, value: float | None, cutoff: float | None,
                  compared: int, reason: str | None = None) -> DecisionNote:
        """One rung decision (reached, promoted, stopped) as the note its event records; ``reason`` for stops."""
        data: dict[str, Any] = {
            "scheduler": scheduler, "bracket": bracket, "rung": rung, "milestone": milestone,
            "time_attr": self.time_attr, "time_value": time_value, "metric": self.metric, "value": value,
            "cutoff": cutoff, "num_compared": compared}
        if reason is not None:
            data["reason"] = reason
        return DecisionNote(kind.value, trial_id, message, data)

    def validate(self) -> None:
        if not self.metric or self.mode not in ("min", "max"):
            raise ConfigError(
                f"{type(self).__name__} needs a metric and a mode ('min' or 'max'); got metric={self.metric!r}, "
                f"mode={self.mode!r}. Set them in {type(self).__name__}(...) or in TuneConfig(metric=..., mode=...)")

    @property
    def metric_op(self) -> float:
        """+1 in ``max`` mode, -1 in ``min`` mode: ``metric_op * value`` is higher when better."""
        return 1.0 if self.mode == "max" else -1.0

    def read(self, trial_id: str, result: Mapping[str, Any]) -> tuple[float, float] | None:
        """``(time, value)`` of a report, or None when either field is missing (Ray skips such reports)."""
        if self.time_attr not in result or (self.metric or "") not in result:
            return None
        time_value, value = result[self.time_attr], result[self.metric or ""]
        for name, got in ((self.time_attr, time_value), (self.metric, value)):
            if isinstance(got, bool) or not isinstance(got, (int, float, np.integer, np.floating)):
                raise ConfigError(f"{type(self).__name__} needs {name!r} to be a number in every report; "
                                  f"trial {trial_id} reported {name}={got!r}")
        return float(time_value), float(value)

    def common_description(self) -> dict[str, Any]:
        """What every early-stopping scheduler records in ``describe()``."""
        return {"type": type(self).__name__, "class": class_path(type(self)), "time_attr": self.time_attr,
                "metric": self.metric, "mode": self.mode}
