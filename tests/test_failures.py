"""Trial failures, unrankable scores and checkpoint safety: each test fails on a naive implementation."""

from __future__ import annotations

import logging
import math
import os
import tempfile

import pytest

from pbtlab import tune
from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.tuner import Tuner


def report_with_checkpoint(metrics: dict, step: int, every: int) -> None:
    if every and step % every == 0:
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "step.txt"), "w") as f:
                f.write(str(step))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
    else:
        tune.report(metrics)


def start_step() -> int:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as d, open(os.path.join(d, "step.txt")) as f:
        return int(f.read())


def counting_trainable(fail_at: dict[int, int], checkpoint_every: int = 2):
    """Reports score = step; raises after reporting step `fail_at[index]` (once per entry)."""
    remaining = dict(fail_at)

    def trainable(config):
        step = start_step()
        while True:
            step += 1
            report_with_checkpoint({"score": float(step) * config.get("slope", 1.0)}, step, checkpoint_every)
            index = config["index"]
            if remaining.get(index) == step:
                del remaining[index]
                raise RuntimeError(f"boom at step {step}")

    return trainable


def fit(trainable, param_space, storage, **kwargs):
    tune_kwargs = {k: kwargs.pop(k) for k in ("scheduler", "max_concurrent_trials", "seed") if k in kwargs}
    tune_kwargs.setdefault("seed", 0)
    run = dict(storage_path=storage, verbose=0, stop={"training_iteration": kwargs.pop("iterations", 10)})
    run.update(kwargs)
    return Tuner(trainable, param_space=param_space,
                 tune_config=TuneConfig(metric="score", mode="max", **tune_kwargs),
                 run_config=RunConfig(**run)).fit()


def test_failed_trial_restarts_from_its_latest_checkpoint_and_marks_the_history(storage):
    results = fit(counting_trainable({0: 5}), {"index": 0}, storage,
                  failure_config=FailureConfig(max_failures=1))
    result = results[0]
    assert result.status == "TERMINATED" and result.error is None
    history = result.history()
    assert [row["training_iteration"] for row in history] == [1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10]
    assert history[5]["restored_from"] == {"trial_id": result.trial_id, "checkpoint": f"{result.trial_id}/checkpoint_000001",
                                           "iteration": 4, "reason": "failure"}
    assert history[5]["iterations_since_restore"] == 1
    (error,) = results.events_of("trial_error")
    assert error["will_retry"] is True and error["num_failures"] == 1 and "boom at step 5" in error["traceback"]
    (restore,) = results.events_of("trial_restore")
    assert restore["reason"] == "failure" and restore["iteration"] == 4


def test_failed_trial_without_checkpoint_restarts_from_scratch_and_says_so(storage, caplog):
    with caplog.at_level(logging.WARNING, logger="pbtlab"):
        results = fit(counting_trainable({0: 3}, checkpoint_every=0), {"index": 0}, storage,
                      failure_config=FailureConfig(max_failures=2))
    assert "from scratch (it has no checkpoint yet)" in caplog.text
    history = results[0].history()
    assert [row["training_iteration"] for row in history] == [1, 2, 3] + list(range(1, 11))
    assert history[3]["restored_from"]["reason"] == "failure" and history[3]["restored_from"]["checkpoint"] is None


def test_trial_that_keeps_failing_is_marked_errored_with_its_traceback(storage):
    def always_fails(config):
        if config["index"] == 1:
            raise ValueError("bad data shard")
        for step in range(1, 100):
            tune.report({"score": float(step)})

    results = fit(always_fails, {"index": tune.grid_search([0, 1])}, storage,
                  failure_config=FailureConfig(max_failures=2))
    assert [r.status for r in results] == ["TERMINATED", "ERROR"]
    assert results.num_errors == 1
    error = results.errors[0]
    assert "ValueError: bad data shard" in str(error) and "raise ValueError" in error.traceback_text
    attempts = [e["will_retry"] for e in results.events_of("trial_error")]
    assert attempts == [True, True, False]


def test_max_failures_minus_one_retries_until_it_succeeds(storage):
    results = fit(counting_trainable({0: 2}), {"index": 0}, storage, failure_config=FailureConfig(max_failures=-1))
    assert results[0].status == "TERMINATED"

    state = {"failures": 0}

    def flaky(config):
        if state["failures"] < 7:
            state["failures"] += 1
            raise ConnectionError("lost the parameter server")
        tune.report({"score": 1.0})

    results = fit(flaky, {}, storage + "2", failure_config=FailureConfig(max_failures=-1))
    assert results[0].status == "TERMINATED"
    assert len(results.events_of("trial_error")) == 7


def test_misuse_of_report_is_not_retried(storage):
    def wrong(config):
        tune.report(0.5)

    results = fit(wrong, {}, storage, failure_config=FailureConfig(max_failures=3))
    assert results[0].status == "ERROR"
    (event,) = results.events_of("trial_error")
    assert event["error_type"] == "ReportError" and event["will_retry"] is False
    assert "needs a dict of metrics, got 0.5 (float)" in event["message"]


def test_fail_fast_stops_the_experiment_with_the_trial_error(storage):
    from pbtlab.errors import TrialError

    with pytest.raises(TrialError, match="boom at step 3"):
        fit(counting_trainable({0: 3}), {"index": tune.grid_search([0, 1])}, storage,
            failure_config=FailureConfig(max_failures=5, fail_fast=True))


def sync_pbt(**kwargs):
    settings = dict(time_attr="training_iteration", perturbation_interval=4, quantile_fraction=0.25,
                    hyperparam_mutations={"slope": tune.uniform(0.5, 2.0)}, synch=True)
    settings.update(kwargs)
    return PopulationBasedTraining(**settings)


@pytest.mark.timeout(60)
def test_synchronous_population_goes_on_without_a_dead_trial(storage):
    """Ray #12122: a trial that cannot restart blocks a synch population forever."""

    def trainable(config):
        step = start_step()
        while True:
            step += 1
            if config["index"] == 2 and step == 6:
                raise RuntimeError("GPU fell off the bus")
            report_with_checkpoint({"score": step * config["slope"]}, step, 4)

    results = fit(trainable, {"index": tune.grid_search([0, 1, 2, 3]), "slope": tune.uniform(0.5, 2.0)}, storage,
                  scheduler=sync_pbt(), iterations=40)
    statuses = [r.status for r in results]
    assert statuses == ["TERMINATED", "TERMINATED", "ERROR", "TERMINATED"]
    assert all(results[i].metrics["training_iteration"] == 40 for i in (0, 1, 3))
    exploits = results.events_of("exploit")
    assert len(exploits) == 9  # one exploit at each of the 9 barriers (iterations 4..36), dead trial or not
    assert all(e["trial_id"] != results[2].trial_id or e["target_iteration"] == 4 for e in exploits)
    assert all(e["donor"] != results[2].trial_id or e["target_iteration"] == 4 for e in exploits)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "n/a"])
def test_unrankable_scores_never_make_a_donor_and_get_replaced(storage, bad, caplog):
    def trainable(config):
        broken = tune.get_context().get_trial_id().endswith("_00000")  # this trial's scores are broken for good
        step = start_step()
        while True:
            step += 1
            score = bad if broken else step * config["slope"]
            report_with_checkpoint({"score": score, "step": step}, step, 4)

    with caplog.at_level(logging.INFO, logger="pbtlab"):
        results = fit(trainable, {"index": tune.grid_search([0, 1, 2, 3]), "slope": tune.uniform(0.5, 2.0)},
                      storage, scheduler=sync_pbt(), iterations=20, verbose=2)
    nan_trial = results[0].trial_id
    exploits = results.events_of("exploit")
    assert exploits, "PBT made no decisions"
    assert all(e["donor"] != nan_trial and math.isfinite(e["donor_score"]) for e in exploits)
    assert sum(e["trial_id"] == nan_trial for e in exploits) == 4  # replaced at every barrier (4, 8, 12, 16)
    skipped = results.events_of("unrankable_score")
    assert skipped and all(e["trial_id"] == nan_trial for e in skipped)
    assert "cannot be ranked" in caplog.text
    assert all(r.status == "TERMINATED" for r in results)


def test_reports_missing_the_metric_are_skipped_with_require_attrs_false(storage):
    def trainable(config):
        for step in range(1, 30):
            metrics = {"other": 1.0} if config["index"] == 0 else {"score": step * config["slope"]}
            report_with_checkpoint(metrics, step, 4)

    results = fit(trainable, {"index": tune.grid_search([0, 1, 2, 3]), "slope": tune.uniform(0.5, 2.0)},
                  storage, scheduler=sync_pbt(require_attrs=False, synch=False), iterations=20)
    assert all(r.status == "TERMINATED" for r in results)
    assert all(results[0].trial_id not in (e["trial_id"], e["donor"]) for e in results.events_of("exploit"))


def test_exploit_whose_donor_has_no_checkpoint_is_skipped_and_logged(storage, caplog):
    def never_checkpoints(config):
        for step in range(1, 100):
            tune.report({"score": step * config["slope"]})

    with caplog.at_level(logging.INFO, logger="pbtlab"):
        results = fit(never_checkpoints, {"index": tune.grid_search([0, 1, 2, 3]), "slope": tune.uniform(0.5, 2.0)},
                      storage, scheduler=sync_pbt(), iterations=12, verbose=2)
    assert results.events_of("exploit") == []
    skipped = results.events_of("exploit_skipped")
    assert len(skipped) == 2  # one loser at each of the barriers at iterations 4 and 8
    assert all(e["reason"] == "donor has no checkpoint" for e in skipped)
    assert "[pbt]: no checkpoint for trial" in caplog.text
    assert all(len(r.history()) == 12 for r in results)  # nobody silently restarted from scratch


def test_donor_checkpoint_survives_retention_until_the_clone_restored(storage):
    """Ray #8441/#9036: with num_to_keep small, a donor's checkpoint was deleted before it was cloned."""

    def trainable(config):
        step = start_step()
        while True:
            step += 1
            report_with_checkpoint({"score": step * config["slope"]}, step, 1)

    results = fit(trainable, {"index": tune.grid_search([0, 1, 2, 3]), "slope": tune.uniform(0.5, 2.0)}, storage,
                  scheduler=sync_pbt(), iterations=24, max_concurrent_trials=1,
                  checkpoint_config=CheckpointConfig(num_to_keep=1))
    assert all(r.status == "TERMINATED" for r in results)
    events = results.events
    restores = [e for e in events if e["event"] == "trial_restore" and e["reason"] == "exploit"]
    assert len(restores) == len(results.events_of("exploit")) == 5
    deleted_at = {e["checkpoint"]: e["seq"] for e in events if e["event"] == "checkpoint_deleted"}
    for restore in restores:
        # the checkpoint was either never deleted, or deleted only after the clone restored from it
        assert deleted_at.get(restore["checkpoint"], math.inf) > restore["seq"]
    # ...and retention still did its job: the rest of the old checkpoints are gone from disk.
    for result in results:
        kept = [d for d in os.listdir(result.path) if d.startswith("checkpoint_")]
        assert len(kept) <= 2


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one_intact(storage, monkeypatch):
    import shutil

    import pbtlab.checkpoint as checkpoint_module

    calls = {"n": 0}
    real_copytree = shutil.copytree

    def flaky_copytree(src, dst, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.makedirs(dst)
            with open(os.path.join(dst, "half.txt"), "w") as f:
                f.write("partial")
            raise OSError("disk full")
        return real_copytree(src, dst, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.shutil, "copytree", flaky_copytree)
    monkeypatch.setenv("PBTLAB_CHECKPOINT_MOVE", "0")  # the copy path: its temporary directories are moved otherwise
    results = fit(counting_trainable({}, checkpoint_every=1), {"index": 0}, storage,
                  failure_config=FailureConfig(max_failures=1), iterations=5)
    result = results[0]
    assert result.status == "TERMINATED"
    (error,) = results.events_of("trial_error")
    assert "disk full" in error["message"]
    # the failed write never became a checkpoint: the trial restarted from checkpoint 2 (iteration 2)
    (restore,) = results.events_of("trial_restore")
    assert restore["checkpoint"].endswith("checkpoint_000001") and restore["iteration"] == 2
    with open(os.path.join(storage, os.listdir(storage)[0], restore["checkpoint"], "step.txt")) as f:
        assert f.read() == "2"
    assert [row["training_iteration"] for row in result.history()] == [1, 2, 3, 4, 5]


def test_non_numeric_time_attr_or_stop_value_is_a_clear_error(storage):
    from pbtlab.errors import ConfigError

    def trainable(config):
        for step in range(1, 10):
            tune.report({"score": float(step), "epoch": "first" if step < 5 else step})

    scheduler = PopulationBasedTraining(time_attr="epoch", perturbation_interval=2,
                                        hyperparam_mutations={"x": [1, 2]})
    with pytest.raises(ConfigError, match=r"time_attr='epoch'\) must be a number in every report; trial .* "
                                          r"reported epoch='first'"):
        fit(trainable, {"x": 1}, storage, scheduler=scheduler)
    with pytest.raises(ConfigError, match=r"compares 'epoch' with a number, but trial .* reported epoch='first'"):
        fit(trainable, {"x": 1}, storage + "2", stop={"epoch": 3})


def test_clip_to_domain_snaps_a_perturbed_choice_to_the_nearest_category():
    choice = tune.choice([1, 2, 4])
    assert [choice.clip(v) for v in (4.8, 2.4, 0.8, 3.1, 2)] == [4, 2, 1, 4, 2]
    assert tune.choice(["sgd", "adam"]).clip("sgd") == "sgd"
