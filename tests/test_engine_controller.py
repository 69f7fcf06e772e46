"""The controller on its own, driven by the simulated executor (``executors/simulated.py``): no trainable runs.

The simulator logs every command the controller sends (``executor.sent``) with its virtual time, and raises
when the controller breaks the executor protocol (a second command while one is outstanding)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from pbtlab import tune
from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from pbtlab.errors import ConfigError
from pbtlab.executors.simulated import STATE_FILE, SimulatedExecutor
from pbtlab.schedulers import Action, Decision, FIFOScheduler, PopulationBasedTraining
from pbtlab.tuner import Tuner


def never_called(config):  # the simulated executor runs no trainable
    raise AssertionError("the simulated executor must not call the trainable")


def scores(score, checkpoint_every=1, concurrency=1, **options):
    """A simulator whose trials report ``score(config, iteration)``, 0.5 virtual seconds per iteration."""
    return SimulatedExecutor(lambda config, iteration, state: {"score": score(config, iteration)}, duration=0.5,
                             checkpoint_every=checkpoint_every, concurrency=concurrency, **options)


def commands(executor, trial_id):
    return [(c.trial_id, c.kind, c.checkpoint) for c in executor.sent if c.trial_id == trial_id]


def fit(executor, storage, *, scheduler=None, stop=None, param_space=None, name="run", trainable=never_called,
        tune_config_budget=None, **run):
    tuner = Tuner(trainable, param_space=param_space or {"x": tune.grid_search([0, 1])},
                  tune_config=TuneConfig(metric="score", mode="max", seed=0, scheduler=scheduler,
                                         time_budget_s=tune_config_budget),
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
    executor = scores(lambda config, it: float(it), concurrency=2)
    results = fit(executor, storage, stop={"training_iteration": 3})
    assert kinds(results) == ["experiment_start", "trial_add", "trial_add", "trial_start", "trial_start",
                              "trial_complete", "trial_complete", "experiment_end"]
    first, second = (r.trial_id for r in results)
    # Both started at once (2 slots), each continued until its third report, then stopped.
    assert commands(executor, first) == [
        (first, "start", None), (first, "continue", None), (first, "continue", None), (first, "stop", None)]
    assert [c.time for c in executor.sent if c.trial_id == second] == [0.0, 0.5, 1.0, 1.5]
    assert executor.now == 1.5
    rows = results[0].history()
    assert [r["training_iteration"] for r in rows] == [1, 2, 3]
    assert [r["done"] for r in rows] == [False, False, True]
    assert [r["checkpoint_dir_name"] for r in rows] == ["checkpoint_000000", "checkpoint_000001", "checkpoint_000002"]
    assert rows[0]["iterations_since_restore"] == 1 and rows[0]["restored_from"] is None
    assert [r["time_this_iter_s"] for r in rows] == [0.5, 0.5, 0.5]  # the simulator's 0.5 s per iteration
    assert [r["time_total_s"] for r in rows] == [0.5, 1.0, 1.5]
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    with open(os.path.join(results[0].path, rows[2]["checkpoint_dir_name"], STATE_FILE)) as handle:
        assert json.load(handle) == {"iteration": 3, "state": None}  # a checkpoint is the state at its iteration
    assert executor.is_shut_down


def test_pbt_exploit_restarts_the_target_from_the_donor_checkpoint(storage):
    # The state grows by 1 + x per iteration; trial x=1 scores higher, so trial x=0 clones it at the barrier
    # at iteration 2 and continues from its state (4.0). At iteration 4 the stop criterion ends both first.
    executor = SimulatedExecutor(lambda config, it, state: {"score": state}, initial_state=0.0,
                                 update=lambda config, it, state: state + 1 + config["x"], concurrency=2)
    results = fit(executor, storage, scheduler=pbt(), stop={"training_iteration": 4},
                  param_space={"lr": 0.1, "x": tune.grid_search([0, 1])})
    low, high = results[0].trial_id, results[1].trial_id
    exploits = results.events_of("exploit")
    assert [(e["trial_id"], e["donor"], e["target_iteration"], e["donor_iteration"]) for e in exploits] == [
        (low, high, 2, 2)]
    first = exploits[0]
    assert first["checkpoint"] == f"{high}/checkpoint_000001"
    # The controller told the target to restart from the donor's checkpoint directory, at the barrier.
    restarts = [c for c in executor.sent if (c.trial_id, c.kind) == (low, "restart")]
    assert [(c.time, c.checkpoint) for c in restarts] == [
        (2.0, os.path.join(results.experiment_path, high, "checkpoint_000001"))]
    assert [r["score"] for r in results[0].history()] == [1.0, 2.0, 6.0, 8.0]  # the donor's state, then x=1
    # Event order of one exploit, then the row that marks the break.
    seqs = [e["event"] for e in results.events if e["seq"] >= first["seq"]][:4]
    assert seqs == ["exploit", "explore", "trial_restore", "trial_start"]
    row = results[0].history()[2]
    assert row["restored_from"] == {"trial_id": high, "checkpoint": f"{high}/checkpoint_000001", "iteration": 2,
                                    "reason": "exploit"}
    assert row["training_iteration"] == 3 and row["iterations_since_restore"] == 1


def test_a_failure_is_retried_from_the_latest_checkpoint(storage):
    failed = set()

    def result(config, iteration, state):
        if config["x"] == 0 and iteration == 3 and not failed:
            failed.add(config["x"])
            raise RuntimeError("boom")
        return {"score": 1.0}

    executor = SimulatedExecutor(result, checkpoint_every=2, concurrency=1)
    results = fit(executor, storage, stop={"training_iteration": 4}, failure_config=FailureConfig(max_failures=1))
    (error,) = results.events_of("trial_error")
    assert error["will_retry"] and error["num_failures"] == 1 and error["iteration"] == 2
    assert (error["error_type"], error["message"]) == ("RuntimeError", "boom")
    first = results[0].trial_id
    checkpoint = os.path.join(results[0].path, "checkpoint_000000")
    assert commands(executor, first) == [(first, "start", None), (first, "continue", None),
                                         (first, "continue", None), (first, "restart", checkpoint),
                                         (first, "continue", None), (first, "stop", None)]
    rows = results[0].history()
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["restored_from"]["reason"] == "failure"
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]


def test_a_trial_that_keeps_failing_errors_and_the_run_ends(storage):
    def fails(config, iteration, state):
        raise ValueError("always")

    executor = SimulatedExecutor(fails, duration=2.0, concurrency=1)
    results = fit(executor, storage, failure_config=FailureConfig(max_failures=0))
    assert [r.status for r in results] == ["ERROR", "ERROR"]
    assert results.num_errors == 2
    assert [(c.time, c.kind) for c in executor.sent] == [(0.0, "start"), (2.0, "stop"), (2.0, "start"), (4.0, "stop")]
    assert kinds(results)[-1] == "experiment_end"


def test_retention_keeps_num_to_keep_but_never_a_pinned_donor(storage):
    executor = scores(lambda config, it: float(it) * (1 + config["x"]), concurrency=2)
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
    executor = scores(lambda config, it: 5.0)
    results = fit(executor, storage, scheduler=scheduler, stop={"training_iteration": 2})
    assert [r.config["x"] for r in results] == [0, 1]
    assert all(row["score"] == 5.0 and row["config"]["x"] in (0, 1) for r in results for row in r.history())
    assert len(scheduler.refused) == 2  # the second report of each trial met the stop criterion


def test_executor_setup_failure_leaves_a_run_that_can_be_restored(storage):
    class BrokenSetup(SimulatedExecutor):
        def setup(self, trainable, max_concurrent):
            raise OSError("no workers today")

    with pytest.raises(OSError, match="no workers today"):
        fit(BrokenSetup(lambda config, it, state: {"score": 1.0}), storage, stop={"training_iteration": 2})
    path = os.path.join(storage, "run")
    assert os.path.exists(os.path.join(path, "state.json"))
    assert Tuner.can_restore(path)
    executor = scores(lambda config, it: 1.0)
    results = Tuner.restore(path, never_called, run_config=RunConfig(executor=executor, verbose=0,
                                                                        stop={"training_iteration": 2})).fit()
    assert [len(r.history()) for r in results] == [2, 2]


def test_exploit_whose_donor_checkpoint_vanished_marks_the_restart_from_scratch(storage):
    """No own checkpoint to fall back on: the trial restarts from scratch, and its next row says so.

    The trials report no checkpoints; PBT asks each trial at the barrier for one (SAVE), and a callback
    deletes them all at the end of the step that decided the exploit, before the target restarts."""
    class DeleteCheckpoints(tune.Callback):
        def on_step_end(self, iteration, trials, **info):
            for trial in trials:
                for name in os.listdir(trial.path):
                    if name.startswith("checkpoint_"):
                        shutil.rmtree(os.path.join(trial.path, name))

    executor = scores(lambda config, it: float(it) * (1 + config["x"]), checkpoint_every=0, concurrency=2)
    results = fit(executor, storage, scheduler=pbt(), stop={"training_iteration": 3},
                  param_space={"lr": 0.1, "x": tune.grid_search([0, 1])}, trainable=executor.trainable,
                  callbacks=[DeleteCheckpoints()])
    low, high = results[0].trial_id, results[1].trial_id
    saved = results.events_of("checkpoint_saved")
    assert [(e["trial_id"], e["checkpoint"], e["iteration"], e["reason"]) for e in saved] == [
        (low, f"{low}/checkpoint_000000", 2, "scheduler"), (high, f"{high}/checkpoint_000000", 2, "scheduler")]
    missing = results.events_of("checkpoint_missing")
    assert missing and missing[0]["fallback"] is None and missing[0]["reason"] == "exploit"
    assert [c[1:] for c in commands(executor, low)] == [("start", None), ("continue", None), ("save", None),
                                                        ("restart", None), ("continue", None), ("continue", None),
                                                        ("stop", None)]  # from scratch: iterations 1 to 3 again
    row = results[0].history()[2]
    assert row["restored_from"] == {"trial_id": None, "checkpoint": None, "iteration": 0, "reason": "exploit"}
    assert row["training_iteration"] == 1


def test_resume_counts_the_rows_it_dropped(storage):
    executor = scores(lambda config, it: 1.0)
    results = fit(executor, storage, stop={"training_iteration": 2})
    path = results.experiment_path
    with open(os.path.join(path, results[0].trial_id, "result.jsonl"), "a") as handle:
        handle.write('{"training_iteration": 3}\n{"training_iteration": 4}\n{"half')
    again = Tuner.restore(path, never_called, run_config=RunConfig(executor=scores(lambda config, it: 1.0),
                                                                   verbose=0, stop={"training_iteration": 2})).fit()
    (resume,) = again.events_of("experiment_resume")
    assert resume["dropped_rows"] == {results[0].trial_id: 3, results[1].trial_id: 0}


def test_time_budget_counts_the_time_spent_before_a_resume(storage):
    executor = scores(lambda config, it: 1.0)
    results = fit(executor, storage, stop={"training_iteration": 2})
    state_file = os.path.join(results.experiment_path, "state.json")
    with open(state_file) as handle:
        state = json.load(handle)
    assert state["elapsed_s"] == 2.0  # one slot: 2 trials x 2 iterations x 0.5 virtual seconds
    for trial in state["trials"]:
        trial["status"] = "PAUSED"
    state["elapsed_s"] = 1e6  # as if the run had already used its budget
    with open(state_file, "w") as handle:
        json.dump(state, handle)
    again = Tuner.restore(
        results.experiment_path, never_called,
        tune_config=TuneConfig(metric="score", mode="max", seed=0, time_budget_s=10.0),
        run_config=RunConfig(executor=scores(lambda config, it: 1.0), verbose=0,
                             stop={"training_iteration": 5})).fit()
    reasons = [e["reason"] for e in again.events_of("trial_complete")]
    assert reasons[-2:] == ["time_budget", "time_budget"]
    # Virtual time ran past the budget (poll) before the first new report was due: no new row.
    assert [len(r.history()) for r in again] == [2, 2]


class DrawsOnce(FIFOScheduler):
    """Records the first number its generator gives (schedulers without generator state in state_dict)."""

    draws: list[float] = []

    def set_rng(self, rng):
        super().set_rng(rng)
        DrawsOnce.draws.append(float(rng.random()))


def test_resume_gives_the_scheduler_the_stream_a_fresh_run_uses(storage):
    DrawsOnce.draws = []
    executor = scores(lambda config, it: 1.0)
    results = fit(executor, storage, scheduler=DrawsOnce(), stop={"training_iteration": 2})
    Tuner.restore(results.experiment_path, never_called, run_config=RunConfig(
        executor=scores(lambda config, it: 1.0), verbose=0,
        stop={"training_iteration": 2})).fit()
    assert len(DrawsOnce.draws) == 2 and DrawsOnce.draws[0] == DrawsOnce.draws[1]
    assert DrawsOnce.draws[0] != float(np.random.default_rng(0).random())


def test_a_class_trainable_is_refused_with_a_clear_error():
    class MyTrainable:
        def step(self):
            return {}

    with pytest.raises(ConfigError, match=r"got the class .*MyTrainable.*tune.Trainable"):
        Tuner(MyTrainable)


def test_a_run_ended_mid_iteration_asks_no_running_trial_to_save(storage):
    """checkpoint_at_end saves a trial that waits at a report; one inside an iteration (its command outstanding)
    is stopped without a SAVE, which the protocol forbids (the simulator would raise)."""
    executor = SimulatedExecutor(lambda config, it, state: {"score": float(it)}, duration=3.0, checkpoint_every=0)
    results = fit(executor, storage, trainable=executor.trainable, tune_config_budget=10.0,
                  checkpoint_config=CheckpointConfig(checkpoint_at_end=True))
    assert [e["reason"] for e in results.events_of("trial_complete")] == ["time_budget", "time_budget"]
    assert results.events_of("checkpoint_saved") == []
    assert [len(r.history()) for r in results] == [3, 3]
    assert [(c.time, c.kind) for c in executor.sent][-2:] == [(pytest.approx(10.01), "stop")] * 2
