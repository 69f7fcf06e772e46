"""The PBT paper's strategies as PopulationBasedTraining options: exact seeded decisions, records, errors.

Exploit: truncation (Ray's, the default), binary tournament, t-test selection; explore: perturb (default) or
resample; perturbed values kept in their domain by clipping or reflection (in log space for log domains).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from test_pbt import FakeTrial, make_pbt, make_population, report

from pbtlab import tune
from pbtlab.errors import ConfigError
from pbtlab.examples.runs import run_toy_pbt, toy_scheduler
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.schedulers.explore import perturb_config, reflect_into
from pbtlab.schedulers.pbt import welch_t_test


# -- binary tournament -------------------------------------------------------------------------------------
def test_binary_tournament_copies_the_one_random_other_member_only_if_it_is_better():
    pbt = make_pbt(seed=0, exploit="binary_tournament", resample_probability=0.0)
    population = make_population(pbt, 3)
    assert not report(pbt, population, "t0", 4, 1.0).perturbations  # nobody else has a score yet
    assert not report(pbt, population, "t1", 4, 5.0).perturbations  # drew t0 (the only other): worse
    replica = np.random.default_rng(0)
    assert int(replica.integers(1)) == 0
    drawn = ["t0", "t1"][int(replica.integers(2))]
    decision = report(pbt, population, "t2", 4, 3.0)
    assert drawn == "t1"  # the seed's draw; t1 (5.0) beats t2 (3.0), so t2 copies it
    (p,) = decision.perturbations
    assert (p.target, p.donor, p.donor_score, p.target_score) == ("t2", "t1", 5.0, 3.0)
    assert p.checkpoint.path == "t1/checkpoint_000004"
    assert [c.op for c in p.changes] == ["* 0.8"] and p.new_config["lr"] == 0.4
    # the best member never copies: whoever it draws is worse
    for t in (8, 12, 16):
        assert not report(pbt, population, "t1", t, 9.0).perturbations


def test_binary_tournament_decisions_are_seeded():
    def run(seed):
        pbt = make_pbt(seed=seed, exploit="binary_tournament")
        population = make_population(pbt, 4)
        out = []
        for t in (4, 8, 12):
            for i, tid in enumerate(population):
                for p in report(pbt, population, tid, t, float((i * 7 + t) % 5)).perturbations:
                    out.append((t, p.target, p.donor, p.new_config["lr"]))
        return out
    assert run(1) == run(1) and run(1) != run(2)
    assert all(target != donor for _, target, donor, _ in run(1))


# -- t-test selection --------------------------------------------------------------------------------------
def feed(pbt, population, tid, scores, start=1):
    """One report per iteration; returns the decisions."""
    return [report(pbt, population, tid, start + i, s) for i, s in enumerate(scores)]


def test_ttest_copies_only_a_significantly_better_member_over_the_last_window():
    pbt = make_pbt(seed=0, exploit="ttest", ttest_window=4, perturbation_interval=4, resample_probability=0.0)
    population = make_population(pbt, 2)
    feed(pbt, population, "t1", [9.0, 10.0, 11.0, 10.0])  # t1 checks at 4: t0 has no score yet
    decisions = feed(pbt, population, "t0", [1.0, 2.0, 1.5, 2.5])
    (p,) = decisions[-1].perturbations
    assert (p.target, p.donor) == ("t0", "t1")
    assert pbt._members["t0"].recent_scores == []  # new weights: the window starts again
    assert pbt._members["t1"].recent_scores == [9.0, 10.0, 11.0, 10.0]


def test_ttest_does_not_copy_when_the_difference_is_not_significant():
    pbt = make_pbt(seed=0, exploit="ttest", ttest_window=4, perturbation_interval=4)
    population = make_population(pbt, 2)
    feed(pbt, population, "t1", [1.0, 5.0, 2.0, 4.0])  # mean 3.0
    decisions = feed(pbt, population, "t0", [0.0, 4.5, 1.0, 4.0])  # mean 2.375, p ~ 0.77
    assert welch_t_test([1.0, 5.0, 2.0, 4.0], [0.0, 4.5, 1.0, 4.0]) > 0.05
    assert not any(d.perturbations for d in decisions)


def test_ttest_window_keeps_only_the_last_reports_and_min_mode_flips_signs():
    pbt = make_pbt(seed=0, exploit="ttest", ttest_window=3, perturbation_interval=100, mode="min")
    population = make_population(pbt, 1)
    feed(pbt, population, "t0", [5.0, 4.0, 3.0, 2.0, 1.0])
    assert pbt._members["t0"].recent_scores == [-3.0, -2.0, -1.0]
    state = json.loads(json.dumps(pbt.state_dict()))
    rebuilt = PopulationBasedTraining.from_description(pbt.describe())
    rebuilt.load_state_dict(state)
    assert rebuilt._members["t0"].recent_scores == [-3.0, -2.0, -1.0]


def test_welch_t_test_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n, m in ((10, 10), (3, 7), (2, 2)):
        a, b = rng.normal(0, 1, n), rng.normal(0.7, 2, m)
        assert welch_t_test(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert welch_t_test([1.0, 1.0], [1.0, 1.0]) == 1.0 and welch_t_test([1.0, 1.0], [2.0, 2.0]) == 0.0


# -- explore: resample, bounds -----------------------------------------------------------------------------
def test_resample_always_resamples_from_the_mutation():
    pbt = make_pbt(seed=3, explore="resample", hyperparam_mutations={"lr": tune.uniform(0.0, 1.0), "n": [1, 2, 3]})
    new, changes = pbt.explore(FakeTrial("t0", {"lr": 0.5, "n": 2}), None, {"lr": 0.5, "n": 2})
    assert [c.op for c in changes] == ["resample", "resample"]
    replica = np.random.default_rng(3)
    replica.random()
    lr = float(replica.uniform(0.0, 1.0))
    replica.random()
    assert new == {"lr": lr, "n": [1, 2, 3][int(replica.integers(3))]}


@pytest.mark.parametrize("domain, old, factor, expected", [
    (tune.uniform(0.0, 1.0), 0.9, 1.2, 0.92),                # 1.08 mirrors to 0.92
    (tune.loguniform(1e-4, 1e-1), 0.1, 1.2, 0.1 / 1.2),      # log space: 0.12 -> 0.1^2 / 0.12
    (tune.loguniform(1e-4, 1e-1), 1.1e-4, 0.8, 1e-4 ** 2 / 0.88e-4),
    (tune.randint(0, 10), 8, 1.2, 8),                        # 9.6 is past 9 (the highest): 8.4, rounded
    (tune.qrandint(0, 10, 2), 10, 1.2, 8),                   # 12 mirrors to 8, on the q-grid
    (tune.uniform(0.0, 1.0), 0.5, 1.2, 0.6),                 # inside: unchanged
])
def test_reflect_mirrors_off_the_bound(domain, old, factor, expected):
    new, (change,) = perturb_config({"x": old}, {"x": domain}, np.random.default_rng(0), resample_probability=0.0,
                                    perturbation_factors=(factor,), bounds="reflect")
    assert new["x"] == pytest.approx(expected)
    inside = reflect_into(domain, old * factor) == old * factor
    assert change.op == f"* {factor}" + ("" if inside else " (reflected)")


def test_clip_and_clip_to_domain_are_the_same_option():
    a = make_pbt(seed=0, perturb_bounds="clip", resample_probability=0.0, perturbation_factors=(1.2,))
    b = make_pbt(seed=0, clip_to_domain=True, resample_probability=0.0, perturbation_factors=(1.2,))
    config = {"lr": 0.95}
    assert a.explore(FakeTrial("t", config), None, config) == b.explore(FakeTrial("t", config), None, config)
    assert a.explore(FakeTrial("t", config), None, config)[0]["lr"] == 1.0
    assert a.describe() == b.describe()


# -- validation, describe, resume --------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"exploit": "tournament"}, "exploit must be True, False or one of 'truncation', 'binary_tournament', 'ttest'"),
    ({"explore": "mutate"}, "explore must be True, False or one of 'perturb', 'resample'; got 'mutate'"),
    ({"perturb_bounds": "wrap"}, "perturb_bounds must be None, 'clip' or 'reflect', got 'wrap'"),
    ({"perturb_bounds": "reflect", "clip_to_domain": True}, "contradict each other"),
    ({"exploit": "ttest", "ttest_window": 1}, "ttest_window must be an int >= 2"),
    ({"exploit": "ttest", "ttest_significance": 0}, r"ttest_significance must be in \(0"),
])
def test_bad_strategy_options_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_pbt(**kwargs)


def test_defaults_describe_themselves_as_before():
    description = make_pbt().describe()
    assert not {"exploit_strategy", "explore_strategy", "perturb_bounds", "ttest_window"} & set(description)
    assert description["exploit"] is True and description["explore"] is True


@pytest.mark.parametrize("kwargs", [
    {"exploit": "binary_tournament"}, {"exploit": "ttest", "ttest_window": 5, "ttest_significance": 0.01},
    {"explore": "resample", "perturb_bounds": "reflect"}, {"exploit": False, "perturb_bounds": "clip"},
    {"explore": False, "exploit": "ttest"},
])
def test_options_survive_describe_and_from_description(kwargs):
    pbt = make_pbt(**kwargs)
    description = json.loads(json.dumps(pbt.describe()))
    rebuilt = PopulationBasedTraining.from_description(description)
    assert rebuilt.describe() == pbt.describe()
    for attribute in ("exploit_strategy", "explore_strategy", "perturb_bounds", "ttest_window", "ttest_significance"):
        assert getattr(rebuilt, attribute) == getattr(pbt, attribute)


def test_a_tuner_run_with_binary_tournament_records_its_choices(tmp_path):
    results = run_toy_pbt(population=4, seed=0, iterations=20, storage_path=str(tmp_path), name="tournament",
                          scheduler=toy_scheduler(exploit="binary_tournament", perturb_bounds="reflect"))
    with open(os.path.join(results.experiment_path, "events.jsonl")) as f:
        events = [json.loads(line) for line in f]
    assert events[0]["scheduler"]["exploit_strategy"] == "binary_tournament"
    exploits = [e for e in events if e["event"] == "exploit"]
    assert exploits and all(e["donor_score"] > e["target_score"] for e in exploits)
    for event in events:
        if event["event"] == "explore":
            for change in event["changes"]:
                if change["param"] in ("h0", "h1") and change["op"] != "resample":
                    assert 0.0 <= change["new"] <= 1.0  # reflected inside uniform(0, 1)
    assert all(math.isfinite(r.metrics["Q"]) for r in results)
