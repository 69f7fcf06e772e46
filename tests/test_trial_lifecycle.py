"""Edges of a trial's life that used to go wrong: STOP before a trial's first turn, SAVE to a trial in the
middle of an iteration, forkserver workers, the order and copy of callbacks, a None score in the log."""

from __future__ import annotations

import threading

import pytest

from pbtlab import tune
from pbtlab.config import FailureConfig, RunConfig, TuneConfig
from pbtlab.errors import TrialError
from pbtlab.executors.inprocess import InProcessExecutor
from pbtlab.executors.threads import EXITED, ThreadWorker
from pbtlab.session import STOP, StartSpec
from pbtlab.tuner import Tuner


def trial_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pbtlab-trial-") and t.is_alive()]


# -- STOP before a trial's first turn (in-process) ------------------------------------------------------------


def test_stop_before_the_first_turn_ends_the_thread_without_running_the_function(tmp_path):
    calls = []

    def trainable(config):
        calls.append(config)
        tune.report({"score": 1.0})

    worker = ThreadWorker(trainable, StartSpec("t0", {}, str(tmp_path), None, 0))
    assert worker.step(STOP) is EXITED
    worker._thread.join(timeout=10)
    assert not worker._thread.is_alive()
    assert calls == []


def test_in_process_stop_of_a_started_trial_that_never_ran_leaves_no_thread(tmp_path):
    calls = []

    def trainable(config):
        calls.append(config["x"])
        tune.report({"score": 1.0})

    executor = InProcessExecutor()
    executor.setup(trainable, 2)
    for trial_id in ("a", "b"):
        executor.start(StartSpec(trial_id, {"x": trial_id}, str(tmp_path), None, 0))
    executor.send("b", STOP)  # b never had its turn
    assert executor.wait()[0] == "a"
    executor.shutdown()
    for thread in threading.enumerate():
        if thread.name in ("pbtlab-trial-a", "pbtlab-trial-b"):
            thread.join(timeout=10)
    assert calls == ["a"]
    assert not [t for t in trial_threads() if t.name in ("pbtlab-trial-a", "pbtlab-trial-b")]


def fails_at_once_or_reports(config):
    if config["x"] == 0:
        raise RuntimeError("broken trial")
    for step in range(3):
        tune.report({"score": float(step)})


def test_fail_fast_in_the_first_round_leaves_no_trial_thread_behind(storage):
    before = set(trial_threads())
    with pytest.raises(TrialError, match="broken trial"):
        Tuner(fails_at_once_or_reports, param_space={"x": tune.grid_search([0, 1, 2])},
              tune_config=TuneConfig(metric="score", mode="max", seed=0),
              run_config=RunConfig(storage_path=storage, name="run", verbose=0,
                                   failure_config=FailureConfig(fail_fast=True))).fit()
    left = [t for t in trial_threads() if t not in before]
    for thread in left:
        thread.join(timeout=10)
    assert [t.name for t in left if t.is_alive()] == []


# -- forkserver workers wait as long as the driver needs ---------------------------------------------------------


def three_reports(config):
    for step in range(3):
        tune.report({"score": float(step)})


class SlowDriver:
    """A callback that keeps the driver busy for longer than a worker's 2 s liveness check, once."""

    def __init__(self):
        self.slept = False

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not self.slept:
            import time

            self.slept = True
            time.sleep(2.5)


@pytest.mark.slow
def test_a_forkserver_worker_waits_for_a_busy_driver(storage):
    from pbtlab.executors.process import ProcessExecutor

    results = Tuner(three_reports, tune_config=TuneConfig(metric="score", mode="max", seed=0),
                    run_config=RunConfig(storage_path=storage, name="run", verbose=0, callbacks=[SlowDriver()],
                                         executor=ProcessExecutor(start_method="forkserver"))).fit()
    assert results.events_of("trial_error") == []
    assert [r.status for r in results] == ["TERMINATED"]
    assert [row["score"] for row in results[0].history()] == [0.0, 1.0, 2.0]


# -- callbacks: after the scheduler's decision, with a copy of the result ---------------------------------------

from pbtlab.callbacks import Callback  # noqa: E402
from pbtlab.executors.simulated import SimulatedExecutor  # noqa: E402
from pbtlab.schedulers import Action, Decision, FIFOScheduler  # noqa: E402
from pbtlab.schedulers.base import HyperparamChange, Perturbation, TrialScheduler  # noqa: E402


def never_called(config):
    raise AssertionError("the simulated executor runs no trainable")


def counting(**options):
    """A simulator whose trials report their iteration as the score (no trainable runs)."""
    return SimulatedExecutor(lambda config, iteration, state: {"score": float(iteration)}, **options)


class RecordingScheduler(FIFOScheduler):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def on_trial_result(self, trial, result, population):
        self.log.append(("scheduler", trial.trial_id, result["training_iteration"], result["score"]))
        return Decision(Action.CONTINUE)


class Meddler(Callback):
    def __init__(self, log):
        self.log = log

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.log.append(("callback", trial.trial_id, result["training_iteration"], result["score"]))
        result["score"] = -1000.0  # a callback that changes its result changes nothing else
        result["meddled"] = True


def test_callbacks_see_a_result_after_the_scheduler_decided_and_get_their_own_copy(storage):
    log = []
    results = Tuner(never_called, param_space={"x": 1},
                    tune_config=TuneConfig(metric="score", mode="max", seed=0, scheduler=RecordingScheduler(log)),
                    run_config=RunConfig(storage_path=storage, name="run", verbose=0, callbacks=[Meddler(log)],
                                         stop={"training_iteration": 3},
                                         executor=counting())).fit()
    trial_id = results[0].trial_id
    assert log == [("scheduler", trial_id, 1, 1.0), ("callback", trial_id, 1, 1.0),
                   ("scheduler", trial_id, 2, 2.0), ("callback", trial_id, 2, 2.0),
                   ("callback", trial_id, 3, 3.0)]  # the stop criterion ends it: the scheduler is not asked
    assert [r["score"] for r in results[0].history()] == [1.0, 2.0, 3.0]
    assert all("meddled" not in r for r in results[0].history())
    assert results[0].metrics["score"] == 3.0 and "meddled" not in results[0].metrics


# -- a custom scheduler's None score in the exploit log line ----------------------------------------------------


class UnscoredCloner(TrialScheduler):
    """Clones trial 0 into trial 1 at iteration 2, without scores (a custom scheduler may leave them None)."""

    def on_trial_result(self, trial, result, population):
        ids = sorted(population)
        donor = population[ids[0]]
        if trial.trial_id == ids[1] and result["training_iteration"] == 2 and donor.latest_checkpoint is not None:
            new_config = dict(trial.config, x=5)
            return Decision(Action.PAUSE, perturbations=[Perturbation(
                target=trial.trial_id, donor=donor.trial_id, checkpoint=donor.latest_checkpoint,
                target_iteration=2, target_score=None, donor_score=None, old_config=dict(trial.config),
                donor_config=dict(donor.config), new_config=new_config,
                changes=(HyperparamChange("x", trial.config["x"], "resample", 5),), time_attr="training_iteration",
                time_value=2.0)])
        return Decision(Action.CONTINUE)


@pytest.mark.parametrize("verbose", [0, 2])
def test_an_exploit_without_scores_is_logged_and_recorded(storage, verbose, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="pbtlab"):
        results = Tuner(never_called, param_space={"x": tune.grid_search([0, 1])},
                        tune_config=TuneConfig(metric="score", mode="max", seed=0, scheduler=UnscoredCloner()),
                        run_config=RunConfig(storage_path=storage, name="run", verbose=verbose,
                                             stop={"training_iteration": 4},
                                             executor=counting(concurrency=2))).fit()
    (exploit,) = results.events_of("exploit")
    assert (exploit["donor_score"], exploit["target_score"]) == (None, None)
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    assert ("(score = None) into trial" in caplog.text) == (verbose == 2)


# -- stop_all() and the time budget never send SAVE to a trial inside an iteration ------------------------------


class StopAllAfter(tune.Stopper):
    def __init__(self, results):
        self.results = results
        self.seen = 0

    def __call__(self, trial_id, result):
        self.seen += 1
        return False

    def stop_all(self):
        return self.seen >= self.results


def test_stop_all_sends_no_save_to_a_trial_inside_an_iteration(storage):
    from pbtlab.config import CheckpointConfig

    # The simulator raises on a command other than STOP to a trial inside an iteration; its stand-in trainable
    # answers SAVE, as a class trainable does, so checkpoint_at_end would ask for one.
    executor = counting(checkpoint_every=0, concurrency=2)
    results = Tuner(executor.trainable, param_space={"x": tune.grid_search([0, 1])},
                    tune_config=TuneConfig(metric="score", mode="max", seed=0),
                    run_config=RunConfig(storage_path=storage, name="run", verbose=0, stop=StopAllAfter(3),
                                         checkpoint_config=CheckpointConfig(checkpoint_at_end=True),
                                         executor=executor)).fit()
    assert "save" not in {command.kind for command in executor.sent}
    assert [e["reason"] for e in results.events_of("trial_complete")] == ["stop_all", "stop_all"]
    assert results.events_of("checkpoint_saved") == []


def test_stop_all_on_the_process_executor_leaves_no_checkpoint_nobody_asked_for(storage):
    """End to end: a trial inside an iteration at stop_all() would have answered a SAVE after its report,
    leaving a checkpoint folder that no record names."""
    import os

    from pbtlab.config import CheckpointConfig
    from trainable_classes import SlowSteps

    results = Tuner(SlowSteps, param_space={"lr": tune.grid_search([0.01, 0.2])},
                    tune_config=TuneConfig(metric="score", mode="max", seed=0),
                    run_config=RunConfig(storage_path=storage, name="run", verbose=0, stop=StopAllAfter(1),
                                         checkpoint_config=CheckpointConfig(checkpoint_at_end=True),
                                         executor="process")).fit()
    assert [e["reason"] for e in results.events_of("trial_complete")] == ["stop_all", "stop_all"]
    recorded = {e["checkpoint"] for e in results.events_of("checkpoint_saved")}
    on_disk = {f"{r.trial_id}/{name}" for r in results for name in os.listdir(r.path) if name.startswith("checkpoint_")}
    assert on_disk == recorded
