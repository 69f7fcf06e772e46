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

A PBT variant changes one of three things, each without touching the engine:

- whom a trial copies: ``exploit=`` an :class:`~pbtlab.schedulers.strategies.ExploitStrategy`;
- how the copied config changes: ``explore=`` an :class:`~pbtlab.schedulers.strategies.ExploreStrategy`,
  or override :meth:`PopulationBasedTraining.explore` in a subclass;
- what it learns from each check: override :meth:`PopulationBasedTraining.on_check` (PB2 does).

The ranking lives in ``schedulers/ranking.py``, the strategies in ``schedulers/strategies.py`` and the
t-test in ``schedulers/statistics.py``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError, describe
from pbtlab.rundir.records import AUTO_RESULT_FIELDS, EventKind
from pbtlab.rng import unseeded
from pbtlab.schedulers.arguments import check_mutations, number
from pbtlab.schedulers.base import (
    Action,
    Decision,
    DecisionNote,
    HyperparamChange,
    Perturbation,
    PopulationView,
    TrialInfo,
    TrialScheduler,
    class_path,
)
from pbtlab.schedulers.explore import Mutation
from pbtlab.schedulers.ranking import MemberState, Ranking
from pbtlab.schedulers.statistics import welch_t_test
from pbtlab.schedulers.strategies import (
    BOUNDS,
    EXPLOIT_STRATEGIES,
    EXPLORE_STRATEGIES,
    Clip,
    ExploitStrategy,
    ExploreStrategy,
    Perturb,
    PerturbBounds,
    Standings,
    TTest,
    bounds_policy,
    exploit_strategy,
    explore_strategy,
)
from pbtlab.space import Domain, from_spec, to_spec

__all__ = ["PopulationBasedTraining", "refuse_custom_explore_fn", "welch_t_test"]

_TTEST_DEFAULTS = (10, 0.05)


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

    pbtlab's own (fixes of Ray bugs; off by default where the tutorial's numbers depend on Ray's way). Each
    strategy is an object from :mod:`pbtlab.schedulers.strategies`, or its name:
        clip_to_domain: keep perturbed values inside their domain's bounds and quantization
            (Ray issues #5035 and #12717; off by default, as in Ray). The same as ``perturb_bounds="clip"``.
        exploit: how a trial chooses whom to copy (the PBT paper's strategies, Jaderberg et al. 2017, 3.2):
            ``"truncation"`` (or True, the default: Ray's; the bottom ``quantile_fraction`` copies a random
            member of the top), ``"binary_tournament"`` (at its check a trial picks one random other live
            member and copies it if that member's score is better), ``"ttest"`` (the same, but copies only if
            the other's mean over the last ``ttest_window`` reported scores is higher and Welch's t-test gives
            p < ``ttest_significance``); False: explore-only, a trial perturbs its own hyperparameters and
            keeps its own weights (the paper's Figure 2 ablation). Or an ``ExploitStrategy`` object.
        explore: how the copied config changes: ``"perturb"`` (or True, the default: Ray's resample-or-perturb
            with ``resample_probability``), ``"resample"`` (always resample from the mutation); False:
            exploit-only, copy without perturbing. Or an ``ExploreStrategy`` object.
        perturb_bounds: None (Ray's: a perturbed value may leave its domain), ``"clip"`` or ``"reflect"``
            (mirror an overshoot back off the domain's bound; in log space for log domains); or
            ``Clip()`` / ``Reflect()``.
        ttest_window, ttest_significance: the t-test's window of recent reports and threshold (the
            paper's: the last 10 scores, p < 0.05); with ``exploit="ttest"`` (else use ``TTest(...)``).

    To change how configs are explored, override :meth:`explore` in a subclass; to learn from every
    check, override :meth:`on_check`. The subclass is recorded in experiment.json as itself and resumes
    as itself.
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
        exploit: bool | str | ExploitStrategy = True,
        explore: bool | str | ExploreStrategy = True,
        perturb_bounds: str | PerturbBounds | None = None,
        ttest_window: int = 10,
        ttest_significance: float = 0.05,
    ) -> None:
        if not isinstance(time_attr, str) or not time_attr:
            raise ConfigError(f"time_attr must be a result field name (str), got {describe(time_attr)}")
        if mode is not None and mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
        if metric is not None and not isinstance(metric, str):
            raise ConfigError(f"metric must be a str, got {describe(metric)}")
        self.perturbation_interval = number("perturbation_interval", perturbation_interval, 0, None, True)
        self.burn_in_period = number("burn_in_period", burn_in_period, 0)
        self.quantile_fraction = number("quantile_fraction", quantile_fraction, 0, 0.5)
        self.resample_probability = number("resample_probability", resample_probability, 0, 1)
        if hyperparam_mutations is None:
            hyperparam_mutations = {}
        check_mutations(hyperparam_mutations)
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
            number(f"perturbation_factors[{i}]", factor)
        self.perturbation_factors = tuple(perturbation_factors)
        if isinstance(ttest_window, bool) or not isinstance(ttest_window, int) or ttest_window < 2:
            raise ConfigError(f"ttest_window must be an int >= 2 (scores per side of the t-test), got "
                              f"{describe(ttest_window)}")
        ttest_significance = number("ttest_significance", ttest_significance, 0, 1, True)
        if isinstance(exploit, ExploitStrategy) and (ttest_window, ttest_significance) != _TTEST_DEFAULTS:
            raise ConfigError(f"ttest_window and ttest_significance go with exploit='ttest'; with exploit={exploit!r}, "
                              "set them on the strategy, e.g. TTest(window=5, significance=0.01)")
        self.exploit_strategy: ExploitStrategy | None = exploit_strategy(exploit, ttest_window, ttest_significance)
        self.explore_strategy: ExploreStrategy | None = explore_strategy(explore)
        bounds = bounds_policy(perturb_bounds, "perturb_bounds")
        if clip_to_domain and bounds is not None and not isinstance(bounds, Clip):
            raise ConfigError(f"clip_to_domain=True and perturb_bounds={perturb_bounds!r} contradict each other: "
                              "choose one")
        if self.exploit_strategy is None and self.explore_strategy is None:
            raise ConfigError("PopulationBasedTraining(exploit=False, explore=False) would never change a trial")
        if isinstance(self.exploit_strategy, TTest):
            ttest_window, ttest_significance = self.exploit_strategy.window, self.exploit_strategy.significance
        self.ttest_window = ttest_window
        self.ttest_significance = ttest_significance
        self.time_attr = time_attr
        self.metric = metric
        self.mode = mode
        self.hyperparam_mutations = dict(hyperparam_mutations)
        self.custom_explore_fn = custom_explore_fn
        self.log_config = bool(log_config)
        self.writes_policy_log = self.log_config
        self.require_attrs = bool(require_attrs)
        self.synch = bool(synch)
        self.clip_to_domain = bool(clip_to_domain) or isinstance(bounds, Clip)
        self.perturb_bounds: PerturbBounds | None = Clip() if self.clip_to_domain else bounds
        self.exploit_enabled = self.exploit_strategy is not None
        self.explore_enabled = self.explore_strategy is not None
        self.rng = unseeded()  # a run sets its seeded stream (set_rng)
        self._members: dict[str, MemberState] = {}
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
        self._members[trial_id] = MemberState(orig_tag=tag)
        self._ranking.add(trial_id)
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

    def on_trial_result(self, trial: TrialInfo, result: Mapping[str, Any],
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
        window = self.exploit_strategy.score_window if self.exploit_strategy is not None else 0
        if window:
            self._remember_score(state, result[self.metric or ""], window)
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
        self._record_check(state, time_value, result, trial, decision)
        if not self.synch:
            state.last_perturbation_time = time_value
            lower, upper = self._ranking.quantiles(self.quantile_fraction)
            self._checkpoint_or_exploit(trial.trial_id, population, upper, lower, decision)
            exploited = any(p.target == trial.trial_id for p in decision.perturbations)
            decision.action = Action.PAUSE if exploited or population.num_waiting > 0 else Action.CONTINUE
            return decision
        decision.action = Action.PAUSE
        if self._barrier_blocked(trial.trial_id):
            return decision
        self._run_barrier(time_value, population, decision)
        return decision

    def wants_checkpoint(self, trial: TrialInfo, result: Mapping[str, Any]) -> bool:
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

    def on_check(self, trial: TrialInfo, time_value: float, score: float) -> None:
        """Called at each check of a trial (when ``time_attr`` advanced ``perturbation_interval``), once its
        ``score`` (sign-adjusted: higher is better; NaN if it cannot be ranked) is recorded and before anyone
        is exploited. Override to learn from the population's scores; by default nothing."""

    def _record_check(self, state: MemberState, time_value: float, result: Mapping[str, Any],
                      trial: TrialInfo, decision: Decision) -> None:
        raw = result[self.metric or ""]  # validate() guarantees a metric before any trial is added
        try:
            score = self._metric_op * float(raw)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            decision.notes.append(DecisionNote(
                EventKind.UNRANKABLE_SCORE, trial.trial_id,
                f"[pbt]: trial {trial.trial_id} reported {self.metric}={raw!r}, which cannot be ranked; "
                "it will not be a donor and ranks below every finite score",
                {"metric": self.metric, "value": repr(raw)}))
        self._unrank(trial.trial_id, state)
        state.last_score = score
        self._rank(trial.trial_id, state)
        state.last_train_time = time_value
        state.last_iteration = int(result.get("training_iteration", trial.iteration))
        self.on_check(trial, time_value, score)

    def _behind(self, trial_id: str) -> bool:
        state = self._members[trial_id]
        return not state.finished and state.last_train_time < self._next_perturbation_sync

    def _barrier_blocked(self, reporter: str | None) -> bool:
        """Is a live trial other than ``reporter`` still short of the barrier?

        Amortized O(1): a trial that reached the barrier (or finished) stays so until the barrier moves,
        so a cursor walks past it once per barrier instead of every report scanning the population.
        """
        order = self._ranking.order
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
        lower, upper = self._ranking.quantiles(self.quantile_fraction)
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
    def _reset_indexes(self) -> None:
        self._ranking = Ranking()
        for trial_id in self._members:
            self._ranking.add(trial_id)
        self._cursor = 0
        self._num_finished = sum(s.finished for s in self._members.values())
        for trial_id, state in self._members.items():
            self._rank(trial_id, state)

    def _rank(self, trial_id: str, state: MemberState) -> None:
        if not state.finished:
            self._ranking.rank(trial_id, state.last_score)

    def _unrank(self, trial_id: str, state: MemberState) -> None:
        if not state.finished:
            self._ranking.unrank(trial_id, state.last_score)

    def _checkpoint_or_exploit(self, trial_id: str, population: PopulationView,
                               upper: list[str], lower: list[str], decision: Decision) -> None:
        state = self._members[trial_id]
        trial = population[trial_id]
        strategy = self.exploit_strategy
        standings = Standings(lower, upper, self._members, self._ranking.order)
        keeps = trial_id in upper if strategy is None else strategy.keeps_checkpoint(trial_id, standings)
        if keeps:
            state.last_checkpoint = trial.latest_checkpoint
            self._num_checkpoints += 1
        else:
            state.last_checkpoint = None
        if strategy is None:  # explore-only: the bottom quantile perturbs its own config
            if trial_id in lower and upper:
                self._explore_only(trial, state, decision)
            return
        donor_id = strategy.choose_donor(trial_id, standings, self.rng)
        if donor_id is None:
            return
        if donor_id not in self._members or donor_id == trial_id:
            raise ConfigError(f"{type(strategy).__name__}.choose_donor({trial_id!r}) returned {donor_id!r}: it must "
                              "name another trial of the run, or None")
        donor_state = self._members[donor_id]
        checkpoint = donor_state.last_checkpoint
        if checkpoint is None and self._saves_on_request:
            # A class trainable was checkpointed at its last check (wants_checkpoint) even when it was not in
            # the upper quantile then, or holds the checkpoint it was just restored from: clone its latest.
            checkpoint = population[donor_id].latest_checkpoint
        if checkpoint is None:
            decision.notes.append(DecisionNote(
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

    def _remember_score(self, state: MemberState, raw: Any, window: int) -> None:
        try:
            score = self._metric_op * float(raw)
        except (TypeError, ValueError):
            return
        if math.isfinite(score):
            state.recent_scores.append(score)
            del state.recent_scores[:-window]

    def _explore_only(self, trial: TrialInfo, state: MemberState, decision: Decision) -> None:
        checkpoint = trial.latest_checkpoint
        if checkpoint is None:
            decision.notes.append(DecisionNote(
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

    def explore(self, target: TrialInfo, donor: TrialInfo | None,
                config: dict[str, Any]) -> tuple[dict[str, Any], Sequence[HyperparamChange]]:
        """The config ``target`` restarts with, made from ``config`` (``donor``'s; the target's own in
        explore-only mode, where ``donor`` is None), and the changes made. Override to explore differently;
        draw randomness from ``self.rng`` so runs stay reproducible.

        By default: the explore strategy (Ray's resample-or-perturb,
        :func:`pbtlab.schedulers.explore.perturb_config`), then ``custom_explore_fn``.
        """
        strategy = self.explore_strategy if self.explore_strategy is not None else Perturb()
        return strategy.explore(
            config, self.hyperparam_mutations, self.rng, resample_probability=self.resample_probability,
            perturbation_factors=self.perturbation_factors, bounds=self.perturb_bounds,
            custom_explore_fn=self.custom_explore_fn)

    # -- slots -------------------------------------------------------------------------------------
    def choose_trial_to_run(self, candidates: Sequence[TrialInfo], allow_any: bool = False) -> str | None:
        """Ray's name: the one trial :meth:`choose_trials_to_run` would start first."""
        chosen = self.choose_trials_to_run(candidates, 1, allow_any)
        return chosen[0] if chosen else None

    def choose_trials_to_run(self, candidates: Sequence[TrialInfo], k: int, allow_any: bool = False) -> list[str]:
        """The ``k`` least advanced candidates (by ``time_attr`` at their last check), as Ray.

        In synchronous mode only trials that have not reached the next barrier are eligible.
        """
        def train_time(trial: TrialInfo) -> float:
            state = self._members.get(trial.trial_id)
            return state.last_train_time if state else 0.0

        eligible = list(candidates)
        if self.synch and not allow_any:
            eligible = [t for t in eligible if train_time(t) < self._next_perturbation_sync]
        eligible.sort(key=train_time)  # stable: ties keep the order trials were added
        return [t.trial_id for t in eligible[:k]]

    # -- engine side (EngineSide) -------------------------------------------------------------------
    @property
    def selection_epoch(self) -> int:
        """Changes whenever a trial held at the barrier may have become eligible (the barrier opened)."""
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
        if self.exploit_strategy is not None:
            extra.update(self.exploit_strategy.describe())
        if self.explore_strategy is not None:
            extra.update(self.explore_strategy.describe())
        if self.perturb_bounds is not None and not self.clip_to_domain:
            extra["perturb_bounds"] = self.perturb_bounds.name or type(self.perturb_bounds).__name__
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
        self._members = {tid: MemberState.from_dict(s) for tid, s in state["members"].items()}
        self._next_perturbation_sync = float(state["next_perturbation_sync"])
        self._num_checkpoints = int(state["num_checkpoints"])
        self._num_perturbations = int(state["num_perturbations"])
        self.rng.bit_generator.state = state["rng"]
        self._reset_indexes()
        self._epoch += 1

    def last_scores(self) -> dict[str, float | None]:
        """Each trial's score at its last check (sign-adjusted: higher is better)."""
        return {tid: s.last_score for tid, s in self._members.items()}


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
    """A run whose ``custom_explore_fn`` or strategy objects cannot come back from experiment.json must be
    given its scheduler."""
    custom = []
    if description.get("custom_explore_fn"):
        custom.append(f"custom_explore_fn={description['custom_explore_fn']}")
    for key, known in (("exploit_strategy", EXPLOIT_STRATEGIES), ("explore_strategy", EXPLORE_STRATEGIES),
                       ("perturb_bounds", BOUNDS)):
        if description.get(key) is not None and description[key] not in known:
            custom.append(f"{key}={description[key]!r} (an object of its own)")
    if custom:
        raise ConfigError(
            f"the run used {' and '.join(custom)}, which cannot be rebuilt from "
            "experiment.json; pass the same scheduler: Tuner.restore(path, trainable, "
            "tune_config=TuneConfig(scheduler=...))")
