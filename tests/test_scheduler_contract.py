"""The scheduler contract: a subclass that overrides only ``explore()`` runs, is recorded, and resumes as itself."""

from __future__ import annotations

import json
import os

from pbtlab import tune
from pbtlab.checkpoint import Checkpoint
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.engine.build import scheduler_from_description
from pbtlab.examples.toy import train_func
from pbtlab.schedulers import HyperparamChange, PopulationBasedTraining
from pbtlab.tuner import Tuner


class HalvingPBT(PopulationBasedTraining):
    """Explores by halving the donor's learning rate, and says who asked."""

    def explore(self, target, donor, config):
        new = dict(config, lr=config["lr"] / 2)
        return new, [HyperparamChange("lr", config["lr"], f"halve for {target.trial_id} from {donor.trial_id}",
                                      new["lr"])]


def halving_scheduler():
    return HalvingPBT(time_attr="training_iteration", perturbation_interval=4, quantile_fraction=0.5,
                      hyperparam_mutations={"lr": tune.uniform(0.001, 0.1)}, synch=True)


def run(storage, stop, name="run"):
    return Tuner(train_func, param_space={"lr": 0.08, "h0": tune.grid_search([0.0, 1.0]),
                                          "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
                                          "checkpoint_interval": 4},
                 tune_config=TuneConfig(metric="Q", mode="max", seed=3, scheduler=halving_scheduler()),
                 run_config=RunConfig(storage_path=storage, name=name, verbose=0, stop=stop,
                                      state_save_period_s=0)).fit()


def decisions(results):
    keep = ("trial_id", "donor", "target_iteration", "changes", "new_config", "donor_iteration")
    return [{k: e.get(k) for k in keep} for e in results.events if e["event"] in ("exploit", "explore")]


def test_subclass_overriding_explore_runs_and_is_recorded_as_itself(storage):
    results = run(storage, {"training_iteration": 12})
    explores = results.events_of("explore")
    assert explores and all(len(e["changes"]) == 1 for e in explores)
    first = explores[0]
    assert first["changes"][0]["op"] == f"halve for {first['trial_id']} from {first['donor']}"
    assert first["new_config"]["lr"] == first["changes"][0]["old"] / 2
    with open(os.path.join(results.experiment_path, "experiment.json")) as handle:
        recorded = json.load(handle)["scheduler"]
    assert recorded["type"] == "HalvingPBT"
    assert recorded["class"] == "test_scheduler_contract:HalvingPBT"
    assert type(scheduler_from_description(recorded)) is HalvingPBT


def test_subclass_resumes_as_itself_without_being_passed_again(storage):
    """The driver dies (Ctrl-C) at iteration 10; the resumed run rebuilds a HalvingPBT from experiment.json."""
    def interrupt(trial_id, result):
        if result["training_iteration"] == 10:
            raise KeyboardInterrupt
        return result["training_iteration"] >= 16

    try:
        run(storage, interrupt)
    except KeyboardInterrupt:
        pass
    path = os.path.join(storage, "run")
    resumed = Tuner.restore(path, train_func, run_config=RunConfig(verbose=0, stop={"training_iteration": 16})).fit()
    assert [e["event"] for e in resumed.events].count("experiment_resume") == 1
    reference = run(storage, {"training_iteration": 16}, name="reference")
    assert len(decisions(reference)) == 6  # barriers at 4, 8, 12 (16 stops first) x (exploit + explore)
    assert decisions(resumed) == decisions(reference)
    assert [r.config for r in resumed] == [r.config for r in reference]


def test_checkpoints_that_are_equal_hash_alike(tmp_path):
    a = Checkpoint(str(tmp_path / "ckpt"))
    b = Checkpoint(str(tmp_path / "x" / ".." / "ckpt"))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1


def test_qrandn_is_recorded_as_qrandn():
    assert repr(tune.qrandn(0.0, 1.0, 0.5)) == "tune.qrandn(0.0, 1.0, 0.5)"
    assert repr(tune.randn(0.0, 1.0)) == "tune.randn(0.0, 1.0)"
