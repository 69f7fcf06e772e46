"""``HyperBandScheduler``: synchronous HyperBand (Li et al. 2017) with pausing, with Ray Tune 2.60's
arguments and bracket arithmetic.

Trials fill brackets in the order they are added. Bracket ``s`` (0, 1, ... up to
``round(log(max_t)/log(reduction_factor))``) holds ``ceil(s_max_1 / (s + 1) * reduction_factor ** s)``
trials that first run to ``r0 = int(max_t / reduction_factor ** s)``. A trial that reaches its bracket's
milestone is paused (``rung_reached``) until every live trial of the bracket is there; then the best
``ceil(n / reduction_factor)`` go on to ``min(r * reduction_factor, max_t)`` (``rung_promoted``) and the
rest stop (``rung_stopped``, reason "not_top"). When the last halving's milestone is reached, the trials
stop (reason "max_t"; unless ``stop_last_trials=False``).

    >>> hb = HyperBandScheduler(metric="acc", mode="max", max_t=81, reduction_factor=3)
    >>> [hb.bracket_shape(s) for s in range(5)]  # (trials, first milestone) per bracket
    [(5, 81), (8, 27), (15, 9), (34, 3), (81, 1)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab import lazy_dataclass
from pbtlab.errors import ConfigError
from pbtlab.rundir.records import EventKind
from pbtlab.rng import unseeded
from pbtlab.schedulers.base import Action, Decision, DecisionNote, PopulationView, TrialInfo
from pbtlab.schedulers.early_stopping import EarlyStoppingScheduler, check_common, check_number

__all__ = ["HyperBandScheduler", "NAME"]

NAME = "HyperBand"


@lazy_dataclass.dataclass(slots=True)
class _Bracket:
    """Ray's ``_Bracket``: one bracket's size, milestone and live trials (``(time, score)`` of their last
    report, None before it; scores sign-adjusted, higher is better)."""

    index: int
    s: int
    n: int
    r: int
    cumul_r: int
    halves: int
    total_work: int
    live: dict[str, tuple[float, float] | None] = dataclasses.field(default_factory=dict)
    all_trials: list[str] = dataclasses.field(default_factory=list)
    completed_progress: float = 0.0
    to_unpause: list[str] = dataclasses.field(default_factory=list)

    def time_of(self, trial_id: str) -> float:
        entry = self.live[trial_id]
        return entry[0] if entry is not None else 0.0

    def cur_iter_done(self) -> bool:
        return all(self.time_of(t) >= self.cumul_r for t in self.live)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["live"] = [[t, list(v) if v is not None else None] for t, v in self.live.items()]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Bracket:
        values = dict(data)
        values["live"] = {str(t): (float(v[0]), float(v[1])) if v is not None else None for t, v in data["live"]}
        values["all_trials"] = list(data["all_trials"])
        values["to_unpause"] = list(data["to_unpause"])
        return cls(**values)


class HyperBandScheduler(EarlyStoppingScheduler):
    """Synchronous HyperBand with Ray's arguments and defaults; trials wait (paused) at each milestone.

    Args (Ray's):
        time_attr: the result field that measures progress (must grow monotonically).
        metric, mode: what to compare; may instead come from ``TuneConfig(metric, mode)``.
        max_t: the most ``time_attr`` a trial gets; trials stop when they reach it.
        reduction_factor: eta: each halving keeps ``1/reduction_factor`` of a bracket's trials.
        stop_last_trials: False lets the survivors of the last halving run on past ``max_t``.
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: float = 81, reduction_factor: float = 3, stop_last_trials: bool = True) -> None:
        check_common(time_attr, metric, mode)
        self.max_t = check_number("max_t", max_t, 0, low_open=True)
        self.reduction_factor = check_number("reduction_factor", reduction_factor, 1, low_open=True)
        if not isinstance(stop_last_trials, bool):
            raise ConfigError(f"stop_last_trials must be True or False, got {stop_last_trials!r}")
        self.time_attr = time_attr
        self.metric = metric
        self.mode = mode
        self.stop_last_trials = stop_last_trials
        self.rng = unseeded()  # a run sets its seeded stream (set_rng)
        self._s_max_1 = int(np.round(np.log(self.max_t) / np.log(self.reduction_factor))) + 1
        self._bands: list[list[int | None]] = [[]]  # per band, its brackets' indexes (None: too small, skipped)
        self._brackets: list[_Bracket] = []
        self._current: int | None = None
        self._bracket_of: dict[str, int] = {}
        self._paused: list[str] = []  # paused at a milestone, not yet let go on
        self._num_stopped = 0
        self._epoch = 0

    def bracket_shape(self, s: int) -> tuple[int, int]:
        """``(number of trials, first milestone)`` of bracket ``s`` (Ray's ``n0`` and ``r0``)."""
        n0 = int(np.ceil(self._s_max_1 / (s + 1) * self.reduction_factor ** s))
        r0 = int(self.max_t * self.reduction_factor ** (-s))
        return n0, r0

    def _total_work(self, n: float, r: float, s: int) -> int:
        work, cumulative_r = 0, r
        for _ in range(s + 1):
            work += int(n) * int(r)
            n = int(np.ceil(n / self.reduction_factor))
            r = int(min(r * self.reduction_factor, self.max_t - cumulative_r))
        return work

    # -- hooks -------------------------------------------------------------------------------------------
    def on_trial_add(self, trial_id: str, config: dict[str, Any], tag: str) -> dict[str, Any]:
        self.validate()
        current = self._brackets[self._current] if self._current is not None else None
        if current is None or len(current.live) >= current.n:
            while True:
                if len(self._bands[-1]) == self._s_max_1:
                    self._bands.append([])
                s = len(self._bands[-1])
                n0, r0 = self.bracket_shape(s)
                if r0 == 0:  # as Ray: a bracket whose first milestone rounds to 0 is skipped
                    self._bands[-1].append(None)
                    continue
                bracket = _Bracket(index=len(self._brackets), s=s, n=n0, r=r0, cumul_r=r0, halves=s,
                                   total_work=self._total_work(n0, r0, s))
                self._brackets.append(bracket)
                self._bands[-1].append(bracket.index)
                self._current = bracket.index
                break
        bracket = self._brackets[self._current or 0]
        bracket.live[trial_id] = None
        bracket.all_trials.append(trial_id)
        self._bracket_of[trial_id] = bracket.index
        return config

    def on_trial_result(self, trial: TrialInfo, result: Mapping[str, Any], population: PopulationView) -> Decision:
        trial_id = trial.trial_id
        if trial_id not in self._bracket_of:
            return Decision(Action.CONTINUE)
        read = self.read(trial_id, result)
        if read is None:
            missing = [name for name in (self.time_attr, self.metric) if name not in result]
            raise ConfigError(f"HyperBandScheduler needs {', '.join(repr(m) for m in missing)} in every report; "
                              f"trial {trial_id} reported {sorted(result)}")
        time_value, value = read
        bracket = self._brackets[self._bracket_of[trial_id]]
        if trial_id not in bracket.live:
            return Decision(Action.CONTINUE)
        delta = time_value - bracket.time_of(trial_id)
        bracket.completed_progress += delta
        bracket.live[trial_id] = (time_value, self.metric_op * value)
        if trial_id in bracket.to_unpause:
            bracket.to_unpause.remove(trial_id)
        if self._continues(bracket, trial_id):
            return Decision(Action.CONTINUE)
        return self._process(bracket, trial_id)

    def _continues(self, bracket: _Bracket, trial_id: str) -> bool:
        if not self.stop_last_trials and bracket.halves == 0:
            return True
        return bracket.time_of(trial_id) < bracket.cumul_r

    def _finished(self, bracket: _Bracket) -> bool:
        return self.stop_last_trials and bracket.halves == 0 and bracket.cur_iter_done()

    def _process(self, bracket: _Bracket, reporter: str | None) -> Decision:
        """Ray's ``_process_bracket``: halve the bracket if all its live trials reached the milestone.

        ``reporter`` is the trial whose report (None: another trial's end) triggered this; the decision's
        action is for it, and ``stop`` names the other trials to end."""
        decision = Decision(Action.PAUSE)
        if not bracket.cur_iter_done():
            if reporter is not None:
                self._pause(bracket, reporter, decision)
            return decision
        if self._finished(bracket):
            for trial_id in list(bracket.live):
                self._stop(bracket, trial_id, reporter, decision, "max_t", bracket.s, None, len(bracket.live),
                           bracket.cumul_r)
            return decision
        rung = bracket.s - bracket.halves
        milestone = bracket.cumul_r
        compared = len(bracket.live)
        good, bad = self._halve(bracket)
        cutoff = bracket.live[good[0]] if good else None
        cutoff_value = self.metric_op * cutoff[1] if cutoff is not None else None
        self._num_stopped += len(bad)
        for trial_id in bad:
            self._stop(bracket, trial_id, reporter, decision, "not_top", rung, cutoff_value, compared, milestone)
        for trial_id in good:
            decision.notes.append(self._note(EventKind.RUNG_PROMOTED, bracket, trial_id, rung, milestone,
                                             cutoff_value, compared))
            if self._continues(bracket, trial_id):
                if trial_id == reporter:
                    decision.action = Action.CONTINUE
                else:
                    self._unpause(bracket, trial_id)
            elif self._finished(bracket):
                self._stop(bracket, trial_id, reporter, decision, "max_t", bracket.s, None, len(good), bracket.cumul_r)
        if reporter is not None and reporter in bracket.live and decision.action is Action.PAUSE:
            self._pause(bracket, reporter, decision)
        return decision

    def _halve(self, bracket: _Bracket) -> tuple[list[str], list[str]]:
        """Ray's ``successive_halving``: the next milestone, and the live trials split into the best
        ``ceil(n / reduction_factor)`` (worst of them first) and the rest."""
        if bracket.halves == 0 and not self.stop_last_trials:
            return list(bracket.live), []
        bracket.halves -= 1
        bracket.n = int(np.ceil(bracket.n / self.reduction_factor))
        bracket.r = int(min(bracket.r * self.reduction_factor, self.max_t))
        bracket.cumul_r = bracket.r
        ranked = sorted(bracket.live, key=lambda t: (bracket.live[t] or (0.0, float("-inf")))[1])
        cut = max(len(ranked) - bracket.n, 0)
        return ranked[cut:], ranked[:cut]

    def _pause(self, bracket: _Bracket, trial_id: str, decision: Decision) -> None:
        if trial_id not in self._paused:
            self._paused.append(trial_id)
        waiting_for = sum(1 for t in bracket.live if bracket.time_of(t) < bracket.cumul_r)
        decision.action = Action.PAUSE
        decision.notes.append(self._note(EventKind.RUNG_REACHED, bracket, trial_id, bracket.s - bracket.halves,
                                         bracket.cumul_r, None, waiting_for))

    def _unpause(self, bracket: _Bracket, trial_id: str) -> None:
        if trial_id in self._paused:
            self._paused.remove(trial_id)
        if trial_id not in bracket.to_unpause:
            bracket.to_unpause.append(trial_id)
        self._epoch += 1

    def _stop(self, bracket: _Bracket, trial_id: str, reporter: str | None, decision: Decision, reason: str,
              rung: int | None, cutoff: float | None, compared: int, milestone: float | None = None) -> None:
        decision.notes.append(self._note(EventKind.RUNG_STOPPED, bracket, trial_id, rung, milestone, cutoff,
                                         compared, reason))
        bracket.live.pop(trial_id, None)
        if trial_id in self._paused:
            self._paused.remove(trial_id)
        if trial_id == reporter:
            decision.action = Action.STOP
        else:
            decision.stop.append(trial_id)

    def on_trial_complete(self, trial_id: str, population: PopulationView) -> Decision:
        """The trial left its bracket; if every other live trial already waits at the milestone, the bracket
        is processed now (Ray does this only before a bracket's first halving; afterwards its paused trials
        could wait for ever)."""
        index = self._bracket_of.get(trial_id)
        if trial_id in self._paused:
            self._paused.remove(trial_id)
        if index is None or trial_id not in self._brackets[index].live:
            return Decision(Action.CONTINUE)
        bracket = self._brackets[index]
        bracket.live.pop(trial_id)
        if trial_id in bracket.to_unpause:
            bracket.to_unpause.remove(trial_id)
        if not bracket.live or not bracket.cur_iter_done():
            return Decision(Action.CONTINUE)
        decision = self._process(bracket, None)
        decision.action = Action.CONTINUE
        return decision

    def choose_trials_to_run(self, candidates: Sequence[TrialInfo], k: int, allow_any: bool = False) -> list[str]:
        """As Ray: band by band, brackets by completion (least first), each bracket's trials in the order
        they joined; a trial is eligible if it has not started or was let go on from a milestone."""
        waiting = {t.trial_id for t in candidates}
        chosen: list[str] = []
        for band in self._bands:
            brackets = [self._brackets[i] for i in band if i is not None]
            for bracket in sorted(brackets, key=self.completion):
                for trial_id in bracket.live:
                    if trial_id in waiting and (trial_id in bracket.to_unpause or trial_id not in self._paused) \
                            and trial_id not in chosen:
                        chosen.append(trial_id)
                        if len(chosen) == k:
                            return chosen
        if not chosen and allow_any:  # nothing eligible, nothing running: start one rather than hang
            unknown = [t.trial_id for t in candidates if t.trial_id not in self._bracket_of]
            return (unknown or [candidates[0].trial_id])[:1] if candidates else []
        if not chosen:  # trials the scheduler does not track (e.g. added by a resume of another run)
            chosen = [t.trial_id for t in candidates if t.trial_id not in self._bracket_of][:k]
        return chosen

    def completion(self, bracket: _Bracket) -> float:
        """Ray's ``completion_percentage``: the share of the bracket's planned work done (1.0 once finished)."""
        if self._finished(bracket):
            return 1.0
        return min(bracket.completed_progress / bracket.total_work, 1.0) if bracket.total_work else 1.0

    @property
    def selection_epoch(self) -> int:
        return self._epoch

    def _note(self, kind: EventKind, bracket: _Bracket, trial_id: str, rung: int | None, milestone: float | None,
              cutoff: float | None, compared: int, reason: str | None = None) -> DecisionNote:
        entry = bracket.live.get(trial_id)
        time_value = entry[0] if entry is not None else 0.0
        value = self.metric_op * entry[1] if entry is not None else None
        where = f"rung {rung} ({self.time_attr}={milestone:g}) of bracket {bracket.index}" if milestone is not None \
            else f"bracket {bracket.index}"
        if kind is EventKind.RUNG_REACHED:
            message = (f"[{NAME}] trial {trial_id} paused at {where} with {self.metric}={value:.6g}; "
                       f"waiting for {compared} more")
        elif kind is EventKind.RUNG_PROMOTED:
            message = (f"[{NAME}] trial {trial_id} promoted at {where}: {self.metric}={value:.6g} among the best "
                       f"{bracket.n} of {compared}")
        elif reason == "max_t":
            message = f"[{NAME}] trial {trial_id} stopped: {self.time_attr}={time_value:g} reached max_t"
        else:
            message = (f"[{NAME}] trial {trial_id} stopped at {where}: {self.metric}={value:.6g} not among the best "
                       f"{bracket.n} of {compared} (cutoff {cutoff:.6g})")
        # a stop always has its reason (``_stop`` requires one), and no other kind has one
        return self.rung_note(NAME, kind, trial_id, message, bracket.index, rung, milestone, time_value, value, cutoff,
                              compared, reason)

    # -- state -------------------------------------------------------------------------------------------
    @property
    def num_stopped(self) -> int:
        return self._num_stopped

    def debug_string(self) -> str:
        lines = [f"Using HyperBand: num_stopped={self._num_stopped} total_brackets={len(self._brackets)}"]
        for number, band in enumerate(self._bands):
            lines.append(f"Round #{number}:")
            for index in band:
                if index is None:
                    continue
                b = self._brackets[index]
                lines.append(f"  Bracket(Max Size (n)={b.n}, Milestone (r)={b.cumul_r}, "
                             f"completed={self.completion(b):.1%}): {{live: {len(b.live)}, "
                             f"done: {len(b.all_trials) - len(b.live)}}}")
        return "\n".join(lines)

    def describe(self) -> dict[str, Any]:
        return {**self.common_description(), "max_t": self.max_t, "reduction_factor": self.reduction_factor,
                "stop_last_trials": self.stop_last_trials}

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> HyperBandScheduler:
        return cls(time_attr=description["time_attr"], metric=description["metric"], mode=description["mode"],
                   max_t=description["max_t"], reduction_factor=description["reduction_factor"],
                   stop_last_trials=description["stop_last_trials"])

    def state_dict(self) -> dict[str, Any]:
        return {"bands": [list(band) for band in self._bands], "brackets": [b.to_dict() for b in self._brackets],
                "current": self._current, "bracket_of": dict(self._bracket_of), "paused": list(self._paused),
                "num_stopped": self._num_stopped, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._bands = [list(band) for band in state["bands"]]
        self._brackets = [_Bracket.from_dict(b) for b in state["brackets"]]
        self._current = state["current"]
        self._bracket_of = {str(k): int(v) for k, v in state["bracket_of"].items()}
        self._paused = list(state["paused"])
        self._num_stopped = int(state["num_stopped"])
        self.rng.bit_generator.state = state["rng"]
        self._epoch += 1
