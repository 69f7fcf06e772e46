"""Tuner.restore's flags, with Ray's meanings: resume_unfinished, resume_errored, restart_errored."""

from __future__ import annotations

import os

import pytest

from pbtlab import tune
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.errors import ConfigError
from pbtlab.executors.simulated import SimulatedExecutor
from pbtlab.tuner import Tuner


def never_called(config):
    raise AssertionError("not run")


def simulator(fail):
    """Trials report their iteration, with a checkpoint each time; with ``fail``, trial x=0 fails at iteration 3."""
    def result(config, iteration, state):
        if fail and config["x"] == 0 and iteration == 3:
            raise RuntimeError("boom")
        return {"score": float(iteration)}
    return SimulatedExecutor(result)


class InterruptTrialOne(tune.Callback):
    def on_trial_result(self, iteration, trials, trial, result, **info):
        if str(trial).endswith("1") and result["training_iteration"] == 2:
            raise KeyboardInterrupt


def interrupted_run(storage):
    """Trial 0 errored at iteration 3 (checkpoint at 2); the driver stopped while trial 1 was at 2."""
    with pytest.raises(KeyboardInterrupt):
        Tuner(never_called, param_space={"x": tune.grid_search([0, 1])},
              tune_config=TuneConfig(metric="score", mode="max", seed=0, max_concurrent_trials=1),
              run_config=RunConfig(storage_path=storage, name="run", verbose=0, executor=simulator(True),
                                   stop={"training_iteration": 4}, callbacks=[InterruptTrialOne()])).fit()
    return os.path.join(storage, "run")


def restore(path, **flags):
    return Tuner.restore(path, never_called, run_config=RunConfig(
        verbose=0, stop={"training_iteration": 4}, executor=simulator(False)), **flags).fit()


def iterations(result):
    return [r["training_iteration"] for r in result.history()]


def test_default_continues_unfinished_trials_and_leaves_errored_ones(storage):
    results = restore(interrupted_run(storage))
    assert [r.status for r in results] == ["ERROR", "TERMINATED"]
    assert iterations(results[1]) == [1, 2, 3, 4]
    assert iterations(results[0]) == [1, 2]


def test_resume_errored_continues_from_the_latest_checkpoint(storage):
    results = restore(interrupted_run(storage), resume_errored=True)
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    assert iterations(results[0]) == [1, 2, 3, 4]
    assert results[0].history()[2]["restored_from"]["checkpoint"].endswith("checkpoint_000001")


def test_restart_errored_starts_them_from_scratch(storage):
    results = restore(interrupted_run(storage), restart_errored=True)
    assert iterations(results[0]) == [1, 2, 1, 2, 3, 4]
    assert results[0].history()[2]["restored_from"] == {"trial_id": None, "checkpoint": None, "iteration": 0,
                                                        "reason": "resume"}
    assert results[0].status == "TERMINATED"


def test_resume_unfinished_false_ends_them_as_terminated(storage):
    results = restore(interrupted_run(storage), resume_unfinished=False)
    assert [r.status for r in results] == ["ERROR", "TERMINATED"]
    assert iterations(results[1]) == [1, 2]
    (complete,) = [e for e in results.events_of("trial_complete") if e["reason"] == "not_resumed"]
    assert complete["trial_id"] == results[1].trial_id and complete["iteration"] == 2


def test_flags_are_checked(storage):
    path = interrupted_run(storage)
    with pytest.raises(ConfigError, match=r"Tuner.restore\(resume_errored=...\) must be True or False, got 'yes'"):
        Tuner.restore(path, never_called, resume_errored="yes")
    assert Tuner.can_restore(path) and not Tuner.can_restore(os.path.join(storage, "nothing"))
