"""PopulationBasedTraining driven directly with fake trials: decisions as data, Ray 2.60's semantics.

Reference: shared/reference/ray_tune_pbt_semantics.md, sections 1.3-1.12.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from typing import Any

import numpy as np
import pytest

from pbtlab import tune
from pbtlab.errors import ConfigError
from pbtlab.progress import summarize_changes
from pbtlab.schedulers import Action, CheckpointRef, HyperparamChange, PopulationBasedTraining


@dataclasses.dataclass(eq=False)
class FakeTrial:
    """A TrialInfo: what a scheduler may read about a trial."""

    trial_id: str
    config: dict[str, Any]
    iteration: int = 0
    finished: bool = False
    waiting: bool = False
    checkpoint: CheckpointRef | None = None

    @property
    def is_finished(self) -> bool:
        return self.finished

    @property
    def is_waiting(self) -> bool:
        return self.waiting

    @property
    def latest_checkpoint(self) -> CheckpointRef | None:
        return self.checkpoint


def make_pbt(seed: int = 0, **kwargs: Any) -> PopulationBasedTraining:
    settings: dict[str, Any] = dict(time_attr="training_iteration", metric="score", mode="max",
                                    perturbation_interval=4, hyperparam_mutations={"lr": tune.uniform(0.0, 1.0)})
    settings.update(kwargs)
    pbt = PopulationBasedTraining(**settings)
    pbt.set_rng(np.random.default_rng(seed))
    return pbt


class FakePopulation(dict):
    """A PopulationView: the trials by id, and how many wait for a slot."""

    @property
    def num_waiting(self) -> int:
        return sum(t.waiting and not t.finished for t in self.values())


def make_population(pbt: PopulationBasedTraining, n: int, config: dict[str, Any] | None = None) -> FakePopulation:
    population = FakePopulation()
    for i in range(n):
        tid = f"t{i}"
        cfg = pbt.on_trial_add(tid, dict(config or {"lr": 0.5}), f"{i}_tag")
        population[tid] = FakeTrial(tid, cfg)
    return population


def report(pbt, population, tid, t, score, checkpoint=True, **extra):
    """Trial ``tid`` reports ``score`` at iteration ``t`` (with a fresh checkpoint if asked)."""
    trial = population[tid]
    trial.iteration = t
    if checkpoint:
        trial.checkpoint = CheckpointRef(tid, f"{tid}/checkpoint_{t:06d}", t, float(t), t)
    result = {"training_iteration": t, "score": score, **extra}
    return pbt.on_trial_result(trial, result, population)


def barrier(pbt, population, t, scores, checkpoint=True):
    """Every trial reports at ``t`` in order; return all decisions (the last one completes the barrier)."""
    return [report(pbt, population, tid, t, score, checkpoint) for tid, score in zip(population, scores)]


# -- quantiles (reference 1.9) ----------------------------------------------------------------------------
@pytest.mark.parametrize("size,fraction,n", [(2, 0.25, 1), (3, 0.5, 1), (4, 0.25, 1), (4, 0.5, 2), (5, 0.25, 2),
                                             (8, 0.25, 2), (1, 0.5, 0), (6, 0.5, 3), (7, 0.5, 3), (4, 0.0, 0)])
def test_quantile_sizes_follow_the_reference_table(size, fraction, n):
    pbt = make_pbt(quantile_fraction=fraction, synch=True, resample_probability=0.0)
    population = make_population(pbt, size)
    scores = [float((7 * i) % size) for i in range(size)]  # a permutation of 0..size-1
    decisions = barrier(pbt, population, 4, scores)
    assert all(d.action is Action.PAUSE for d in decisions)
    assert all(not d.perturbations for d in decisions[:-1])  # nobody acts before the barrier is complete
    ranked = sorted(population, key=lambda tid: scores[int(tid[1:])])
    lower, upper = ranked[:n], ranked[size - n:] if n else []
    perturbations = decisions[-1].perturbations
    assert sorted(p.target for p in perturbations) == sorted(lower)
    assert all(p.donor in upper for p in perturbations)
    assert pbt.debug_string() == f"PopulationBasedTraining: {n} checkpoints, {n} perturbs"
    assert pbt.num_checkpoints == n and pbt.num_perturbations == n


def test_ties_keep_the_order_trials_were_added():
    pbt = make_pbt(quantile_fraction=0.25, synch=True)
    population = make_population(pbt, 4)
    decision = barrier(pbt, population, 4, [1.0, 1.0, 1.0, 1.0])[-1]
    # stable ascending sort: the first-added trial is "worst", the last-added "best"
    assert [(p.target, p.donor) for p in decision.perturbations] == [("t0", "t3")]


def test_min_mode_flips_the_sign_of_scores():
    pbt = make_pbt(mode="min", synch=True)
    population = make_population(pbt, 2)
    decision = barrier(pbt, population, 4, [0.1, 5.0])[-1]
    (p,) = decision.perturbations
    assert (p.target, p.donor) == ("t1", "t0")  # the smaller loss wins
    assert p.donor_score == -0.1 and p.target_score == -5.0  # scores are sign-adjusted, as Ray logs them
    assert pbt.last_scores() == {"t0": -0.1, "t1": -5.0}


# -- explore (reference 1.7) --------------------------------------------------------------------------------
def explore(mutations, config, seed=0, **kwargs):
    pbt = make_pbt(seed=seed, hyperparam_mutations=mutations, **kwargs)
    return pbt.explore(FakeTrial("t0", config), None, config)


def test_domain_perturbed_by_a_factor():
    seen = set()
    for seed in range(20):
        new, changes = explore({"lr": tune.uniform(0.0, 1.0)}, {"lr": 0.5, "other": "x"}, seed,
                               resample_probability=0.0)
        (change,) = changes
        assert change.param == "lr" and change.old == 0.5
        assert change.op in ("* 1.2", "* 0.8")
        assert new["lr"] == 0.5 * float(change.op[2:]) == change.new
        assert new["other"] == "x"  # the rest of the config is copied
        seen.add(change.op)
    assert seen == {"* 1.2", "* 0.8"}


def test_custom_perturbation_factors():
    ops = {explore({"lr": tune.uniform(0, 1)}, {"lr": 1.0}, s, resample_probability=0.0,
                   perturbation_factors=(2.0, 3.0, 0.5))[1][0].op for s in range(30)}
    assert ops == {"* 2.0", "* 3.0", "* 0.5"}


def test_domain_resampled_from_its_distribution():
    for seed in range(20):
        new, (change,) = explore({"lr": tune.qloguniform(5e-3, 1e-1, 5e-4)}, {"lr": 0.05}, seed,
                                 resample_probability=1.0)
        assert change.op == "resample"
        assert 5e-3 <= new["lr"] <= 1e-1
        assert new["lr"] == pytest.approx(round(new["lr"] / 5e-4) * 5e-4, abs=1e-15)


def test_no_clipping_or_requantization_by_default():
    """Ray issues #5035 / #12717: multiplying leaves the domain and the q-grid; kept as Ray's default."""
    new, (change,) = explore({"lr": tune.uniform(0.0, 1.0)}, {"lr": 0.9}, 0, resample_probability=0.0,
                             perturbation_factors=(1.2,))
    assert new["lr"] == pytest.approx(1.08) and change.op == "* 1.2"
    new, _ = explore({"lr": tune.qloguniform(5e-3, 1e-1, 5e-4)}, {"lr": 0.0335}, 0, resample_probability=0.0,
                     perturbation_factors=(1.2,))
    assert new["lr"] == 0.0335 * 1.2  # 0.0402: off the 5e-4 grid


def test_clip_to_domain_keeps_values_inside():
    new, (change,) = explore({"lr": tune.uniform(0.0, 1.0)}, {"lr": 0.9}, 0, resample_probability=0.0,
                             perturbation_factors=(1.2,), clip_to_domain=True)
    assert new["lr"] == 1.0 and change.new == 1.0 and change.op == "* 1.2"
    new, _ = explore({"lr": tune.qloguniform(5e-3, 1e-1, 5e-4)}, {"lr": 0.0335}, 0, resample_probability=0.0,
                     perturbation_factors=(1.2,), clip_to_domain=True)
    assert new["lr"] == pytest.approx(0.04, abs=1e-15)  # back on the grid
    new, _ = explore({"lr": tune.qloguniform(5e-3, 1e-1, 5e-4)}, {"lr": 0.005}, 0, resample_probability=0.0,
                     perturbation_factors=(0.8,), clip_to_domain=True)
    assert new["lr"] == pytest.approx(0.005, abs=1e-15)
    new, _ = explore({"n": tune.randint(1, 10)}, {"n": 9}, 0, resample_probability=0.0,
                     perturbation_factors=(1.2,), clip_to_domain=True)
    assert new["n"] == 9  # randint's upper bound is exclusive


def test_int_values_are_rounded_not_truncated():
    """PR #65747: int(round(x)); Ray's old int(x) ratcheted integers to 0."""
    cases = [(3, 1.2, 4), (3, 0.8, 2), (10, 1.2, 12), (1, 0.8, 1), (2, 0.8, 2)]
    for old, factor, expected in cases:
        new, (change,) = explore({"n": tune.randint(1, 100)}, {"n": old}, 0, resample_probability=0.0,
                                 perturbation_factors=(factor,))
        assert new["n"] == expected and type(new["n"]) is int, (old, factor)
        assert change.new == expected


def test_int_perturbation_does_not_ratchet_to_zero():
    pbt = make_pbt(seed=1, hyperparam_mutations={"n": tune.randint(1, 100)}, resample_probability=0.0)
    config = {"n": 32}
    for _ in range(50):
        config, _ = pbt.explore(FakeTrial("t0", config), None, config)
    assert config["n"] > 0


def test_bool_values_stay_bool():
    for seed in range(10):
        new, (change,) = explore({"flag": tune.choice([True, False])}, {"flag": True}, seed,
                                 resample_probability=0.0)
        assert new["flag"] is True  # True * 1.2 -> True: perturbing a bool is a no-op
    flips = set()
    for seed in range(20):
        new, _ = explore({"flag": tune.choice([True, False])}, {"flag": True}, seed, resample_probability=1.0)
        assert type(new["flag"]) is bool
        flips.add(new["flag"])
    assert flips == {True, False}  # only resampling can flip it


def test_list_shifts_one_step_or_resamples():
    values = [1, 2, 4, 8]
    ops = {}
    for seed in range(40):
        new, (change,) = explore({"bs": values}, {"bs": 2}, seed, resample_probability=0.0)
        ops[change.op] = new["bs"]
    assert ops == {"shift left": 1, "shift right": 4}
    for seed in range(40):
        new, (change,) = explore({"bs": values}, {"bs": 1}, seed, resample_probability=0.0)
        assert (change.op, new["bs"]) in {("shift left (noop)", 1), ("shift right", 2)}
        new, (change,) = explore({"bs": values}, {"bs": 8}, seed, resample_probability=0.0)
        assert (change.op, new["bs"]) in {("shift right (noop)", 8), ("shift left", 4)}
    # resample, and a value not in the list is always resampled
    for seed in range(10):
        new, (change,) = explore({"bs": values}, {"bs": 2}, seed, resample_probability=1.0)
        assert change.op == "resample" and new["bs"] in values
        new, (change,) = explore({"bs": values}, {"bs": 3}, seed, resample_probability=0.0)
        assert change.op == "resample" and new["bs"] in values


def test_tuple_is_a_list_and_strings_shift():
    for seed in range(10):
        new, (change,) = explore({"opt": ("sgd", "adam", "rmsprop")}, {"opt": "adam"}, seed,
                                 resample_probability=0.0)
        assert (change.op, new["opt"]) in {("shift left", "sgd"), ("shift right", "rmsprop")}


def test_callable_is_resampled_or_multiplied():
    calls = []

    def draw():
        calls.append(1)
        return 0.123

    new, (change,) = explore({"lr": draw}, {"lr": 0.5}, 0, resample_probability=1.0)
    assert (change.op, new["lr"], len(calls)) == ("resample", 0.123, 1)
    new, (change,) = explore({"lr": draw}, {"lr": 0.5}, 0, resample_probability=0.0, perturbation_factors=(0.8,))
    assert (change.op, new["lr"], len(calls)) == ("* 0.8", 0.4, 1)


def test_string_choice_cannot_be_multiplied():
    """Ray raises TypeError for "adam" * 1.2; pbtlab says what to do instead."""
    with pytest.raises(ConfigError, match=r"opt='adam'.*as a list"):
        explore({"opt": tune.choice(["sgd", "adam"])}, {"opt": "adam"}, 0, resample_probability=0.0)


def test_nested_dicts_are_explored_in_place():
    mutations = {"optim": {"lr": tune.uniform(0, 1), "momentum": [0.8, 0.9, 0.99]}, "wd": tune.uniform(0, 1)}
    config = {"optim": {"lr": 0.5, "momentum": 0.9, "name": "sgd"}, "wd": 0.1, "keep": [1, 2]}
    new, changes = explore(mutations, config, 0, resample_probability=0.0, perturbation_factors=(1.2,))
    assert [c.param for c in changes] == ["optim/lr", "optim/momentum", "wd"]
    assert new["optim"]["lr"] == pytest.approx(0.6) and new["wd"] == pytest.approx(0.12)
    assert new["optim"]["momentum"] in (0.8, 0.99)
    assert new["optim"]["name"] == "sgd" and new["keep"] == [1, 2]
    assert config == {"optim": {"lr": 0.5, "momentum": 0.9, "name": "sgd"}, "wd": 0.1, "keep": [1, 2]}
    assert new["keep"] is not config["keep"]  # deep copy


def test_custom_explore_fn_runs_after_the_builtin_ops():
    seen = []

    def custom(config):
        seen.append(dict(config))
        config["lr"] = min(config["lr"], 0.55)
        config["extra"] = True
        return config

    new, (change,) = explore({"lr": tune.uniform(0, 1)}, {"lr": 0.5}, 0, resample_probability=0.0,
                             perturbation_factors=(1.2,), custom_explore_fn=custom)
    assert seen[0]["lr"] == pytest.approx(0.6)  # it sees the built-in result
    assert new == {"lr": 0.55, "extra": True}
    assert (change.op, change.new) == ("* 1.2", pytest.approx(0.6))  # as Ray: ops do not reflect it


def test_custom_explore_fn_alone_is_enough():
    pbt = make_pbt(hyperparam_mutations={}, custom_explore_fn=lambda c: {**c, "lr": c["lr"] / 2})
    new, changes = pbt.explore(FakeTrial("t0", {"lr": 0.5}), None, {"lr": 0.5})
    assert new == {"lr": 0.25} and changes == ()


def test_custom_explore_fn_must_return_a_dict():
    with pytest.raises(ConfigError, match="custom_explore_fn must return the new config dict, got None"):
        explore({"lr": tune.uniform(0, 1)}, {"lr": 0.5}, custom_explore_fn=lambda c: None)


def test_one_decision_per_key():
    """Each hyperparameter gets its own draw: with p=0.5 both ops occur for each key over seeds."""
    combos = set()
    for seed in range(30):
        _, changes = explore({"a": tune.uniform(0, 1), "b": tune.uniform(0, 1)}, {"a": 0.5, "b": 0.5}, seed,
                             resample_probability=0.5)
        combos.add(tuple(c.op == "resample" for c in changes))
    assert combos == {(True, True), (True, False), (False, True), (False, False)}


# -- on_trial_add --------------------------------------------------------------------------------------------
def test_missing_hyperparameters_are_filled():
    pbt = make_pbt(hyperparam_mutations={"lr": tune.uniform(0.1, 0.2), "bs": [16, 32], "f": lambda: 7,
                                         "nested": {"m": [0.9]}})
    config = pbt.on_trial_add("t0", {"lr": 0.5, "x": 1}, "0")
    assert config["lr"] == 0.5 and config["x"] == 1  # given values are kept
    assert config["bs"] in (16, 32) and config["f"] == 7 and config["nested"] == {"m": 0.9}
    config = pbt.on_trial_add("t1", {"nested": {"other": 1}}, "1")
    assert config["nested"] == {"other": 1, "m": 0.9}  # nested keys too (Ray: only top-level)
    assert 0.1 <= config["lr"] < 0.2


# -- gates (reference 1.4) -----------------------------------------------------------------------------------
def test_perturbation_interval_gates_checks():
    pbt = make_pbt(synch=False)
    population = make_population(pbt, 2)
    for t in (1, 2, 3):
        for tid in population:
            d = report(pbt, population, tid, t, 1.0)
            assert d.action is Action.CONTINUE and not d.perturbations and not d.notes
    assert pbt.last_scores() == {"t0": None, "t1": None}
    report(pbt, population, "t0", 4, 2.0)
    assert pbt.last_scores() == {"t0": 2.0, "t1": None}
    # next check only once time - last_perturbation_time >= interval (not aligned to a grid)
    for t in (5, 6, 7):
        report(pbt, population, "t0", t, 99.0)
    assert pbt.last_scores()["t0"] == 2.0
    report(pbt, population, "t0", 8, 3.0)
    assert pbt.last_scores()["t0"] == 3.0


def test_checks_drift_with_uneven_time():
    pbt = make_pbt(synch=False, time_attr="time_total_s")
    population = make_population(pbt, 1)
    trial = population["t0"]
    checks = []
    for t in (1.5, 3.9, 4.1, 7.0, 8.0, 8.2):
        pbt.on_trial_result(trial, {"time_total_s": t, "score": t}, population)
        checks.append(pbt.last_scores()["t0"])
    assert checks == [None, None, 4.1, 4.1, 4.1, 8.2]


def test_burn_in_period():
    pbt = make_pbt(synch=False, burn_in_period=10)
    population = make_population(pbt, 2)
    for t in range(1, 10):
        for tid in population:
            report(pbt, population, tid, t, float(tid == "t1"))
    assert pbt.last_scores() == {"t0": None, "t1": None}
    report(pbt, population, "t1", 10, 1.0)
    d = report(pbt, population, "t0", 10, 0.0)
    assert pbt.last_scores() == {"t0": 0.0, "t1": 1.0}  # first checks at the end of burn-in
    assert [n.kind for n in d.notes] == ["exploit_skipped"]  # t1 was alone (not upper) at its check
    report(pbt, population, "t1", 14, 1.0)
    d = report(pbt, population, "t0", 14, 0.0)
    assert [(p.target, p.donor) for p in d.perturbations] == [("t0", "t1")]


def test_synch_burn_in_sets_the_first_barrier():
    pbt = make_pbt(synch=True, burn_in_period=10)
    population = make_population(pbt, 2)
    for t in range(1, 10):
        assert all(d.action is Action.CONTINUE for d in barrier(pbt, population, t, [0.0, 1.0]))
    decisions = barrier(pbt, population, 10, [0.0, 1.0])
    assert [(p.target, p.donor) for p in decisions[-1].perturbations] == [("t0", "t1")]
    assert pbt.state_dict()["next_perturbation_sync"] == 14


def test_require_attrs():
    pbt = make_pbt()
    population = make_population(pbt, 1)
    with pytest.raises(ConfigError, match=r"needs 'score' in every report, but trial t0 reported \['loss'\]"):
        pbt.on_trial_result(population["t0"], {"training_iteration": 4, "loss": 1.0, "time_total_s": 1.0},
                            population)
    lenient = make_pbt(require_attrs=False)
    population = make_population(lenient, 1)
    d = lenient.on_trial_result(population["t0"], {"training_iteration": 4, "loss": 1.0}, population)
    assert d.action is Action.CONTINUE and lenient.last_scores() == {"t0": None}


# -- synchronous barrier (reference 1.4 step 4b) ---------------------------------------------------------------
def test_synch_waits_for_every_live_trial_then_acts_on_all():
    pbt = make_pbt(synch=True, quantile_fraction=0.5)
    population = make_population(pbt, 4)
    first = [report(pbt, population, tid, 4, s) for tid, s in zip(["t0", "t1", "t2"], [3.0, 0.0, 2.0])]
    assert all(d.action is Action.PAUSE and not d.perturbations for d in first)
    assert pbt.num_checkpoints == 0
    last = report(pbt, population, "t3", 4, 1.0)
    assert last.action is Action.PAUSE
    assert sorted(p.target for p in last.perturbations) == ["t1", "t3"]
    assert all(p.donor in ("t0", "t2") for p in last.perturbations)
    assert pbt.state_dict()["next_perturbation_sync"] == 8
    for p in last.perturbations:
        # upper trials were checkpointed first, at this barrier: the clone gets the donor's newest checkpoint
        assert p.checkpoint == population[p.donor].checkpoint
        assert p.checkpoint.iteration == 4 and p.target_iteration == 4
        assert p.time_value == 4


def test_synch_upper_checkpointed_before_lower_exploits():
    """If lower exploited before upper checkpointed, the first barrier would find no donor checkpoint."""
    pbt = make_pbt(synch=True, quantile_fraction=0.5)
    population = make_population(pbt, 2)
    # the donor reports first (so the triggering trial is the loser), then the loser
    d = barrier(pbt, population, 4, [5.0, 1.0])[-1]
    assert not d.notes
    assert [(p.target, p.donor, p.checkpoint.path) for p in d.perturbations] == [("t1", "t0",
                                                                                  "t0/checkpoint_000004")]
    # next barrier, the winner's checkpoint moves to iteration 8
    d = barrier(pbt, population, 8, [5.0, 1.0])[-1]
    assert [p.checkpoint.path for p in d.perturbations] == ["t0/checkpoint_000008"]


def test_synch_ignores_finished_trials_and_completes_on_completion():
    pbt = make_pbt(synch=True)
    population = make_population(pbt, 3)
    report(pbt, population, "t0", 4, 1.0)
    report(pbt, population, "t1", 4, 0.0)
    # t2 is still behind; it finishes instead of reaching the barrier
    population["t2"].finished = True
    d = pbt.on_trial_complete("t2", population)
    assert [(p.target, p.donor) for p in d.perturbations] == [("t1", "t0")]
    # from now on the barrier involves only the two live trials
    assert report(pbt, population, "t0", 8, 1.0).perturbations == []
    assert [(p.target, p.donor) for p in report(pbt, population, "t1", 8, 0.0).perturbations] == [("t1", "t0")]


def test_synch_choose_trial_to_run_excludes_trials_at_the_barrier():
    pbt = make_pbt(synch=True)
    population = make_population(pbt, 3)
    report(pbt, population, "t0", 4, 1.0)
    candidates = list(population.values())
    assert pbt.choose_trials_to_run(candidates, 3) == ["t1", "t2"]
    assert pbt.choose_trials_to_run(candidates, 3, allow_any=True) == ["t1", "t2", "t0"]


def test_async_choose_least_advanced_first():
    pbt = make_pbt(synch=False)
    population = make_population(pbt, 3)
    report(pbt, population, "t0", 8, 1.0)
    report(pbt, population, "t1", 4, 1.0)
    assert pbt.choose_trial_to_run(list(population.values())) == "t2"
    assert pbt.choose_trials_to_run(list(population.values()), 3) == ["t2", "t1", "t0"]


# -- asynchronous mode (reference 1.4 step 4a) -----------------------------------------------------------------
def test_async_only_the_reporter_acts_with_stale_scores():
    pbt = make_pbt(synch=False, quantile_fraction=0.5)
    population = make_population(pbt, 2)
    d = report(pbt, population, "t0", 4, 5.0)
    assert d.action is Action.CONTINUE and not d.perturbations  # alone: no quantiles yet
    assert pbt.num_checkpoints == 0
    d = report(pbt, population, "t1", 4, 1.0)
    # t0 was not upper at its own check (it was alone), so it has no donor checkpoint: skip
    assert not d.perturbations
    assert [n.kind for n in d.notes] == ["exploit_skipped"]
    assert d.notes[0].message == "[pbt]: no checkpoint for trial t0. Skip exploit for Trial t1"
    assert d.notes[0].data == {"donor": "t0", "reason": "donor has no checkpoint"}
    assert d.action is Action.CONTINUE
    assert pbt.num_perturbations == 0
    d = report(pbt, population, "t0", 8, 6.0)  # now upper: records its checkpoint
    assert pbt.num_checkpoints == 1 and not d.perturbations
    d = report(pbt, population, "t1", 8, 2.0)
    assert [(p.target, p.donor, p.checkpoint.iteration) for p in d.perturbations] == [("t1", "t0", 8)]
    assert d.action is Action.PAUSE  # exploited: it must restart
    assert pbt.num_perturbations == 1


def test_async_pauses_when_others_wait():
    pbt = make_pbt(synch=False)
    population = make_population(pbt, 2)
    population["t1"].waiting = True
    assert report(pbt, population, "t0", 3, 1.0).action is Action.CONTINUE  # not a check
    assert report(pbt, population, "t0", 4, 1.0).action is Action.PAUSE  # a check: yield the slot


def test_async_donor_checkpoint_may_predate_its_score():
    """A donor whose latest checkpoint is older than its check is cloned from that checkpoint."""
    pbt = make_pbt(synch=False)
    population = make_population(pbt, 2)
    report(pbt, population, "t1", 4, 0.0)
    report(pbt, population, "t0", 4, 9.0)  # upper, checkpoint at 4
    report(pbt, population, "t0", 6, 9.0, checkpoint=False)
    report(pbt, population, "t0", 8, 9.0, checkpoint=False)  # upper again; its latest checkpoint is still 4
    d = report(pbt, population, "t1", 8, 0.0)
    (p,) = d.perturbations
    assert (p.donor, p.checkpoint.iteration, p.target_iteration) == ("t0", 4, 8)


def test_exploited_trial_inherits_the_donors_clocks():
    pbt = make_pbt(synch=False)
    population = make_population(pbt, 2)
    report(pbt, population, "t0", 4, 1.0)
    report(pbt, population, "t1", 4, 0.0)
    report(pbt, population, "t0", 12, 1.0)
    state = pbt.state_dict()["members"]
    assert state["t0"]["last_perturbation_time"] == 12
    report(pbt, population, "t1", 8, 0.0)  # exploits t0 (checked at 12)
    state = pbt.state_dict()["members"]
    assert state["t1"]["last_perturbation_time"] == 12 and state["t1"]["last_train_time"] == 12


# -- NaN and other unrankable scores ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, "oops", None])
def test_unrankable_score_is_never_a_donor(bad):
    pbt = make_pbt(synch=True)
    population = make_population(pbt, 2)
    decisions = barrier(pbt, population, 4, [bad, -100.0])
    notes = [n for d in decisions for n in d.notes]
    assert [(n.kind, n.trial_id) for n in notes] == [("unrankable_score", "t0")]
    assert "cannot be ranked" in notes[0].message and notes[0].data["metric"] == "score"
    # the NaN trial ranks below every finite score: it is replaced, never cloned
    assert [(p.target, p.donor) for p in decisions[-1].perturbations] == [("t0", "t1")]


def test_all_unrankable_means_no_exploit():
    pbt = make_pbt(synch=True)
    population = make_population(pbt, 2)
    decisions = barrier(pbt, population, 4, [math.nan, math.nan])
    assert not decisions[-1].perturbations
    assert pbt.num_checkpoints == 0 and pbt.num_perturbations == 0


def test_nan_never_donor_in_a_larger_population():
    for seed in range(10):
        pbt = make_pbt(seed=seed, synch=True, quantile_fraction=0.5)
        population = make_population(pbt, 4)
        d = barrier(pbt, population, 4, [math.nan, 1.0, math.nan, 2.0])[-1]
        assert {p.target for p in d.perturbations} == {"t0", "t2"}
        assert {p.donor for p in d.perturbations} <= {"t1", "t3"}


# -- donor without a checkpoint --------------------------------------------------------------------------------------
def test_donor_without_checkpoint_skips_exploit_and_explore():
    pbt = make_pbt(synch=True)
    population = make_population(pbt, 2)
    decisions = barrier(pbt, population, 4, [2.0, 1.0], checkpoint=False)
    d = decisions[-1]
    assert not d.perturbations
    assert [(n.kind, n.trial_id, n.message) for n in d.notes] == [
        ("exploit_skipped", "t1", "[pbt]: no checkpoint for trial t0. Skip exploit for Trial t1")]
    assert pbt.debug_string() == "PopulationBasedTraining: 1 checkpoints, 0 perturbs"


# -- exploit-only / explore-only ---------------------------------------------------------------------------------------
def test_explore_false_copies_the_donor_config():
    pbt = make_pbt(synch=True, explore=False)
    population = make_population(pbt, 2)
    population["t0"].config["lr"] = 0.9
    d = barrier(pbt, population, 4, [2.0, 1.0])[-1]
    (p,) = d.perturbations
    assert p.new_config == {"lr": 0.9} and p.changes == () and p.donor == "t0"
    assert p.old_config == {"lr": 0.5} and p.donor_config == {"lr": 0.9}


def test_exploit_false_perturbs_own_config_and_keeps_own_weights():
    pbt = make_pbt(synch=True, exploit=False, resample_probability=0.0, perturbation_factors=(0.8,))
    population = make_population(pbt, 2)
    population["t0"].config["lr"] = 0.9
    d = barrier(pbt, population, 4, [2.0, 1.0])[-1]
    (p,) = d.perturbations
    assert p.target == "t1" and p.donor is None and p.donor_score is None
    assert p.checkpoint == population["t1"].checkpoint  # its own
    assert p.new_config == {"lr": 0.4} and p.changes == (HyperparamChange("lr", 0.5, "* 0.8", 0.4),)


def test_exploit_false_without_own_checkpoint_skips():
    pbt = make_pbt(synch=True, exploit=False)
    population = make_population(pbt, 2)
    d = barrier(pbt, population, 4, [2.0, 1.0], checkpoint=False)[-1]
    assert not d.perturbations and [n.kind for n in d.notes] == ["exploit_skipped"]


# -- perturbation record ------------------------------------------------------------------------------------------------
def test_perturbation_record_fields():
    pbt = make_pbt(synch=True, hyperparam_mutations={"lr": tune.uniform(0, 1)}, resample_probability=0.0,
                   perturbation_factors=(1.2,))
    population = make_population(pbt, 2, {"lr": 0.5, "h": 1})
    population["t0"].config = {"lr": 0.25, "h": 2}
    d = barrier(pbt, population, 4, [3.0, 1.0])[-1]
    (p,) = d.perturbations
    assert p.target == "t1" and p.donor == "t0"
    assert p.target_score == 1.0 and p.donor_score == 3.0
    assert p.old_config == {"lr": 0.5, "h": 1}
    assert p.donor_config == {"lr": 0.25, "h": 2}
    assert p.new_config == {"lr": 0.3, "h": 2}  # the donor's whole config, explored
    assert p.changes == (HyperparamChange("lr", 0.25, "* 1.2", 0.3),)
    assert p.time_attr == "training_iteration" and p.time_value == 4.0
    # decisions do not alias scheduler state
    p.new_config["lr"] = -1
    assert population["t0"].config == {"lr": 0.25, "h": 2}


# -- state ------------------------------------------------------------------------------------------------------------
def test_state_dict_round_trip_through_json_continues_identically():
    a = make_pbt(seed=3, synch=True, quantile_fraction=0.5)
    pop_a = make_population(a, 4)
    barrier(a, pop_a, 4, [math.nan, 1.0, 2.0, 3.0])
    state = json.loads(json.dumps(a.state_dict()))

    b = make_pbt(seed=99, synch=True, quantile_fraction=0.5)
    pop_b = make_population(b, 4)
    b.load_state_dict(state)
    for tid in pop_a:
        pop_b[tid].config = dict(pop_a[tid].config)
    assert b.state_dict() == a.state_dict()
    assert b.debug_string() == a.debug_string() == "PopulationBasedTraining: 2 checkpoints, 2 perturbs"
    assert math.isnan(b.last_scores()["t0"])
    da = barrier(a, pop_a, 8, [0.5, 1.5, 2.5, 3.5])[-1]
    db = barrier(b, pop_b, 8, [0.5, 1.5, 2.5, 3.5])[-1]
    assert da.perturbations == db.perturbations
    assert a.state_dict() == b.state_dict()


def test_referenced_checkpoints_are_the_donor_candidates():
    pbt = make_pbt(synch=True)
    population = make_population(pbt, 2)
    barrier(pbt, population, 4, [2.0, 1.0])
    assert pbt.referenced_checkpoints() == {"t0/checkpoint_000004"}


def test_set_search_properties():
    pbt = PopulationBasedTraining(hyperparam_mutations={"lr": [1]}, metric="Q", mode="max")
    assert pbt.set_search_properties(None, None)
    assert pbt.set_search_properties("Q", "max")
    assert not pbt.set_search_properties("loss", None)
    assert not pbt.set_search_properties(None, "min")
    only_mode = PopulationBasedTraining(hyperparam_mutations={"lr": [1]})
    assert only_mode.set_search_properties(None, "min")
    assert (only_mode.metric, only_mode.mode) == ("_metric", "min")  # Ray's DEFAULT_METRIC


def test_defaults_are_rays():
    pbt = PopulationBasedTraining(hyperparam_mutations={"lr": [1]})
    assert (pbt.time_attr, pbt.metric, pbt.mode) == ("time_total_s", None, None)
    assert (pbt.perturbation_interval, pbt.burn_in_period) == (60.0, 0.0)
    assert (pbt.quantile_fraction, pbt.resample_probability) == (0.25, 0.25)
    assert pbt.perturbation_factors == (1.2, 0.8)
    assert (pbt.log_config, pbt.require_attrs, pbt.synch) == (True, True, False)
    assert (pbt.clip_to_domain, pbt.exploit_enabled, pbt.explore_enabled) == (False, True, True)


# -- log lines (reference 1.6, 1.8) --------------------------------------------------------------------------------------
def test_explore_summary_lines():
    changes = [HyperparamChange("lr", 0.05, "resample", 0.017), HyperparamChange("h0", 0.5, "* 1.2", 0.6),
               HyperparamChange("bs", 8, "shift right (noop)", 8), HyperparamChange("x", 1, "", 2)]
    assert summarize_changes(changes) == (
        "lr : 0.05 --- (resample) --> 0.017\n"
        "h0 : 0.5 --- (* 1.2) --> 0.6\n"
        "bs : 8 --- (shift right (noop)) --> 8\n"
        "x : 1 -----> 2")
    assert summarize_changes([]) == "No hyperparameters mutated."


def test_log_lines_of_a_run(tmp_path, caplog):
    import tutorial_code as tc

    caplog.set_level(logging.INFO, logger="pbtlab")
    results, _ = tc.run_pbt_2(seed=0, storage_path=str(tmp_path), verbose=2)
    messages = [r.getMessage() for r in caplog.records if r.name == "pbtlab"]
    exploit_lines = [m for m in messages if m.startswith("[PopulationBasedTraining] [Exploit]")]
    explore_lines = [m for m in messages if m.startswith("[PopulationBasedTraining] [Explore]")]
    assert len(exploit_lines) == len(explore_lines) == 24
    for line, e in zip(exploit_lines, results.events_of("exploit")):
        assert line == (f"[PopulationBasedTraining] [Exploit] Cloning trial {e['donor']} "
                        f"(score = {e['donor_score']:4f}) into trial {e['trial_id']} "
                        f"(score = {e['target_score']:4f})")
    first = results.events_of("explore")[0]
    expected = "".join(f"\n{c['param']} : {c['old']} --- ({c['op']}) --> {c['new']}" for c in first["changes"])
    # Ray's text, including its missing space before the trial id
    assert explore_lines[0] == (f"[PopulationBasedTraining] [Explore] Perturbed the hyperparameter config of "
                                f"trial{first['trial_id']}:{expected}\n")
    assert "lr : 0.05 --- (* 1.2) --> 0.06" in explore_lines[0]
