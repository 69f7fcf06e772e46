"""``MedianStoppingRule`` (Golovin et al. 2017, Google Vizier) with Ray Tune 2.60's arguments and decisions.

At a report at time ``t`` (``time_attr``) past ``grace_period``, a trial is compared with every other trial
whose last report is at ``t`` or later: for each, the mean of its metric over the reports between
``grace_period`` and ``t``. If at least ``min_samples_required`` such means exist and the trial's best
value so far is strictly worse than their median, it is stopped (``hard_stop``) or paused (a paused one
runs again, FIFO, when a slot is free, and is not judged again). Each such decision is a
``median_stopped`` event. With too few means, a trial that ran ``min_time_slice`` since it last yielded
pauses to let waiting trials run.

    >>> rule = MedianStoppingRule(metric="loss", mode="min", grace_period=2, min_samples_required=2)
    >>> rule.describe()["grace_period"]
    2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError
from pbtlab.rundir.records import EventKind
from pbtlab.rng import unseeded
from pbtlab.schedulers.base import Action, Decision, DecisionNote, PopulationView, TrialInfo
from pbtlab.schedulers.early_stopping import EarlyStoppingScheduler, check_common, check_int, check_number

__all__ = ["MedianStoppingRule", "NAME"]

NAME = "MedianStoppingRule"


class MedianStoppingRule(EarlyStoppingScheduler):
    """Stop (or pause) a trial whose best result is worse than the median of the others' running means.

    Args (Ray's, with Ray's defaults):
        time_attr: the result field that measures progress (must grow monotonically).
        metric, mode: what to compare; may instead come from ``TuneConfig(metric, mode)``.
        grace_period: no trial is judged before ``time_attr`` reaches this; means start here.
        min_samples_required: how many other trials' means a judgement needs.
        min_time_slice: with too few means, a trial runs at least this long (in ``time_attr``) before it
            yields its slot to a waiting trial.
        hard_stop: False pauses trials instead of stopping them.
    """

    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None, mode: str | None = None,
                 grace_period: float = 60.0, min_samples_required: int = 3, min_time_slice: float = 0,
                 hard_stop: bool = True) -> None:
        check_common(time_attr, metric, mode)
        self.grace_period = check_number("grace_period", grace_period, 0)
        self.min_samples_required = check_int("min_samples_required", min_samples_required, 1)
        self.min_time_slice = check_number("min_time_slice", min_time_slice, 0)
        if not isinstance(hard_stop, bool):
            raise ConfigError(f"hard_stop must be True or False, got {hard_stop!r}")
        self.time_attr = time_attr
        self.metric = metric
        self.mode = mode
        self.hard_stop = hard_stop
        self.rng = unseeded()  # a run sets its seeded stream (set_rng)
        self._results: dict[str, list[tuple[float, float]]] = {}  # trial -> (time, value) of each report
        self._stopped: list[str] = []
        self._last_pause: dict[str, float] = {}

    def on_trial_add(self, trial_id: str, config: dict[str, Any], tag: str) -> dict[str, Any]:
        self.validate()
        return config

    def on_trial_result(self, trial: TrialInfo, result: Mapping[str, Any], population: PopulationView) -> Decision:
        read = self.read(trial.trial_id, result)
        if read is None:
            return Decision(Action.CONTINUE)
        trial_id = trial.trial_id
        if trial_id in self._stopped:  # paused by the rule (hard_stop=False) and resumed: not judged again
            return Decision(Action.CONTINUE)
        time_value, _ = read
        self._results.setdefault(trial_id, []).append(read)
        if time_value < self.grace_period:
            return Decision(Action.CONTINUE)
        means = [mean for other in self._trials_beyond(time_value) if other != trial_id
                 for mean in (self.running_mean(other, time_value),) if np.isfinite(mean)]
        if len(means) < self.min_samples_required:
            since = time_value - self._last_pause.get(trial_id, float("-inf"))
            if since > self.min_time_slice and population.num_waiting > 0:
                self._last_pause[trial_id] = time_value
                return Decision(Action.PAUSE)
            return Decision(Action.CONTINUE)
        median = float(np.median(means))
        best = self.best_result(trial_id)
        if self.metric_op * best >= self.metric_op * median:
            return Decision(Action.CONTINUE)
        self._stopped.append(trial_id)
        action = "stop" if self.hard_stop else "pause"
        worse = "lower" if self.mode == "max" else "higher"
        message = (f"[{NAME}] trial {trial_id} {'stopped' if self.hard_stop else 'paused'} at "
                   f"{self.time_attr}={time_value:g}: its best {self.metric}={best:.6g} is {worse} than the median "
                   f"{median:.6g} of {len(means)} other trials' running means")
        note = DecisionNote(EventKind.MEDIAN_STOPPED.value, trial_id, message, {
            "time_attr": self.time_attr, "time_value": time_value, "metric": self.metric, "value": best,
            "median": median, "num_compared": len(means), "action": action})
        return Decision(Action.STOP if self.hard_stop else Action.PAUSE, notes=[note])

    def on_trial_complete(self, trial_id: str, population: PopulationView) -> Decision:
        """As Ray: the trial's last report is counted once more (Ray appends the final result again)."""
        last = getattr(population[trial_id], "last_result", None) if trial_id in population else None
        if last is not None:
            read = self.read(trial_id, last)
            if read is not None:
                self._results.setdefault(trial_id, []).append(read)
        return Decision(Action.CONTINUE)

    def _trials_beyond(self, time_value: float) -> list[str]:
        return [t for t, rows in self._results.items() if rows and rows[-1][0] >= time_value]

    def running_mean(self, trial_id: str, time_value: float) -> float:
        """The mean of ``trial_id``'s metric over its reports with ``grace_period <= time <= time_value``
        (NaN if none)."""
        scoped = [value for t, value in self._results.get(trial_id, []) if self.grace_period <= t <= time_value]
        return float(np.mean(scoped)) if scoped else float("nan")

    def best_result(self, trial_id: str) -> float:
        values = [value for _, value in self._results[trial_id]]
        return max(values) if self.mode == "max" else min(values)

    def choose_trials_to_run(self, candidates: Sequence[TrialInfo], k: int, allow_any: bool = False) -> list[str]:
        """As Ray's FIFO: trials that never ran first, then paused ones, each in the order they were added."""
        fresh = [t.trial_id for t in candidates if t.trial_id not in self._results]
        paused = [t.trial_id for t in candidates if t.trial_id in self._results]
        return (fresh + paused)[:k]

    @property
    def num_stopped(self) -> int:
        return len(self._stopped)

    def debug_string(self) -> str:
        return f"Using MedianStoppingRule: num_stopped={len(self._stopped)}."

    def describe(self) -> dict[str, Any]:
        return {**self.common_description(), "grace_period": self.grace_period,
                "min_samples_required": self.min_samples_required, "min_time_slice": self.min_time_slice,
                "hard_stop": self.hard_stop}

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> MedianStoppingRule:
        return cls(time_attr=description["time_attr"], metric=description["metric"], mode=description["mode"],
                   grace_period=description["grace_period"],
                   min_samples_required=description["min_samples_required"],
                   min_time_slice=description["min_time_slice"], hard_stop=description["hard_stop"])

    def state_dict(self) -> dict[str, Any]:
        return {"results": {t: [list(r) for r in rows] for t, rows in self._results.items()},
                "stopped": list(self._stopped), "last_pause": dict(self._last_pause)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._results = {str(t): [(float(a), float(b)) for a, b in rows] for t, rows in state["results"].items()}
        self._stopped = list(state["stopped"])
        self._last_pause = {str(t): float(v) for t, v in state["last_pause"].items()}
