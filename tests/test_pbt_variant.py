"""Two PBT variants written as a user would, on public names only, run end to end through ``Tuner`` with the
toy trainable (seeded), with their decisions asserted exactly:

- ``CopyTheBest``: an exploit strategy object; the bottom quantile copies the single best trial.
- ``RandomRestartPBT``: a subclass whose explore, now and then, draws a whole new config instead of
  perturbing the donor's (PBT with random restarts of the hyperparameters); it learns from every check
  through the public ``on_check`` hook, and is recorded and resumed as itself.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from test_scheduler_privacy import private_uses

from pbtlab import tune
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.errors import ConfigError
from pbtlab.examples.toy import train_func
from pbtlab.schedulers import ExploitStrategy, HyperparamChange, PopulationBasedTraining, Standings
from pbtlab.tuner import Tuner

MUTATIONS = {"h0": tune.uniform(0.0, 1.0), "h1": tune.uniform(0.0, 1.0)}


class CopyTheBest(ExploitStrategy):
    """A trial in the bottom quantile copies the best trial of the population."""

    name = "copy_the_best"

    def choose_donor(self, trial_id: str, standings: Standings, rng: np.random.Generator) -> str | None:
        if trial_id not in standings.lower or not standings.upper:
            return None
        return standings.upper[-1]  # the upper quantile is sorted worst first


class RandomRestartPBT(PopulationBasedTraining):
    """PBT whose explore draws every hyperparameter afresh with ``restart_probability``."""

    def __init__(self, restart_probability: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.restart_probability = restart_probability
        self.checks: list[tuple[str, float, float]] = []

    def on_check(self, trial, time_value, score):
        self.checks.append((trial.trial_id, time_value, score))

    def explore(self, target, donor, config):
        if self.rng.random() >= self.restart_probability:
            return super().explore(target, donor, config)
        new = dict(config)
        changes = []
        for name, domain in self.hyperparam_mutations.items():
            new[name] = domain.sample(self.rng)
            changes.append(HyperparamChange(name, config[name], "random restart", new[name]))
        return new, changes

    def describe(self):
        return {**super().describe(), "restart_probability": self.restart_probability}

    @classmethod
    def from_description(cls, description):
        rebuilt = PopulationBasedTraining.from_description(description)
        return cls(restart_probability=description["restart_probability"], **{
            name: getattr(rebuilt, name) for name in (
                "time_attr", "metric", "mode", "perturbation_interval", "quantile_fraction", "synch",
                "hyperparam_mutations", "resample_probability")})


def run(storage: str, scheduler: PopulationBasedTraining, name: str = "run", stop: Any = None) -> Any:
    return Tuner(train_func, param_space={"lr": 0.05, "h0": tune.grid_search([0.0, 1.0, 0.3, 0.7]),
                                          "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
                                          "checkpoint_interval": 4},
                 tune_config=TuneConfig(metric="Q", mode="max", seed=7, scheduler=scheduler),
                 run_config=RunConfig(storage_path=storage, name=name, verbose=0,
                                      stop=stop or {"training_iteration": 16}, state_save_period_s=0)).fit()


def short(trial_id: str) -> str:
    """``00003`` for ``902ba_00003``: the trial's index, without the run's prefix."""
    return trial_id.rsplit("_", 1)[-1]


def exploits(results: Any) -> list[tuple[str, str, int]]:
    return [(short(e["trial_id"]), short(e["donor"]), e["target_iteration"]) for e in results.events_of("exploit")]


def best_at(results: Any, iteration: int) -> str:
    """The trial with the highest Q at ``iteration``, from the result rows (not from the scheduler)."""
    scores = {}
    for result in results:
        for row in result.history():
            if row["training_iteration"] == iteration:
                scores[short(result.trial_id)] = row["Q"]
    return max(scores, key=scores.__getitem__)


def test_this_file_uses_no_private_name():
    with open(__file__, encoding="utf-8") as handle:
        assert private_uses(handle.read(), os.path.basename(__file__)) == []


def test_copy_the_best_runs_through_tuner_and_copies_only_the_best(storage):
    strategy = CopyTheBest()
    results = run(storage, PopulationBasedTraining(
        time_attr="training_iteration", perturbation_interval=4, quantile_fraction=0.5, resample_probability=0.0,
        hyperparam_mutations=MUTATIONS, synch=True, exploit=strategy))
    assert exploits(results) == [
        ("00001", "00000", 4), ("00003", "00000", 4),
        ("00000", "00002", 8), ("00001", "00002", 8),
        ("00003", "00001", 12), ("00000", "00001", 12),
    ]
    for target, donor, iteration in exploits(results):
        assert donor == best_at(results, iteration)
    for event in results.events_of("exploit"):
        assert event["donor_score"] >= event["target_score"]
    assert results.events[0]["scheduler"]["exploit_strategy"] == "copy_the_best"
    assert [[c["op"] for c in e["changes"]] for e in results.events_of("explore")] == [
        ["* 1.2", "* 1.2"], ["* 1.2", "* 1.2"], ["* 1.2", "* 0.8"], ["* 1.2", "* 1.2"], ["* 0.8", "* 0.8"],
        ["* 0.8", "* 0.8"]]


def test_random_restart_pbt_runs_through_tuner_with_exact_decisions(storage):
    scheduler = RandomRestartPBT(
        restart_probability=0.3, time_attr="training_iteration", perturbation_interval=4, quantile_fraction=0.25,
        hyperparam_mutations=MUTATIONS, synch=True)
    results = run(storage, scheduler)
    explores = [(short(e["trial_id"]), short(e["donor"]), e["target_iteration"], [c["op"] for c in e["changes"]])
                for e in results.events_of("explore")]
    assert explores == [  # Ray's explore (resample_probability=0.25 draws a resample, then a perturbation), then a restart
        ("00001", "00000", 4, ["resample", "resample"]),
        ("00001", "00002", 8, ["* 1.2", "* 0.8"]),
        ("00000", "00002", 12, ["random restart", "random restart"]),
    ]
    restarted = results.events_of("explore")[2]
    assert restarted["new_config"]["h0"] == restarted["changes"][0]["new"]
    # on_check saw every check: 4 trials x barriers at 4, 8, 12 (16 ends the run before a check), with the
    # scores the exploits record
    assert [(short(tid), t) for tid, t, _ in scheduler.checks] == [
        (tid, float(t)) for t in (4, 8, 12) for tid in ("00000", "00001", "00002", "00003")]
    checked = {(tid, t): score for tid, t, score in scheduler.checks}
    for event in results.events_of("exploit"):
        assert event["donor_score"] == checked[(event["donor"], float(event["target_iteration"]))]
    recorded = results.events[0]["scheduler"]
    assert (recorded["type"], recorded["restart_probability"]) == ("RandomRestartPBT", 0.3)


def test_random_restart_pbt_resumes_as_itself(storage):
    """Interrupted at iteration 10, the run resumes from experiment.json alone and decides as the reference."""
    def interrupt(trial_id, result):
        if result["training_iteration"] == 10:
            raise KeyboardInterrupt
        return result["training_iteration"] >= 16

    def scheduler():
        return RandomRestartPBT(restart_probability=0.3, time_attr="training_iteration", perturbation_interval=4,
                                quantile_fraction=0.25, hyperparam_mutations=MUTATIONS, synch=True)

    with pytest.raises(KeyboardInterrupt):
        run(storage, scheduler(), name="interrupted", stop=interrupt)
    resumed = Tuner.restore(os.path.join(storage, "interrupted"), train_func,
                            run_config=RunConfig(verbose=0, stop={"training_iteration": 16})).fit()
    reference = run(storage, scheduler(), name="reference")
    keep = ("trial_id", "donor", "target_iteration", "new_config", "changes")
    decisions = [[{k: e.get(k) for k in keep} for e in r.events if e["event"] in ("exploit", "explore")]
                 for r in (resumed, reference)]
    assert decisions[0] == decisions[1] and len(decisions[0]) == 6


def test_a_run_with_a_strategy_object_of_its_own_needs_its_scheduler_to_resume(storage):
    def interrupt(trial_id, result):
        if result["training_iteration"] == 6:
            raise KeyboardInterrupt
        return False

    def scheduler():
        return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=4, quantile_fraction=0.5,
                                       hyperparam_mutations=MUTATIONS, synch=True, exploit=CopyTheBest())

    with pytest.raises(KeyboardInterrupt):
        run(storage, scheduler(), name="own", stop=interrupt)
    path = os.path.join(storage, "own")
    with pytest.raises(ConfigError, match=r"exploit_strategy='copy_the_best' \(an object of its own\).*pass the same"):
        Tuner.restore(path, train_func, run_config=RunConfig(verbose=0)).fit()
    resumed = Tuner.restore(path, train_func, tune_config=TuneConfig(scheduler=scheduler()),
                            run_config=RunConfig(verbose=0, stop={"training_iteration": 12})).fit()
    reference = run(storage, scheduler(), name="reference", stop={"training_iteration": 12})
    assert exploits(resumed) == exploits(reference) == [
        ("00001", "00000", 4), ("00003", "00000", 4), ("00001", "00003", 8), ("00000", "00003", 8)]
    assert max(r.metrics["training_iteration"] for r in resumed) == 12
