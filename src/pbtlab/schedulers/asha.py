"""``AsyncHyperBandScheduler`` (``ASHAScheduler``): asynchronous successive halving (Li et al. 2018,
arXiv:1810.05934) with Ray Tune 2.60's arguments, defaults and decisions.

Each bracket has rungs at ``grace_period * reduction_factor ** (k + s)`` (``s``: the bracket's index) up to
``max_t``. When a trial's ``time_attr`` first reaches a rung, its score is compared with the
``1 - 1/reduction_factor`` quantile of the scores recorded at that rung so far (numpy's linear
interpolation, NaNs ignored): below it, the trial stops; otherwise it goes on. Either way its score is
recorded there. A trial that reaches ``max_t`` stops (``stop_last_trials``). Each decision is an event
(``rung_promoted`` / ``rung_stopped``) with the rung, the cutoff and the score.

    >>> import numpy as np
    >>> asha = ASHAScheduler(metric="loss", mode="min", max_t=16, grace_period=1, reduction_factor=2)
    >>> asha.set_rng(np.random.default_rng(0))
    >>> [m for m in asha.milestones(0)]
    [1, 2, 4, 8, 16]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from pbtlab import lazy_dataclass
from pbtlab.errors import ConfigError
from pbtlab.rundir.records import EventKind
from pbtlab.rng import unseeded
from pbtlab.schedulers.base import Action, Decision, DecisionNote, PopulationView, TrialInfo
from pbtlab.schedulers.early_stopping import EarlyStoppingScheduler, check_common, check_int, check_number

__all__ = ["AsyncHyperBandScheduler", "NAME"]

NAME = "AsyncHyperBand"


@lazy_dataclass.dataclass(slots=True)
class _Rung:
    milestone: float
    recorded: dict[str, float]  # trial id -> sign-adjusted score (higher is better), in the order recorded


class AsyncHyperBandScheduler(EarlyStoppingScheduler):
    """Asynchronous successive halving with Ray's arguments and defaults.

    Args (Ray's):
        time_attr: the result field that measures progress (must grow monotonically).
        metric, mode: what to compare; may instead come from ``TuneConfig(metric, mode)``.
        max_t: a trial stops once ``time_attr`` reaches this (if ``stop_last_trials``).
        grace_period: the first rung: no trial stops before ``time_attr`` reaches it.
        reduction_factor: rungs are this factor apart; a trial goes on if it is in the top
            ``1/reduction_factor`` of the trials recorded at its rung.
        brackets: how many brackets (each starts its rungs one factor later); a trial joins one at random
            (softmax over their numbers of rungs, drawn from the run's seeded generator).
        stop_last_trials: False lets trials run past ``max_t`` (and past the last rung without comparison).
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: float = 100, grace_period: float = 1, reduction_factor: float = 4, brackets: int = 1,
                 stop_last_trials: bool = True) -> None:
        check_common(time_attr, metric, mode)
        self.max_t = check_number("max_t", max_t, 0, low_open=True)
        self.grace_period = check_number("grace_period", grace_period, 0, low_open=True)
        if self.grace_period > self.max_t:
            raise ConfigError(f"grace_period must be <= max_t ({self.max_t:g}), got {self.grace_period:g}")
        self.reduction_factor = check_number("reduction_factor", reduction_factor, 1, low_open=True)
        self.num_brackets = check_int("brackets", brackets, 1)
        if not isinstance(stop_last_trials, bool):
            raise ConfigError(f"stop_last_trials must be True or False, got {stop_last_trials!r}")
        self.time_attr = time_attr
        self.metric = metric
        self.mode = mode
        self.stop_last_trials = stop_last_trials
        self.rng = unseeded()  # a run sets its seeded stream (set_rng)
        self._brackets = [[_Rung(m, {}) for m in self.milestones(s)] for s in range(self.num_brackets)]
        self._bracket_of: dict[str, int] = {}
        self._num_stopped = 0

    def milestones(self, bracket: int) -> list[float]:
        """The rungs of ``bracket``, lowest first (Ray's count: ``int(log(max_t/grace)/log(rf) - s + 1)``)."""
        count = int(np.log(self.max_t / self.grace_period) / np.log(self.reduction_factor) - bracket + 1)
        return [self.grace_period * self.reduction_factor ** (k + bracket) for k in range(count)]

    def cutoff(self, bracket: int, rung: int) -> float | None:
        """The sign-adjusted score a trial reaching this rung now must not fall below (None: none recorded)."""
        recorded = self._brackets[bracket][rung].recorded
        if not recorded:
            return None
        with np.errstate(all="ignore"):
            value = np.nanpercentile(list(recorded.values()), (1 - 1 / self.reduction_factor) * 100)
        return float(value)

    # -- hooks -------------------------------------------------------------------------------------------
    def on_trial_add(self, trial_id: str, config: dict[str, Any], tag: str) -> dict[str, Any]:
        self.validate()
        index = 0
        if self.num_brackets > 1:
            sizes = np.array([len(rungs) for rungs in self._brackets], dtype=float)
            weights = np.e ** (sizes - sizes.max())
            index = int(self.rng.choice(len(self._brackets), p=weights / weights.sum()))
        self._bracket_of[trial_id] = index
        return config

    def on_trial_result(self, trial: TrialInfo, result: Mapping[str, Any], population: PopulationView) -> Decision:
        read = self.read(trial.trial_id, result)
        if read is None or trial.trial_id not in self._bracket_of:
            return Decision(Action.CONTINUE)
        time_value, value = read
        if time_value >= self.max_t and self.stop_last_trials:
            self._num_stopped += 1
            bracket = self._bracket_of[trial.trial_id]
            note = self._note(EventKind.RUNG_STOPPED, trial.trial_id, bracket, None, time_value, value, None, 0,
                              reason="max_t")
            return Decision(Action.STOP, notes=[note])
        decision = Decision(Action.CONTINUE)
        outcome = self._record(trial.trial_id, time_value, value)
        if outcome is not None:
            bracket, rung, cutoff, compared, stop = outcome
            if stop:
                self._num_stopped += 1
                decision.action = Action.STOP
                decision.notes.append(self._note(EventKind.RUNG_STOPPED, trial.trial_id, bracket, rung, time_value,
                                                 value, cutoff, compared, reason="below_cutoff"))
            else:
                decision.notes.append(self._note(EventKind.RUNG_PROMOTED, trial.trial_id, bracket, rung, time_value,
                                                 value, cutoff, compared))
        return decision

    def on_trial_complete(self, trial_id: str, population: PopulationView) -> Decision:
        """As Ray: the trial's last report is recorded at a rung it reached and was not yet compared at (it
        sets later cutoffs; the trial itself is already done)."""
        if trial_id in self._bracket_of and trial_id in population:
            last = getattr(population[trial_id], "last_result", None)
            if last is not None:
                read = self.read(trial_id, last)
                if read is not None:
                    self._record(trial_id, *read)
        self._bracket_of.pop(trial_id, None)
        return Decision(Action.CONTINUE)

    def _record(self, trial_id: str, time_value: float,
                value: float) -> tuple[int, int, float | None, int, bool] | None:
        """Ray's ``_Bracket.on_result``: the highest rung reached and not yet recorded for the trial, if any:
        ``(bracket, rung, cutoff, number compared, stop?)``; records the trial's score there."""
        bracket = self._bracket_of[trial_id]
        rungs = self._brackets[bracket]
        score = self.metric_op * value
        for index in reversed(range(len(rungs))):
            rung = rungs[index]
            if time_value >= rung.milestone and trial_id in rung.recorded and not self.stop_last_trials:
                return None
            if time_value < rung.milestone or trial_id in rung.recorded:
                continue
            cutoff = self.cutoff(bracket, index)
            compared = len(rung.recorded)
            stop = cutoff is not None and score < cutoff  # a NaN score is never below: it goes on, as in Ray
            rung.recorded[trial_id] = score  # NaN too (as Ray): the cutoff's percentile ignores it
            return bracket, index, cutoff, compared, stop
        return None

    def _note(self, kind: EventKind, trial_id: str, bracket: int, rung: int | None, time_value: float,
              value: float, cutoff: float | None, compared: int, reason: str | None = None) -> DecisionNote:
        milestone = self._brackets[bracket][rung].milestone if rung is not None else self.max_t
        shown_cutoff = self.metric_op * cutoff if cutoff is not None else None
        if kind is EventKind.RUNG_PROMOTED:
            against = f"cutoff {shown_cutoff:.6g}" if shown_cutoff is not None else "first at this rung"
            message = (f"[{NAME}] trial {trial_id} promoted at rung {rung} ({self.time_attr}={milestone:g}) of "
                       f"bracket {bracket}: {self.metric}={value:.6g}, {against}")
        elif reason == "max_t":
            message = f"[{NAME}] trial {trial_id} stopped: {self.time_attr}={time_value:g} reached max_t={self.max_t:g}"
        else:
            message = (f"[{NAME}] trial {trial_id} stopped at rung {rung} ({self.time_attr}={milestone:g}) of "
                       f"bracket {bracket}: {self.metric}={value:.6g} worse than cutoff {shown_cutoff:.6g}")
        return self.rung_note(NAME, kind, trial_id, message, bracket, rung, milestone, time_value, value, shown_cutoff,
                              compared, reason)

    # -- state -------------------------------------------------------------------------------------------
    @property
    def num_stopped(self) -> int:
        return self._num_stopped

    def debug_string(self) -> str:
        lines = [f"Using AsyncHyperBand: num_stopped={self._num_stopped}"]
        for index in range(len(self._brackets)):
            cutoffs = []
            for k, rung in enumerate(self._brackets[index]):
                cutoff = self.cutoff(index, k)
                shown = f"{self.metric_op * cutoff:.6g}" if cutoff is not None else "None"
                cutoffs.append(f"Iter {rung.milestone:.3f}: {shown}")
            lines.append("Bracket: " + " | ".join(reversed(cutoffs)))
        return "\n".join(lines)

    def describe(self) -> dict[str, Any]:
        return {**self.common_description(), "max_t": self.max_t, "grace_period": self.grace_period,
                "reduction_factor": self.reduction_factor, "brackets": self.num_brackets,
                "stop_last_trials": self.stop_last_trials}

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> AsyncHyperBandScheduler:
        return cls(time_attr=description["time_attr"], metric=description["metric"], mode=description["mode"],
                   max_t=description["max_t"], grace_period=description["grace_period"],
                   reduction_factor=description["reduction_factor"], brackets=description["brackets"],
                   stop_last_trials=description["stop_last_trials"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "brackets": [[[[t, s] for t, s in rung.recorded.items()] for rung in rungs] for rungs in self._brackets],
            "bracket_of": dict(self._bracket_of),
            "num_stopped": self._num_stopped,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for rungs, saved in zip(self._brackets, state["brackets"]):
            for rung, recorded in zip(rungs, saved):
                rung.recorded = {str(k): float(v) for k, v in recorded}
        self._bracket_of = {str(k): int(v) for k, v in state["bracket_of"].items()}
        self._num_stopped = int(state["num_stopped"])
        self.rng.bit_generator.state = state["rng"]


#: Ray's alias.
ASHAScheduler = AsyncHyperBandScheduler
