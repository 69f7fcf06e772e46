"""PBT's strategies as objects: the string options map onto them and decide identically; objects of one's own
(an exploit strategy, a bounds policy) plug in; bad objects are clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from run_files import read_jsonl, strip_wall_clock
from test_pbt import FakeTrial, make_pbt, make_population, report

from pbtlab import tune
from pbtlab.errors import ConfigError
from pbtlab.examples.runs import run_toy_pbt, toy_scheduler
from pbtlab.schedulers import HyperparamChange, PopulationBasedTraining
from pbtlab.schedulers.explore import perturb_config
from pbtlab.schedulers.strategies import (
    BinaryTournament,
    Clip,
    ExploitStrategy,
    ExploreStrategy,
    Perturb,
    PerturbBounds,
    Reflect,
    Resample,
    Truncation,
    TTest,
    exploit_strategy,
    explore_strategy,
)


@pytest.mark.parametrize("strings, objects", [
    ({}, {"exploit": Truncation(), "explore": Perturb()}),
    ({"exploit": "binary_tournament", "explore": "resample"}, {"exploit": BinaryTournament(), "explore": Resample()}),
    ({"exploit": "ttest", "ttest_window": 4, "ttest_significance": 0.1}, {"exploit": TTest(window=4, significance=0.1)}),
    ({"perturb_bounds": "reflect"}, {"perturb_bounds": Reflect()}),
    ({"perturb_bounds": "clip"}, {"perturb_bounds": Clip()}),
    ({"clip_to_domain": True}, {"perturb_bounds": Clip()}),
])
def test_strings_and_objects_are_the_same_scheduler(strings, objects):
    by_name, by_object = make_pbt(**strings), make_pbt(**objects)
    assert by_name.describe() == by_object.describe()
    for attribute in ("exploit_strategy", "explore_strategy", "perturb_bounds", "clip_to_domain", "ttest_window"):
        assert getattr(by_name, attribute) == getattr(by_object, attribute)


def test_a_seeded_run_decides_the_same_with_strings_and_with_objects(tmp_path):
    runs = []
    for name, options in (("strings", {"exploit": "ttest", "ttest_window": 3, "perturb_bounds": "reflect"}),
                          ("objects", {"exploit": TTest(window=3), "perturb_bounds": Reflect()})):
        results = run_toy_pbt(population=4, seed=2, iterations=24, storage_path=str(tmp_path), name=name,
                              scheduler=toy_scheduler(**options))
        events = strip_wall_clock(read_jsonl(tmp_path / name / "events.jsonl"))
        runs.append([json.loads(json.dumps(e).replace(name, "RUN")) for e in events])
        assert [r.metrics["training_iteration"] for r in results] == [24] * 4
    assert runs[0] == runs[1]
    assert sum(e["event"] == "exploit" for e in runs[0]) == 4


def test_the_names_map_onto_the_objects():
    assert (exploit_strategy(True), exploit_strategy("truncation"), exploit_strategy(False)) == (Truncation(),
                                                                                                 Truncation(), None)
    assert exploit_strategy("ttest", ttest_window=3, ttest_significance=0.2) == TTest(window=3, significance=0.2)
    assert (explore_strategy(True), explore_strategy("resample"), explore_strategy(False)) == (Perturb(), Resample(),
                                                                                               None)
    assert TTest(window=3).score_window == 3 and Truncation().score_window == 0


@pytest.mark.parametrize("make, message", [
    (lambda: TTest(window=1), r"TTest\(window\) must be an int >= 2 .*got 1 \(int\)"),
    (lambda: TTest(significance=0.0), r"TTest\(significance\) must be in \(0, 1\], got 0.0 \(float\)"),
    (lambda: make_pbt(exploit=TTest(), ttest_window=5), "ttest_window and ttest_significance go with exploit='ttest'"),
    (lambda: make_pbt(exploit=3), r"exploit must be True, False or one of .*got 3 \(or pass an ExploitStrategy"),
    (lambda: make_pbt(perturb_bounds=Reflect(), clip_to_domain=True), "contradict each other"),
])
def test_bad_strategy_objects_are_clear_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


class Self(ExploitStrategy):
    """A broken strategy: names the trial itself as its donor."""

    name = "self"

    def choose_donor(self, trial_id, standings, rng):
        return trial_id if trial_id in standings.lower else None


def test_a_strategy_that_names_no_other_trial_is_an_error():
    pbt = make_pbt(exploit=Self())
    population = make_population(pbt, 2)
    report(pbt, population, "t0", 4, 1.0)
    with pytest.raises(ConfigError, match=r"Self.choose_donor\('t1'\) returned 't1': it must name another trial"):
        report(pbt, population, "t1", 4, 0.0)


class Wrap(PerturbBounds):
    """A bounds policy of one's own: an overshoot wraps around to the other end."""

    name = "wrap"

    def before_rounding(self, domain, value):
        if domain.lower <= value <= domain.upper:
            return value, None
        return domain.lower + (value - domain.lower) % (domain.upper - domain.lower), "wrapped"


def test_a_bounds_policy_of_ones_own_is_applied_and_recorded():
    config, changes = perturb_config({"x": 0.9}, {"x": tune.uniform(0.0, 1.0)}, np.random.default_rng(0),
                                     resample_probability=0.0, perturbation_factors=(1.5,), bounds=Wrap())
    assert (round(config["x"], 6), changes[0].op) == (0.35, "* 1.5 (wrapped)")
    pbt = make_pbt(perturb_bounds=Wrap(), resample_probability=0.0, perturbation_factors=(1.5,))
    assert pbt.describe()["perturb_bounds"] == "wrap"
    new, explored = pbt.explore(FakeTrial("t", {"lr": 0.9}), None, {"lr": 0.9})
    assert (round(new["lr"], 6), explored[0].op) == (0.35, "* 1.5 (wrapped)")
    with pytest.raises(ConfigError, match=r"perturb_bounds='wrap' \(an object of its own\)"):
        PopulationBasedTraining.from_description(pbt.describe())


class Halve(ExploreStrategy):
    """An explore strategy of one's own (no ``name``: recorded by its class name): halve every mutated value."""

    def explore(self, config, mutations, rng, *, resample_probability, perturbation_factors, bounds,
                custom_explore_fn):
        new = {**config, **{key: config[key] / 2 for key in mutations}}
        return new, tuple(HyperparamChange(key, config[key], "halve", new[key]) for key in mutations)


class CopyFirst(ExploitStrategy):
    """No ``name`` either: the bottom quantile copies the top quantile's worst member."""

    def choose_donor(self, trial_id, standings, rng):
        return standings.upper[0] if trial_id in standings.lower else None


def test_strategies_of_ones_own_without_a_name_are_recorded_by_class_and_decide():
    pbt = make_pbt(explore=Halve(), exploit=CopyFirst(), quantile_fraction=0.5)
    assert (pbt.describe()["exploit_strategy"], pbt.describe()["explore_strategy"]) == ("CopyFirst", "Halve")
    population = make_population(pbt, 4, {"lr": 0.8})
    decisions = [report(pbt, population, f"t{i}", 4, float(i)) for i in range(4)]
    # async checks with rising scores: each reporter is the best so far, never in the lower quantile
    assert [p for d in decisions for p in d.perturbations] == []
    # t0 checks again, now the worst: lower [t0, t1], upper [t2, t3]; it copies the upper quantile's worst, t2
    worse = report(pbt, population, "t0", 8, -1.0)
    assert [(p.target, p.donor, p.new_config, [c.op for c in p.changes]) for p in worse.perturbations] == [
        ("t0", "t2", {"lr": 0.4}, ["halve"])]
