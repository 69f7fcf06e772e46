"""The controller on its own, driven by a scripted fake executor (``engine_fakes.py``): no trainable runs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from engine_fakes import FakeExecutor, counting_script

from pbtlab import tune
from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from pbtlab.errors import ConfigError
from pbtlab.schedulers import Action, Decision, FIFOScheduler, PopulationBasedTraining
from pbtlab.tuner import Tuner


def never_called(config):  # the fake executor runs no trainable
    raise AssertionError("the fake executor must not call the trainable")


def fit(executor, storage, *, scheduler=None, stop=None, param_space=None, name="run", **run):
    tuner = Tuner(never_called, param_space=param_space or {"x": tune.grid_search([0, 1])},
                  tune_config=TuneConfig(metric="score", mode="max", seed=0, scheduler=scheduler),
                  run_config=RunConfig(storage_path=storage, name=name, verbose=0, executor=executor,
                                       stop=stop, **run))
    return tuner.fit()


def kinds(results):
    return [e["event"] for e in results.events]


def pbt(**overrides):
    settings = dict(time_attr="training_iteration", perturbation_interval=2, quantile_fraction=0.5,
                    resample_probability=0.0, hyperparam_mutations={"lr": [0.1, 0.2, 0.3]}, synch=True)
    settings.update(overrides)
    return PopulationBasedTraining(**settings)


def test_fifo_run_records_every_step_and_stops_at_the_criterion(storage):
    executor = FakeExecutor(counting_script(lambda tid, it: float(it)), concurrency=2)
    results = fit(executor, storage, stop={"training_iteration": 3})
    assert kinds(results) == ["experiment_start", "trial_add", "trial_add", "trial_start", "trial_start",
                              "trial_complete", "trial_complete", "experiment_end"]
    first, second = (r.trial_id for r in results)
    # Both started at once (2 slots), each continued until its third report, then stopped.
    assert [entry for entry in executor.log if entry[0] == first] == [
        (first, "start", None), (first, "continue", None), (first, "continue", None), (first, "stop", None)]
    rows = results[0].history()
    assert [r["training_iteration"] for r in rows] == [1, 2, 3]
    assert [r["done"] for r in rows] == [False, False, True]
    assert [r["checkpoint_dir_name"] for r in rows] == ["checkpoint_000000", "checkpoint_000001", "checkpoint_000002"]
    assert rows[0]["iterations_since_restore"] == 1 and rows[0]["restored_from"] is None
    assert rows[2]["time_total_s"] == pytest.approx(1.5)  # the fake reports 0.5 s per iteration
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    assert executor.shut_down


def test_pbt_exploit_restarts_the_target_from_the_donor_checkpoint(storage):
    # Trial index 1 scores higher, so trial 0 clones it at the barrier at iteration 2.
    executor = FakeExecutor(counting_script(lambda tid, it: float(it) * (1 + int(tid[-1]))), concurrency=2)
    results = fit(executor, storage, scheduler=pbt(), stop={"training_iteration": 4}, param_space={"lr": 0.1, "x": tune.grid_search([0, 1])})
    low, high = results[0].trial_id, results[1].trial_id
    exploits = results.events_of("exploit")
    assert [(e["trial_id"], e["donor"], e["target_iteration"], e["donor_iteration"]) for e in exploits] == [
        (low, high, 2, 2), (low, high, 4, 4)][:len(exploits)]
    first = exploits[0]
    assert first["checkpoint"] == f"{high}/checkpoint_000001"
    # The controller told the target to restart from the donor's checkpoint directory.
    restarts = [e for e in executor.log if e[:2] == (low, "restart")]
    assert restarts[0][2] == os.path.join(results.experiment_path, high, "checkpoint_000001")
    # Event order of one exploit, then the row that marks the break.
    seqs = [e["event"] for e in results.events if e["seq"] >= first["seq"]][:4]
    assert seqs == ["exploit", "explore", "trial_restore", "trial_start"]
    row = results[0].history()[2]
    assert row["restored_from"] == {"trial_id": high, "checkpoint": f"{high}/checkpoint_000001", "iteration": 2,
                                    "reason": "exploit"}
    assert row["training_iteration"] == 3 and row["iterations_since_restore"] == 1


def test_a_failure_is_retried_from_the_latest_checkpoint(storage):
    failed = set()

    def script(tid, start, n):
        iteration = start + n + 1
        if tid.endswith("0") and iteration == 3 and tid not in failed:
            failed.add(tid)
            return ("error", "boom")
        return ("report", {"score": 1.0}, iteration % 2 == 0)

    executor = FakeExecutor(script)
    results = fit(executor, storage, stop={"training_iteration": 4}, failure_config=FailureConfig(max_failures=1))
    (error,) = results.events_of("trial_error")
    assert error["will_retry"] and error["num_failures"] == 1 and error["iteration"] == 2
    rows = results[0].history()
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["restored_from"]["reason"] == "failure"
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]


def test_a_trial_that_keeps_failing_errors_and_the_run_ends(storage):
    executor = FakeExecutor(lambda tid, start, n: ("error", "always"))
    results = fit(executor, storage, failure_config=FailureConfig(max_failures=0))
    assert [r.status for r in results] == ["ERROR", "ERROR"]
    assert results.num_errors == 2
    assert kinds(results)[-1] == "experiment_end"


def test_retention_keeps_num_to_keep_but_never_a_pinned_donor(storage):
    executor = FakeExecutor(counting_script(lambda tid, it: float(it) * (1 + int(tid[-1]))), concurrency=2)
    results = fit(executor, storage, scheduler=pbt(perturbation_interval=3), stop={"training_iteration": 6},
                  param_space={"lr": 0.1, "x": tune.grid_search([0, 1])}, checkpoint_config=CheckpointConfig(num_to_keep=1))
    deleted = {e["checkpoint"] for e in results.events_of("checkpoint_deleted")}
    assert deleted  # retention did delete
    for exploit in results.events_of("exploit"):
        assert exploit["checkpoint"] not in deleted or any(
            d["seq"] > exploit["seq"] for d in results.events_of("checkpoint_deleted")
            if d["checkpoint"] == exploit["checkpoint"])
    on_disk = {f"{r.trial_id}/{d}" for r in results for d in os.listdir(r.path) if d.startswith("checkpoint_")}
    assert not (on_disk & deleted)


class Meddler(FIFOScheduler):
    """A scheduler that tries to change what it is shown."""

    def __init__(self):
        self.refused = []

    def on_trial_result(self, trial, result, population):
        trial.config["x"] = 99  # a copy: must not reach the trial
        try:
            result["score"] = -1.0  # type: ignore[index]
        except TypeError as error:
            self.refused.append(str(error))
        population[trial.trial_id].config["x"] = 98
        return Decision(Action.CONTINUE)


def test_schedulers_cannot_change_the_trial_or_the_recorded_result(storage):
    scheduler = Meddler()
    executor = FakeExecutor(counting_script(lambda tid, it: 5.0))
    results = fit(executor, storage, scheduler=scheduler, stop={"training_iteration": 2})
    assert [r.config["x"] for r in results] == [0, 1]
    assert all(row["score"] == 5.0 and row["config"]["x"] in (0, 1) for r in results for row in r.history())
    assert len(scheduler.refused) == 2  # the second report of each trial met the stop criterion


def test_executor_setup_failure_leaves_a_run_that_can_be_restored(storage):
    class BrokenSetup(FakeExecutor):
        def setup(self, trainable, max_concurrent):
            raise OSError("no workers today")

    with pytest.raises(OSError, match="no workers today"):
        fit(BrokenSetup(counting_script(lambda tid, it: 1.0)), storage, stop={"training_iteration": 2})
    path = os.path.join(storage, "run")
    assert os.path.exists(os.path.join(path, "state.json"))
    assert Tuner.can_restore(path)
    executor = FakeExecutor(counting_script(lambda tid, it: 1.0))
    results = Tuner.restore(path, never_called, run_config=RunConfig(executor=executor, verbose=0,
                                                                        stop={"training_iteration": 2})).fit()
    assert [len(r.history()) for r in results] == [2, 2]


def test_exploit_whose_donor_checkpoint_vanished_marks_the_restart_from_scratch(storage):
    """No own checkpoint to fall back on: the trial restarts from scratch, and its next row says so."""
    def script(tid, start, n):
        iteration = start + n + 1
        donor = tid.endswith("1")
        return ("report", {"score": float(iteration) * (2 if donor else 1)}, donor)

    class Vanishing(FakeExecutor):
        def send(self, trial_id, command):
            if command.spec is not None and command.spec.checkpoint_path is None:
                self.log.append((trial_id, "from-scratch", None))
            super().send(trial_id, command)

    executor = Vanishing(script, concurrency=2)
    scheduler = pbt()
    original = scheduler._checkpoint_or_exploit

    def delete_donor_checkpoints(trial_id, population, upper, lower, decision):
        original(trial_id, population, upper, lower, decision)
        for p in decision.perturbations:
            import shutil
            shutil.rmtree(os.path.join(storage, "run", p.checkpoint.path))

    scheduler._checkpoint_or_exploit = delete_donor_checkpoints
    results = fit(executor, storage, scheduler=scheduler, stop={"training_iteration": 3}, param_space={"lr": 0.1, "x": tune.grid_search([0, 1])})
    missing = results.events_of("checkpoint_missing")
    assert missing and missing[0]["fallback"] is None and missing[0]["reason"] == "exploit"
    row = results[0].history()[2]
    assert row["restored_from"] == {"trial_id": None, "checkpoint": None, "iteration": 0, "reason": "exploit"}
    assert row["training_iteration"] == 1


def test_resume_counts_the_rows_it_dropped(storage):
    executor = FakeExecutor(counting_script(lambda tid, it: 1.0))
    results = fit(executor, storage, stop={"training_iteration": 2})
    path = results.experiment_path
    with open(os.path.join(path, results[0].trial_id, "result.jsonl"), "a") as handle:
        handle.write('{"training_iteration": 3}\n{"training_iteration": 4}\n{"half')
    again = Tuner.restore(path, never_called, run_config=RunConfig(executor=FakeExecutor(
        counting_script(lambda tid, it: 1.0)), verbose=0, stop={"training_iteration": 2})).fit()
    (resume,) = again.events_of("experiment_resume")
    assert resume["dropped_rows"] == {results[0].trial_id: 3, results[1].trial_id: 0}


def test_time_budget_counts_the_time_spent_before_a_resume(storage):
    executor = FakeExecutor(counting_script(lambda tid, it: 1.0))
    results = fit(executor, storage, stop={"training_iteration": 2})
    state_file = os.path.join(results.experiment_path, "state.json")
    with open(state_file) as handle:
        state = json.load(handle)
    assert state["elapsed_s"] >= 0
    for trial in state["trials"]:
        trial["status"] = "PAUSED"
    state["elapsed_s"] = 1e6  # as if the run had already used its budget
    with open(state_file, "w") as handle:
        json.dump(state, handle)
    again = Tuner.restore(
        results.experiment_path, never_called,
        tune_config=TuneConfig(metric="score", mode="max", seed=0, time_budget_s=10.0),
        run_config=RunConfig(executor=FakeExecutor(counting_script(lambda tid, it: 1.0)), verbose=0,
                             stop={"training_iteration": 5})).fit()
    reasons = [e["reason"] for e in again.events_of("trial_complete")]
    assert reasons[-2:] == ["time_budget", "time_budget"]


class DrawsOnce(FIFOScheduler):
    """Records the first number its generator gives (schedulers without generator state in state_dict)."""

    draws: list[float] = []

    def set_rng(self, rng):
        super().set_rng(rng)
        DrawsOnce.draws.append(float(rng.random()))


def test_resume_gives_the_scheduler_the_stream_a_fresh_run_uses(storage):
    DrawsOnce.draws = []
    executor = FakeExecutor(counting_script(lambda tid, it: 1.0))
    results = fit(executor, storage, scheduler=DrawsOnce(), stop={"training_iteration": 2})
    Tuner.restore(results.experiment_path, never_called, run_config=RunConfig(
        executor=FakeExecutor(counting_script(lambda tid, it: 1.0)), verbose=0,
        stop={"training_iteration": 2})).fit()
    assert len(DrawsOnce.draws) == 2 and DrawsOnce.draws[0] == DrawsOnce.draws[1]
    assert DrawsOnce.draws[0] != float(np.random.default_rng(0).random())


def test_a_class_trainable_is_refused_with_a_clear_error():
    class MyTrainable:
        def step(self):
            return {}

    with pytest.raises(ConfigError, match=r"got the class .*MyTrainable.*tune.Trainable"):
        Tuner(MyTrainable)
