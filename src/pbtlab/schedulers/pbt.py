"""Population Based Training with Ray Tune 2.60's semantics, as decisions returned as data.

    >>> from pbtlab import tune
    >>> pbt = PopulationBasedTraining(
    ...     time_attr="training_iteration", perturbation_interval=4, metric="Q", mode="max",
    ...     hyperparam_mutations={"lr": tune.qloguniform(5e-3, 1e-1, 5e-4)}, synch=True)
    >>> pbt.debug_string()
    'PopulationBasedTraining: 0 checkpoints, 0 perturbs'

Where Ray's behaviour is a known bug, the default stays Ray's only where results depend on it, and
a keyword fixes it (see each argument). Deviations that are always on:

- Randomness comes from one seeded generator (``TuneConfig(seed=...)``), so runs are reproducible.
- A score that is NaN or infinite never makes a trial a donor; such a trial ranks below every
  finite score, so it can be replaced (Ray drops it from the ranking, so it runs on unreplaced).
- A donor whose latest checkpoint predates its score is cloned from that checkpoint, and the event
  records the checkpoint's iteration. An exploit whose donor has no checkpoint is skipped and logged.
- Scheduler state survives trial failures (Ray resets it) and is saved for ``Tuner.restore``.
- A synchronous barrier never waits for a trial that has errored or finished.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError, describe
from pbtlab.rundir.records import AUTO_RESULT_FIELDS, EventKind
from pbtlab.schedulers.base import (
    Action,
    CheckpointRef,
    Decision,
    HyperparamChange,
    Note,
    Perturbation,
    PopulationView,
    TrialScheduler,
    TrialView,
    class_path,
)
from pbtlab.schedulers.explore import Mutation, perturb_config
from pbtlab.space import Domain, Function, GridSearch, from_spec, to_spec


@dataclasses.dataclass(slots=True)
class _MemberState:
    orig_tag: str
    last_score: float | None = None
    last_checkpoint: CheckpointRef | None = None
    last_perturbation_time: float = 0.0
    last_train_time: float = 0.0
    last_iteration: int = 0
    finished: bool = False
    recent_scores: list[float] = dataclasses.field(default_factory=list)  # exploit="ttest" only

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "orig_tag": self.orig_tag, "last_score": _json_float(self.last_score),
            "last_checkpoint": self.last_checkpoint.to_dict() if self.last_checkpoint else None,
            "last_perturbation_time": self.last_perturbation_time, "last_train_time": self.last_train_time,
            "last_iteration": self.last_iteration, "finished": self.finished,
        }
        if self.recent_scores:
            data["recent_scores"] = list(self.recent_scores)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _MemberState:
        values = dict(data)
        values["recent_scores"] = [float(v) for v in values.get("recent_scores", [])]
        if values.get("last_checkpoint"):
            values["last_checkpoint"] = CheckpointRef.from_dict(values["last_checkpoint"])
        if isinstance(values.get("last_score"), str):
            values["last_score"] = float(values["last_score"])
        return cls(**values)


def _json_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return repr(value)  # 'nan', 'inf', '-inf' survive a JSON round trip as strings


def _check_mutations(mutations: Any, path: str = "hyperparam_mutations") -> None:
    if not isinstance(mutations, Mapping):
        raise ConfigError(f"{path} must be a dict, got {describe(mutations)}")
    for key, value in mutations.items():
        where = f"{path}[{key!r}]"
        if isinstance(value, Function):
            raise ConfigError(
                f"{where} is a tune.sample_from(...), which PBT cannot perturb: it must be a domain such as "
                f"tune.uniform(...), a list of values, or a function of no arguments; got {value!r}")
        if isinstance(value, GridSearch):
            raise ConfigError(f"{where} is a tune.grid_search(...): it must be a domain, a list or a callable; "
                              f"got {value!r}")
        if isinstance(value, Mapping):
            if not value:
                raise ConfigError(f"{where} must be a non-empty dict of mutations; got {{}}")
            _check_mutations(value, where)
        elif isinstance(value, (list, tuple)):
            if not value:
                raise ConfigError(f"{where} must be a non-empty list of the values to choose from; got {value!r}")
        elif not isinstance(value, Domain) and not callable(value):
            raise ConfigError(
                f"{where} must be a dict, list, tuple, tune domain or callable, got {describe(value)}")


def _number(name: str, value: Any, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be a finite number, got {describe(value)}")
    value = float(value)
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and value > high
    if bad_low or bad_high:
        left = "(" if low_open else "["
        allowed = f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ConfigError(f"{name} must be in {allowed}, got {value:g}")
    return value


class PopulationBasedTraining(TrialScheduler):
    """Population Based Training (Jaderberg et al., 2017) with Ray Tune's arguments and defaults.

    Args (Ray's, with Ray's defaults):
        time_attr: the result field that measures progress ("training_iteration" is deterministic).
        metric, mode: what to rank by; may instead come from ``TuneConfig(metric, mode)``.
        perturbation_interval: check a trial when ``time_attr`` advanced this much since its last check.
        burn_in_period: no checks before ``time_attr`` reaches this.
        hyperparam_mutations: per hyperparameter a domain (resampled, or multiplied by a
            perturbation factor), a list (ordered categories: resample or shift one step), a
            function of no arguments (resampled), or a dict of those for nested configs.
        quantile_fraction: the top and bottom fraction of the population; bottom clones top.
        resample_probability: chance of resampling instead of perturbing a value.
        perturbation_factors: factors a value is multiplied by when perturbed.
        custom_explore_fn: ``fn(config) -> config`` applied after the built-in explore.
        log_config: also write Ray's ``pbt_global.txt`` and ``pbt_policy_<trial>.txt``.
        require_attrs: raise if a report lacks ``time_attr`` or ``metric`` (else skip that report).
        synch: synchronous PBT: decide only when every live trial has reached the next interval.

    pbtlab's own (fixes of Ray bugs; off by default where the tutorial's numbers depend on Ray's way):
        clip_to_domain: keep perturbed values inside their domain's bounds and quantization
            (Ray issues #5035 and #12717; off by default, as in Ray). The same as ``perturb_bounds="clip"``.
        exploit: how a trial chooses whom to copy (the PBT paper's strategies, Jaderberg et al. 2017, 3.2):
            ``"truncation"`` (or True, the default: Ray's; the bottom ``quantile_fraction`` copies a random
            member of the top), ``"binary_tournament"`` (at its check a trial picks one random other live
            member and copies it if that member's score is better), ``"ttest"`` (the same, but copies only if
            the other's mean over the last ``ttest_window`` reported scores is higher and Welch's t-test gives
            p < ``ttest_significance``); False: explore-only, a trial perturbs its own hyperparameters and
            keeps its own weights (the paper's Figure 2 ablation).
        explore: how the copied config changes: ``"perturb"`` (or True, the default: Ray's resample-or-perturb
            with ``resample_probability``), ``"resample"`` (always resample from the mutation); False:
            exploit-only, copy without perturbing.
        perturb_bounds: None (Ray's: a perturbed value may leave its domain), ``"clip"`` or ``"reflect"``
            (mirror an overshoot back off the domain's bound; in log space for log domains).
        ttest_window, ttest_significance: the t-test's window of recent reports and threshold (the
            paper's: the last 10 scores, p < 0.05).

    To change how configs are explored, override :meth:`explore` in a subclass; the subclass is
    recorded in experiment.json as itself and resumes as itself.
    """

    checks_metric = True

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        perturbation_interval: float = 60.0,
        burn_in_period: float = 0.0,
        hyperparam_mutations: Mapping[str, Mutation] | None = None,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: tuple[float, ...] = (1.2, 0.8),
        custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        log_config: bool = True,
        require_attrs: bool = True,
        synch: bool = False,
        *,
        clip_to_domain: bool = False,
        exploit: bool | str = True,
        explore: bool | str = True,
        perturb_bounds: str | None = None,
        ttest_window: int = 10,
        ttest_significance: float = 0.05,
    ) -> None:
        if not isinstance(time_attr, str) or not time_attr:
            raise ConfigError(f"time_attr must be a result field name (str), got {describe(time_attr)}")
        if mode is not None and mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
        if metric is not None and not isinstance(metric, str):
            raise ConfigError(f"metric must be a str, got {describe(metric)}")
        self.perturbation_interval = _number("perturbation_interval", perturbation_interval, 0, None, True)
        self.burn_in_period = _number("burn_in_period", burn_in_period, 0)
        self.quantile_fraction = _number("quantile_fraction", quantile_fraction, 0, 0.5)
        self.resample_probability = _number("resample_probability", resample_probability, 0, 1)
        if hyperparam_mutations is None:
            hyperparam_mutations = {}
        _check_mutations(hyperparam_mutations)
        if custom_explore_fn is not None and not callable(custom_explore_fn):
            raise ConfigError(f"custom_explore_fn must be callable or None, got {describe(custom_explore_fn)}")
        if not hyperparam_mutations and custom_explore_fn is None and explore:
            raise ConfigError(
                "PopulationBasedTraining has nothing to mutate: give hyperparam_mutations "
                "(e.g. {'lr': tune.loguniform(1e-4, 1e-1)}) or custom_explore_fn")
        if isinstance(perturbation_factors, (str, bytes)) or not isinstance(perturbation_factors, Sequence) \
                or not perturbation_factors:
            raise ConfigError(
                f"perturbation_factors must be a non-empty sequence of numbers, got {describe(perturbation_factors)}")
        for i, factor in enumerate(perturbation_factors):
            _number(f"perturbation_factors[{i}]", factor)
        self.perturbation_factors = tuple(perturbation_factors)
        exploit_strategy = _strategy("exploit", exploit, EXPLOIT_STRATEGIES)
        explore_strategy = _strategy("explore", explore, EXPLORE_STRATEGIES)
        if perturb_bounds not in (None, "clip", "reflect"):
            raise ConfigError(f"perturb_bounds must be None, 'clip' or 'reflect', got {perturb_bounds!r}")
        if clip_to_domain and perturb_bounds == "reflect":
            raise ConfigError("clip_to_domain=True and perturb_bounds='reflect' contradict each other: choose one")
        if isinstance(ttest_window, bool) or not isinstance(ttest_window, int) or ttest_window < 2:
            raise ConfigError(f"ttest_window must be an int >= 2 (scores per side of the t-test), got "
                              f"{describe(ttest_window)}")
        self.ttest_significance = _number("ttest_significance", ttest_significance, 0, 1, True)
        self.ttest_window = ttest_window
        if not exploit and not explore:
            raise ConfigError("PopulationBasedTraining(exploit=False, explore=False) would never change a trial")
        self.time_attr = time_attr
        self.metric = metric
        self.mode = mode
        self.hyperparam_mutations = dict(hyperparam_mutations)
        self.custom_explore_fn = custom_explore_fn
        self.log_config = bool(log_config)
        self.writes_policy_log = self.log_config
        self.require_attrs = bool(require_attrs)
        self.synch = bool(synch)
        self.clip_to_domain = bool(clip_to_domain) or perturb_bounds == "clip"
        self.perturb_bounds = "clip" if self.clip_to_domain else perturb_bounds
        self.exploit_enabled = bool(exploit)
        self.explore_enabled = bool(explore)
        self.exploit_strategy = exploit_strategy  # None when exploit=False
        self.explore_strategy = explore_strategy  # None when explore=False
        self.rng = np.random.default_rng()
        self._members: dict[str, _MemberState] = {}
        self._saves_on_request = False
        self._next_perturbation_sync = max(self.perturbation_interval, self.burn_in_period)
        self._num_checkpoints = 0
        self._num_perturbations = 0
        self._epoch = 0
        self._reset_indexes()

    # -- setup -----------------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        if self.metric and metric:
            return metric == self.metric and (not mode or not self.mode or mode == self.mode)
        if self.mode and mode:
            return mode == self.mode
        if metric:
            self.metric = metric
        if mode:
            self.mode = mode
        if self.mode and not self.metric:
            self.metric = "_metric"
        return True

    def validate(self) -> None:
        if not self.metric or not self.mode:
            raise ConfigError(
                "PopulationBasedTraining needs a metric and a mode ('min' or 'max'); got "
                f"metric={self.metric!r}, mode={self.mode!r}. Set them in PopulationBasedTraining(...) "
                "or in TuneConfig(metric=..., mode=...)")
        if self.mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {self.mode!r}")

    def on_trial_add(self, trial_id: str, config: dict[str, Any], tag: str) -> dict[str, Any]:
        self.validate()
        config = copy.deepcopy(config)
        self._fill_config(config, self.hyperparam_mutations)
        self._members[trial_id] = _MemberState(orig_tag=tag)
        self._order.append(trial_id)
        self._position[trial_id] = len(self._order) - 1
        return config

    def _fill_config(self, config: dict[str, Any], mutations: Mapping[str, Mutation]) -> None:
        for key, distribution in mutations.items():
            if isinstance(distribution, Mapping):
                if key not in config:
                    config[key] = {}
                self._fill_config(config[key], distribution)
            elif key not in config:
                config[key] = self._sample(distribution)

    def _sample(self, distribution: Mutation) -> Any:
        if isinstance(distribution, (list, tuple)):
            return copy.deepcopy(distribution[int(self.rng.integers(len(distribution)))])
        if isinstance(distribution, Domain):
            return distribution.sample(self.rng)
        return distribution()

    # -- reports ---------------------------------------------------------------------------------
    @property
    def _metric_op(self) -> float:
        return 1.0 if self.mode == "max" else -1.0

    def on_trial_result(self, trial: TrialView, result: Mapping[str, Any],
                        population: PopulationView) -> Decision:
        missing = [name for name in (self.time_attr, self.metric) if name not in result]
        if missing:
            if self.require_attrs:
                reported = sorted(k for k in result if k not in AUTO_RESULT_FIELDS)
                raise ConfigError(
                    f"PopulationBasedTraining needs {', '.join(repr(m) for m in missing)} in every report, "
                    f"but trial {trial.trial_id} reported {reported} (plus the automatic fields). Report it, "
                    "or set PopulationBasedTraining(require_attrs=False) to skip such reports")
            return Decision(Action.CONTINUE)
        state = self._members[trial.trial_id]
        if self.exploit_strategy == "ttest":
            self._remember_score(state, result[self.metric or ""])
        try:
            time_value = float(result[self.time_attr])
        except (TypeError, ValueError):
            raise ConfigError(
                f"PopulationBasedTraining(time_attr={self.time_attr!r}) must be a number in every report; "
                f"trial {trial.trial_id} reported {self.time_attr}={result[self.time_attr]!r}") from None
        if time_value < self.burn_in_period:
            return Decision(Action.CONTINUE)
        if time_value - state.last_perturbation_time < self.perturbation_interval:
            return Decision(Action.CONTINUE)
        decision = Decision()
        self._save_state(state, time_value, result, trial, decision)
        if not self.synch:
            state.last_perturbation_time = time_value
            lower, upper = self._quantiles()
            self._checkpoint_or_exploit(trial.trial_id, population, upper, lower, decision)
            exploited = any(p.target == trial.trial_id for p in decision.perturbations)
            decision.action = Action.PAUSE if exploited or population.num_waiting > 0 else Action.CONTINUE
            return decision
        decision.action = Action.PAUSE
        if self._barrier_blocked(trial.trial_id):
            return decision
        self._run_barrier(time_value, population, decision)
        return decision

    def wants_checkpoint(self, trial: TrialView, result: Mapping[str, Any]) -> bool:
        """A trial is checked at this report and has no checkpoint of its current state: PBT wants one,
        so that the trial can be a donor (Ray saves upper-quantile class trainables the same way). Such a
        trainable can then always be a donor: exploits are never skipped for lack of a checkpoint."""
        self._saves_on_request = True  # only trainables that save on request are asked (the engine's contract)
        state = self._members.get(trial.trial_id)
        if state is None or self.time_attr not in result:
            return False
        try:
            time_value = float(result[self.time_attr])
        except (TypeError, ValueError):
            return False
        if time_value < self.burn_in_period or time_value - state.last_perturbation_time < self.perturbation_interval:
            return False
        latest = trial.latest_checkpoint
        return latest is None or latest.iteration < trial.iteration

    def _save_state(self, state: _MemberState, time_value: float, result: Mapping[str, Any],
                    trial: TrialView, decision: Decision) -> None:
        raw = result[self.metric or ""]  # validate() guarantees a metric before any trial is added
        try:
            score = self._metric_op * float(raw)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            decision.notes.append(Note(
                EventKind.UNRANKABLE_SCORE, trial.trial_id,
                f"[pbt]: trial {trial.trial_id} reported {self.metric}={raw!r}, which cannot be ranked; "
                "it will not be a donor and ranks below every finite score",
                {"metric": self.metric, "value": repr(raw)}))
        self._unrank(trial.trial_id, state)
        state.last_score = score
        self._rank(trial.trial_id, state)
        state.last_train_time = time_value
        state.last_iteration = int(result.get("training_iteration", trial.iteration))

    def _behind(self, trial_id: str) -> bool:
        state = self._members[trial_id]
        return not state.finished and state.last_train_time < self._next_perturbation_sync

    def _barrier_blocked(self, reporter: str | None) -> bool:
        """Is a live trial other than ``reporter`` still short of the barrier?

        Amortized O(1): a trial that reached the barrier (or finished) stays so until the barrier moves,
        so a cursor walks past it once per barrier instead of every report scanning the population.
        """
        order = self._order
        while self._cursor < len(order):
            trial_id = order[self._cursor]
            if not self._behind(trial_id):
                self._cursor += 1
                continue
            if trial_id != reporter:
                return True
            # The reporter itself is short of the barrier (time_attr values that do not line up):
            # look past it without moving the cursor.
            return any(self._behind(t) for t in order[self._cursor + 1:])
        return False

    def _run_barrier(self, time_value: float, population: PopulationView, decision: Decision) -> None:
        lower, upper = self._quantiles()
        ranked = set(lower) | set(upper)
        middle = [tid for tid, s in self._members.items() if not s.finished and tid not in ranked]
        for tid in upper + middle + lower:
            self._members[tid].last_perturbation_time = time_value
            self._checkpoint_or_exploit(tid, population, upper, lower, decision)
        latest = max((s.last_train_time for s in self._members.values()), default=0.0)
        self._next_perturbation_sync = max(self._next_perturbation_sync + self.perturbation_interval, latest)
        self._cursor = 0
        self._epoch += 1

    def on_trial_complete(self, trial_id: str, population: PopulationView) -> Decision:
        decision = Decision()
        state = self._members.get(trial_id)
        if state is not None and not state.finished:
            self._unrank(trial_id, state)
            state.finished = True
            self._num_finished += 1
        if self.synch and self._num_finished < len(self._members) and not self._barrier_blocked(None):
            # The trial that left was the one the others waited for: complete the barrier now.
            time_value = max(s.last_train_time for s in self._members.values() if not s.finished)
            self._run_barrier(time_value, population, decision)
        return decision

    # -- ranking and exploitation -------------------------------------------------------------------
    # The ranking is kept sorted as scores change (bisect), rather than sorted at every check.
    def _reset_indexes(self) -> None:
        self._order: list[str] = list(self._members)
        self._position = {tid: i for i, tid in enumerate(self._order)}
        self._cursor = 0
        self._num_finished = sum(s.finished for s in self._members.values())
        self._ranking: list[tuple[float, int, str]] = []  # finite scores of live trials, ascending
        self._unrankable: set[str] = set()
        for tid, state in self._members.items():
            self._rank(tid, state)

    def _rank(self, trial_id: str, state: _MemberState) -> None:
        if state.last_score is None or state.finished:
            return
        if math.isfinite(state.last_score):
            bisect.insort(self._ranking, (state.last_score, self._position[trial_id], trial_id))
        else:
            self._unrankable.add(trial_id)

    def _unrank(self, trial_id: str, state: _MemberState) -> None:
        if state.last_score is None or state.finished:
            return
        if math.isfinite(state.last_score):
            entry = (state.last_score, self._position[trial_id], trial_id)
            index = bisect.bisect_left(self._ranking, entry)
            del self._ranking[index]
        else:
            self._unrankable.discard(trial_id)

    def _quantiles(self) -> tuple[list[str], list[str]]:
        """(lower, upper): the worst and best ``n`` scored live trials, ``n = min(ceil(N q), floor(N / 2))``.

        Ties keep the order trials were added; unrankable scores rank below every finite one and are
        never in the upper quantile.
        """
        total = len(self._ranking) + len(self._unrankable)
        if total <= 1:
            return [], []
        n = math.ceil(total * self.quantile_fraction)
        if n > total / 2:
            n = math.floor(total / 2)
        if n == 0:
            return [], []
        unrankable = sorted(self._unrankable, key=self._position.__getitem__)
        lower = unrankable[:n] + [tid for _, _, tid in self._ranking[:max(0, n - len(unrankable))]]
        upper = [tid for _, _, tid in self._ranking[max(0, len(self._ranking) - n):]]
        return lower, upper

    def _checkpoint_or_exploit(self, trial_id: str, population: PopulationView,
                               upper: list[str], lower: list[str], decision: Decision) -> None:
        state = self._members[trial_id]
        trial = population[trial_id]
        if self.exploit_strategy in ("binary_tournament", "ttest"):
            # every member may be picked as the other one: each keeps its checkpoint from its last check
            state.last_checkpoint = trial.latest_checkpoint
            self._num_checkpoints += 1
            donor_id = self._tournament_donor(trial_id)
            if donor_id is None:
                return
        else:
            if trial_id in upper:
                state.last_checkpoint = trial.latest_checkpoint
                self._num_checkpoints += 1
            else:
                state.last_checkpoint = None
            if trial_id not in lower or not upper:
                return
            if not self.exploit_enabled:
                self._explore_only(trial, state, decision)
                return
            donor_id = upper[int(self.rng.integers(len(upper)))]
        donor_state = self._members[donor_id]
        checkpoint = donor_state.last_checkpoint
        if checkpoint is None and self._saves_on_request:
            # A class trainable was checkpointed at its last check (wants_checkpoint) even when it was not in
            # the upper quantile then, or holds the checkpoint it was just restored from: clone its latest.
            checkpoint = population[donor_id].latest_checkpoint
        if checkpoint is None:
            decision.notes.append(Note(
                EventKind.EXPLOIT_SKIPPED, trial_id,
                f"[pbt]: no checkpoint for trial {donor_id}. Skip exploit for Trial {trial_id}",
                {"donor": donor_id, "reason": "donor has no checkpoint"}))
            return
        donor = population[donor_id]
        donor_config = donor.config
        if self.explore_enabled:
            new_config, changes = self.explore(trial, donor, donor.config)
        else:
            new_config, changes = copy.deepcopy(donor_config), ()
        decision.perturbations.append(Perturbation(
            target=trial_id, donor=donor_id, checkpoint=checkpoint,
            target_iteration=trial.iteration, target_score=state.last_score,
            donor_score=donor_state.last_score, old_config=trial.config,
            donor_config=donor_config, new_config=new_config, changes=tuple(changes),
            time_attr=self.time_attr, time_value=state.last_train_time))
        state.last_perturbation_time = donor_state.last_perturbation_time
        state.last_train_time = donor_state.last_train_time
        state.recent_scores = []  # new weights and hyperparameters: the t-test's evidence starts again
        self._num_perturbations += 1

    def _tournament_donor(self, trial_id: str) -> str | None:
        """Binary tournament / t-test selection: one other live member with a finite score, drawn uniformly;
        returned if the trial should copy it (its score is better; for the t-test, significantly so)."""
        others = [tid for tid in self._order if tid != trial_id and not self._members[tid].finished
                  and _finite(self._members[tid].last_score)]
        if not others:
            return None
        other_id = others[int(self.rng.integers(len(others)))]
        own, other = self._members[trial_id], self._members[other_id]
        if self.exploit_strategy == "binary_tournament":
            own_score = own.last_score if own.last_score is not None and _finite(own.last_score) else -math.inf
            return other_id if other.last_score > own_score else None  # type: ignore[operator]
        if len(own.recent_scores) < 2 or len(other.recent_scores) < 2:
            return None
        if float(np.mean(other.recent_scores)) <= float(np.mean(own.recent_scores)):
            return None
        return other_id if welch_t_test(other.recent_scores, own.recent_scores) < self.ttest_significance else None

    def _remember_score(self, state: _MemberState, raw: Any) -> None:
        try:
            score = self._metric_op * float(raw)
        except (TypeError, ValueError):
            return
        if math.isfinite(score):
            state.recent_scores.append(score)
            del state.recent_scores[:-self.ttest_window]

    def _explore_only(self, trial: TrialView, state: _MemberState, decision: Decision) -> None:
        checkpoint = trial.latest_checkpoint
        if checkpoint is None:
            decision.notes.append(Note(
                EventKind.EXPLOIT_SKIPPED, trial.trial_id,
                f"[pbt]: no checkpoint for trial {trial.trial_id}. Skip explore for Trial {trial.trial_id}",
                {"donor": None, "reason": "trial has no checkpoint to restart from"}))
            return
        new_config, changes = self.explore(trial, None, trial.config)
        decision.perturbations.append(Perturbation(
            target=trial.trial_id, donor=None, checkpoint=checkpoint,
            target_iteration=trial.iteration, target_score=state.last_score, donor_score=None,
            old_config=trial.config, donor_config=trial.config,
            new_config=new_config, changes=tuple(changes), time_attr=self.time_attr,
            time_value=state.last_train_time))
        self._num_perturbations += 1

    def explore(self, target: TrialView, donor: TrialView | None,
                config: dict[str, Any]) -> tuple[dict[str, Any], Sequence[HyperparamChange]]:
        """The config ``target`` restarts with, made from ``config`` (``donor``'s; the target's own in
        explore-only mode, where ``donor`` is None), and the changes made. Override to explore differently;
        draw randomness from ``self.rng`` so runs stay reproducible.

        By default: Ray's explore (:func:`pbtlab.schedulers.explore.perturb_config`), then ``custom_explore_fn``.
        """
        resample_probability = 1.0 if self.explore_strategy == "resample" else self.resample_probability
        return perturb_config(
            config, self.hyperparam_mutations, self.rng, resample_probability=resample_probability,
            perturbation_factors=self.perturbation_factors, bounds=self.perturb_bounds,
            custom_explore_fn=self.custom_explore_fn)

    # -- slots -------------------------------------------------------------------------------------
    def choose_trial_to_run(self, candidates: Sequence[TrialView], allow_any: bool = False) -> str | None:
        chosen = self.choose_trials_to_run(candidates, 1, allow_any)
        return chosen[0] if chosen else None

    def choose_trials_to_run(self, candidates: Sequence[TrialView], k: int, allow_any: bool = False) -> list[str]:
        """The ``k`` least advanced candidates (by ``time_attr`` at their last check), as Ray.

        In synchronous mode only trials that have not reached the next barrier are eligible.
        """
        def train_time(trial: TrialView) -> float:
            state = self._members.get(trial.trial_id)
            return state.last_train_time if state else 0.0

        eligible = list(candidates)
        if self.synch and not allow_any:
            eligible = [t for t in eligible if train_time(t) < self._next_perturbation_sync]
        eligible.sort(key=train_time)  # stable: ties keep the order trials were added
        return [t.trial_id for t in eligible[:k]]

    @property
    def selection_epoch(self) -> int:
        """Changes whenever a trial that was not eligible to run may have become eligible."""
        return self._epoch

    def referenced_checkpoints(self) -> set[str]:
        """Checkpoints the scheduler may still hand to a clone: they must not be deleted."""
        return {s.last_checkpoint.path for s in self._members.values() if s.last_checkpoint is not None}

    # -- reporting and state -----------------------------------------------------------------------
    @property
    def num_checkpoints(self) -> int:
        return self._num_checkpoints

    @property
    def num_perturbations(self) -> int:
        return self._num_perturbations

    def debug_string(self) -> str:
        return f"PopulationBasedTraining: {self._num_checkpoints} checkpoints, {self._num_perturbations} perturbs"

    def describe(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__, "class": class_path(type(self)), "time_attr": self.time_attr, "metric": self.metric,
            "mode": self.mode, "perturbation_interval": self.perturbation_interval,
            "burn_in_period": self.burn_in_period,
            "hyperparam_mutations": _describe_mutations(self.hyperparam_mutations),
            "hyperparam_mutations_spec": to_spec(self.hyperparam_mutations)["nested"],
            "log_config": self.log_config, "require_attrs": self.require_attrs,
            "quantile_fraction": self.quantile_fraction, "resample_probability": self.resample_probability,
            "perturbation_factors": list(self.perturbation_factors), "synch": self.synch,
            "custom_explore_fn": getattr(self.custom_explore_fn, "__qualname__", None),
            "clip_to_domain": self.clip_to_domain, "exploit": self.exploit_enabled,
            "explore": self.explore_enabled, **self._strategy_description(),
        }

    def _strategy_description(self) -> dict[str, Any]:
        """The paper's strategy options, recorded only when they differ from Ray's defaults (so that runs with
        the defaults describe themselves exactly as before)."""
        extra: dict[str, Any] = {}
        if self.exploit_strategy not in (None, "truncation"):
            extra["exploit_strategy"] = self.exploit_strategy
        if self.exploit_strategy == "ttest":
            extra["ttest_window"] = self.ttest_window
            extra["ttest_significance"] = self.ttest_significance
        if self.explore_strategy not in (None, "perturb"):
            extra["explore_strategy"] = self.explore_strategy
        if self.perturb_bounds == "reflect":
            extra["perturb_bounds"] = "reflect"
        return extra

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> PopulationBasedTraining:  # type: ignore[override]
        """Rebuild a scheduler from ``describe()`` output (experiment.json), for resuming a run."""
        refuse_custom_explore_fn(description)
        mutations = {k: from_spec(v, f"hyperparam_mutations/{k}")
                     for k, v in description["hyperparam_mutations_spec"].items()}
        return cls(
            time_attr=description["time_attr"], metric=description["metric"], mode=description["mode"],
            perturbation_interval=description["perturbation_interval"],
            burn_in_period=description["burn_in_period"], hyperparam_mutations=mutations,
            quantile_fraction=description["quantile_fraction"],
            resample_probability=description["resample_probability"],
            perturbation_factors=tuple(description["perturbation_factors"]),
            log_config=description.get("log_config", True), require_attrs=description.get("require_attrs", True),
            synch=description["synch"], clip_to_domain=description["clip_to_domain"],
            exploit=description.get("exploit_strategy", description["exploit"]) if description["exploit"] else False,
            explore=description.get("explore_strategy", description["explore"]) if description["explore"] else False,
            perturb_bounds=description.get("perturb_bounds"), ttest_window=description.get("ttest_window", 10),
            ttest_significance=description.get("ttest_significance", 0.05))

    def state_dict(self) -> dict[str, Any]:
        return {
            "members": {tid: s.to_dict() for tid, s in self._members.items()},
            "next_perturbation_sync": self._next_perturbation_sync,
            "num_checkpoints": self._num_checkpoints,
            "num_perturbations": self._num_perturbations,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._members = {tid: _MemberState.from_dict(s) for tid, s in state["members"].items()}
        self._next_perturbation_sync = float(state["next_perturbation_sync"])
        self._num_checkpoints = int(state["num_checkpoints"])
        self._num_perturbations = int(state["num_perturbations"])
        self.rng.bit_generator.state = state["rng"]
        self._reset_indexes()
        self._epoch += 1

    def last_scores(self) -> dict[str, float | None]:
        """Each trial's score at its last check (sign-adjusted: higher is better)."""
        return {tid: s.last_score for tid, s in self._members.items()}


def _finite(score: float | None) -> bool:
    return score is not None and math.isfinite(score)


#: PopulationBasedTraining(exploit=...): True means "truncation", False explore-only.
EXPLOIT_STRATEGIES = ("truncation", "binary_tournament", "ttest")
#: PopulationBasedTraining(explore=...): True means "perturb", False exploit-only.
EXPLORE_STRATEGIES = ("perturb", "resample")


def _strategy(name: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    if value is True:
        return allowed[0]
    if value is False:
        return None
    if isinstance(value, str) and value in allowed:
        return value
    raise ConfigError(f"{name} must be True, False or one of {', '.join(repr(a) for a in allowed)}; got {value!r}")


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test that samples ``a`` and ``b`` have the same mean (numpy only).

        >>> round(welch_t_test([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0]), 3)
        0.071
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    var_x, var_y = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    difference = float(x.mean() - y.mean())
    if var_x + var_y == 0.0:
        return 1.0 if difference == 0.0 else 0.0
    t = difference / math.sqrt(var_x + var_y)
    dof = (var_x + var_y) ** 2 / (var_x ** 2 / (len(x) - 1) + var_y ** 2 / (len(y) - 1))
    return float(_regularized_incomplete_beta(float(dof) / 2.0, 0.5, float(dof / (dof + t * t))))


def _regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), by its continued fraction (modified Lentz), using the symmetry I_x(a,b) = 1 - I_(1-x)(b,a)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _regularized_incomplete_beta(b, a, 1.0 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return math.exp(log_front) * fraction / a


def _describe_mutations(mutations: Mapping[str, Mutation]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mutations.items():
        if isinstance(value, Mapping):
            out[key] = _describe_mutations(value)
        elif isinstance(value, Domain):
            out[key] = repr(value)
        elif isinstance(value, (list, tuple)):
            out[key] = list(value)
        else:
            out[key] = getattr(value, "__qualname__", repr(value))
    return out


def refuse_custom_explore_fn(description: Mapping[str, Any]) -> None:
    """A run whose ``custom_explore_fn`` cannot come back from experiment.json must be given its scheduler."""
    if description.get("custom_explore_fn"):
        raise ConfigError(
            f"the run used custom_explore_fn={description['custom_explore_fn']}, which cannot be rebuilt from "
            "experiment.json; pass the same scheduler: Tuner.restore(path, trainable, "
            "tune_config=TuneConfig(scheduler=...))")
