"""CheckpointConfig: num_to_keep by recency or by score, Result.best_checkpoints; pinning still wins."""

from __future__ import annotations

import os

import pytest

from pbtlab import tune
from pbtlab.config import CheckpointConfig, RunConfig, TuneConfig
from pbtlab.errors import ConfigError
from pbtlab.executors.simulated import SimulatedExecutor
from pbtlab.tuner import Tuner

SCORES = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]  # the score reported at iterations 1..6, each with a checkpoint


def never_called(config):
    raise AssertionError("not run")


def run(storage, **checkpoint):
    executor = SimulatedExecutor(lambda config, iteration, state: {"score": SCORES[iteration - 1]})

    return Tuner(never_called, param_space={"x": 1},
                 tune_config=TuneConfig(metric="score", mode="max", seed=0),
                 run_config=RunConfig(storage_path=storage, name="run", verbose=0, executor=executor,
                                      stop={"training_iteration": 6},
                                      checkpoint_config=CheckpointConfig(**checkpoint))).fit()


def kept(result):
    return [int(os.path.basename(c.path)[-6:]) for c, _ in result.best_checkpoints]


def on_disk(result):
    return sorted(int(n[-6:]) for n in os.listdir(result.path) if n.startswith("checkpoint_"))


def test_num_to_keep_keeps_the_most_recent_by_default(storage):
    (result,) = run(storage, num_to_keep=2)
    assert kept(result) == [4, 5] == on_disk(result)


@pytest.mark.parametrize(("order", "listed", "disk"), [("max", [4, 2], [2, 4, 5]), ("min", [5, 1], [1, 5])])
def test_num_to_keep_by_score_lists_the_best_and_keeps_the_latest_too(storage, order, listed, disk):
    # checkpoint_00000k was taken at iteration k+1, with score SCORES[k]. As Ray 2.x does (measured with the
    # installed Ray on the same scores): best_checkpoints lists exactly num_to_keep, worst first, and the
    # latest checkpoint stays on disk in addition while it is the latest.
    (result,) = run(storage, num_to_keep=2, checkpoint_score_attribute="score", checkpoint_score_order=order)
    assert kept(result) == listed
    assert on_disk(result) == disk
    for checkpoint, metrics in result.best_checkpoints:
        assert metrics["score"] == SCORES[int(os.path.basename(checkpoint.path)[-6:])]
        assert metrics["checkpoint_dir_name"] == os.path.basename(checkpoint.path)


def test_checkpoint_config_arguments_are_checked():
    with pytest.raises(ConfigError, match=r"checkpoint_score_order=...\) must be 'max' or 'min', got 'best'"):
        CheckpointConfig(checkpoint_score_order="best")
    with pytest.raises(ConfigError, match=r"checkpoint_frequency"):
        CheckpointConfig(checkpoint_frequency=-1)
    with pytest.raises(ConfigError, match=r"checkpoint_score_attribute"):
        CheckpointConfig(checkpoint_score_attribute=3)
    assert tune.CheckpointConfig is CheckpointConfig


def test_num_to_keep_in_a_large_population_looks_at_the_pins_once_per_state_save(storage, monkeypatch):
    """Retention prunes the trials over num_to_keep just before each state save, against one set of pins: one
    pass over the population per save, not one per checkpoint and per restart (quadratic in the population).
    The same checkpoints are deleted, and state.json names no checkpoint that is gone."""
    import json

    from pbtlab.engine.controller import Controller
    from pbtlab.engine.retention import Retention
    from pbtlab.schedulers import PopulationBasedTraining

    calls = {"pinned": 0, "save_state": 0}
    pinned, save_state = Retention.pinned, Controller.save_state

    def counting_pinned(self, trials):
        calls["pinned"] += 1
        return pinned(self, trials)

    def counting_save_state(self, durable=False):
        calls["save_state"] += 1
        return save_state(self, durable)

    monkeypatch.setattr(Retention, "pinned", counting_pinned)
    monkeypatch.setattr(Controller, "save_state", counting_save_state)
    executor = SimulatedExecutor(lambda config, iteration, state: {"score": iteration * config["x"]})
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2, synch=True,
                                  hyperparam_mutations={"x": tune.uniform(0.5, 2.0)})
    results = Tuner(never_called, param_space={"x": tune.uniform(0.5, 2.0)},
                    tune_config=TuneConfig(metric="score", mode="max", seed=0, num_samples=32, scheduler=pbt),
                    run_config=RunConfig(storage_path=storage, name="run", verbose=0, executor=executor,
                                         stop={"training_iteration": 12},
                                         checkpoint_config=CheckpointConfig(num_to_keep=2))).fit()
    checkpoints = 32 * 12
    assert len(results.events_of("exploit")) > 0
    assert 0 < calls["pinned"] <= calls["save_state"] + 1 < checkpoints // 4
    # the same checkpoints go as when every checkpoint and restart pruned at once (measured before the change):
    # the 8 donors of the last exploit keep the checkpoint PBT may still hand out as well
    assert len(results.events_of("checkpoint_deleted")) == 312
    assert sorted(len(on_disk(result)) for result in results) == [2] * 24 + [3] * 8
    assert all(result.checkpoint.path.endswith("checkpoint_000011") for result in results)
    with open(os.path.join(results.experiment_path, "state.json"), encoding="utf-8") as handle:
        state = json.load(handle)
    for trial in state["trials"]:
        for ref in trial["checkpoints"]:
            assert os.path.isdir(os.path.join(results.experiment_path, ref["path"])), ref


def test_the_tutorials_run_takes_a_checkpoint_config(storage):
    """``run_toy_pbt(checkpoint_config=...)`` (bench/scaling.py --num-to-keep) passes it to the run."""
    from pbtlab.examples.runs import run_toy_pbt

    results = run_toy_pbt(population=2, iterations=12, storage_path=storage, name="toy",
                          checkpoint_config=CheckpointConfig(num_to_keep=1))
    assert len(results.events_of("checkpoint_deleted")) > 0
    assert all(1 <= len(on_disk(result)) <= 2 for result in results)
    everything = run_toy_pbt(population=2, iterations=12, storage_path=storage, name="toy_all")
    assert [len(on_disk(result)) for result in everything] == [3, 3]  # a checkpoint every 4 of 12 iterations
