"""Ray Tune API that real scripts use and that pbtlab lacked (issue 18's held-out cases), each with Ray 2.60's
behaviour: nested metrics named ``outer/inner``, ``Tuner.get_results()``, ``tune.ResultGrid``, Ray's trial
attributes on what callbacks receive, and the automatic fields of ``Trainable.train()`` outside a Tuner."""

from __future__ import annotations

import json
import os

import pytest

import pbtlab
from pbtlab import ExperimentError, Tuner, TuneConfig, tune
from pbtlab.analysis.compare import run_curve
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.tune.stopper import TrialPlateauStopper


def nested_trainable(config):
    """Reports its metrics nested, as Ray users with several eval sets do: eval/loss falls at ``config['rate']``."""
    loss, step = 10.0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "state")) as f:
            loss, step = json.load(f)
    while True:
        loss -= config["rate"]
        step += 1
        folder = os.path.join(tune.get_context().get_trial_dir(), "scratch")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "state"), "w") as f:
            json.dump([loss, step], f)
        tune.report({"eval": {"loss": loss, "extra": {"depth": 2}}, "train": {"loss": loss + 1, "step": step}},
                    checkpoint=tune.Checkpoint.from_directory(folder))


def run_nested(tmp_path, **tune_config):
    return Tuner(
        nested_trainable, param_space={"rate": tune.grid_search([0.5, 1.0, 2.0])},
        tune_config=TuneConfig(seed=0, **tune_config),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="nested", verbose=0,
                                  stop={"training_iteration": 4},
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_score_attribute="eval/loss",
                                                                          checkpoint_score_order="min")),
    ).fit()


def test_tune_config_metric_names_a_nested_metric_and_the_results_rank_by_it(tmp_path):
    results = run_nested(tmp_path, metric="eval/loss", mode="min")
    best = results.get_best_result()
    assert best.config["rate"] == 2.0 and best.metrics["eval"]["loss"] == 2.0  # rows on disk keep the nesting
    assert results.get_best_result(metric="train/loss", mode="max").config["rate"] == 0.5
    assert results.get_best_result(metric="eval/extra/depth", mode="max").config["rate"] == 0.5  # first on ties
    assert results.get_best_result(metric="eval/loss", mode="min", scope="all").config["rate"] == 2.0
    frame = results.get_dataframe(filter_metric="eval/loss", filter_mode="max")
    assert list(frame["eval/loss"]) == [9.5, 9.0, 8.0]  # each trial's first (highest) row
    with pytest.raises(pbtlab.ConfigError, match="'eval/extra/depth', 'eval/loss'"):
        results.get_best_result(metric="eval/nothing", mode="min")
    # CheckpointConfig's score attribute reads the nested value of the row the checkpoint came with.
    state = json.load(open(os.path.join(results.experiment_path, "state.json")))
    scores = {t["config"]["rate"]: [c["score"] for c in t["checkpoints"]] for t in state["trials"]}
    assert scores[2.0][-1] == 2.0 and scores[0.5][-1] == 8.0
    # pbtlab compare reads it too.
    assert run_curve(results.experiment_path, metric="eval/loss", mode="min").best[-1] == 2.0


def test_a_nested_metric_that_is_not_reported_is_named_in_the_error(tmp_path):
    with pytest.raises(pbtlab.ConfigError, match="outer/inner"):
        run_nested(tmp_path, metric="eval/accuracy", mode="max")


def test_schedulers_stoppers_and_stop_dicts_take_nested_metric_names(tmp_path):
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2, metric="eval/loss",
                                  mode="min", hyperparam_mutations={"rate": [0.5, 1.0, 2.0]}, synch=True)
    results = Tuner(
        nested_trainable, param_space={"rate": tune.grid_search([0.5, 2.0])},
        tune_config=TuneConfig(scheduler=pbt, seed=0),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="pbt", verbose=0,
                                  stop={"train/step": 6}),  # Ray flattens a stop dict's keys too
    ).fit()
    exploits = results.events_of("exploit")
    assert exploits and all(e["donor_score"] > e["target_score"] for e in exploits)  # scores = -eval/loss
    assert {e["donor"] for e in exploits} == {results[1].trial_id}  # the faster learner is the donor
    assert [r.metrics["train"]["step"] for r in results] == [6, 6]
    stopped = Tuner(
        nested_trainable, param_space={"rate": 0.0},
        tune_config=TuneConfig(seed=0),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="plateau", verbose=0,
                                  stop=TrialPlateauStopper(metric="eval/loss", num_results=3, grace_period=3)),
    ).fit()
    assert stopped[0].metrics["training_iteration"] == 3  # a flat loss plateaus at the grace period


def test_get_results_returns_the_last_fit_and_the_restored_run_and_refuses_before_either(tmp_path):
    tuner = Tuner(nested_trainable, param_space={"rate": 1.0},
                  tune_config=TuneConfig(metric="eval/loss", mode="min", seed=0),
                  run_config=tune.RunConfig(storage_path=str(tmp_path), name="got", verbose=0,
                                            stop={"training_iteration": 3}))
    with pytest.raises(ExperimentError, match=r"call Tuner.fit\(\) first") as info:
        tuner.get_results()
    assert isinstance(info.value, RuntimeError)  # what Ray raises
    fitted = tuner.fit()
    assert tuner.get_results() is fitted
    restored = Tuner.restore(fitted.experiment_path, nested_trainable)
    again = restored.get_results()  # without running anything
    assert isinstance(again, tune.ResultGrid) and again.experiment_path == fitted.experiment_path
    assert again[0].metrics["eval"]["loss"] == fitted[0].metrics["eval"]["loss"] == 7.0


def test_result_grid_and_result_are_in_the_tune_namespace():
    assert tune.ResultGrid is pbtlab.ResultGrid and tune.Result is pbtlab.Result

    def eval_best_model(results: tune.ResultGrid) -> None:  # the annotation Ray's convnet example uses
        return None

    assert eval_best_model.__annotations__["results"] == "tune.ResultGrid"


class RecordingCallback(tune.Callback):
    def __init__(self):
        self.seen = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen.append({
            "trainable_name": trial.trainable_name, "trial_id": trial.trial_id, "path": trial.path,
            "local_path": trial.local_path, "logdir": trial.logdir, "evaluated_params": trial.evaluated_params,
            "last_result_iteration": trial.last_result.get("training_iteration"), "status": str(trial.status),
            "config": trial.config, "experiment_tag": trial.experiment_tag, "name": str(trial),
            "custom_trial_name": trial.custom_trial_name, "custom_dirname": trial.custom_dirname,
            "has_checkpoint": trial.has_checkpoint(), "experiment_dir_name": trial.experiment_dir_name,
            "num_failures": trial.num_failures, "error_msg": trial.error_msg,
        })


def test_callbacks_and_name_creators_get_rays_trial_attributes(tmp_path):
    names = []

    def trial_str_creator(trial):  # Ray's logging_example.py names its trials this way
        names.append((trial.trainable_name, trial.evaluated_params))
        return f"{trial.trainable_name}_{trial.trial_id}_123"

    callback = RecordingCallback()
    results = Tuner(
        nested_trainable, param_space={"rate": tune.grid_search([0.5, 1.0]), "fixed": {"depth": 3}},
        tune_config=TuneConfig(seed=0, trial_name_creator=trial_str_creator),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="attrs", verbose=0,
                                  stop={"training_iteration": 2}, callbacks=[callback]),
    ).fit()
    assert names == [("nested_trainable", {"rate": 0.5}), ("nested_trainable", {"rate": 1.0})]
    first = callback.seen[0]
    trial_id = results[0].trial_id
    trial_dir = os.path.join(results.experiment_path, trial_id)
    assert first == {
        "trainable_name": "nested_trainable", "trial_id": trial_id, "path": trial_dir, "local_path": trial_dir,
        "logdir": trial_dir, "evaluated_params": {"rate": 0.5}, "last_result_iteration": 1, "status": "RUNNING",
        "config": {"rate": 0.5, "fixed": {"depth": 3}}, "experiment_tag": "0_rate=0.5000",
        "name": f"nested_trainable_{trial_id}_123", "custom_trial_name": f"nested_trainable_{trial_id}_123",
        "custom_dirname": None, "has_checkpoint": True, "experiment_dir_name": "attrs", "num_failures": 0,
        "error_msg": None,
    }
    assert [s["last_result_iteration"] for s in callback.seen if s["trial_id"] == trial_id] == [1, 2]


def test_trainable_train_outside_a_tuner_returns_rays_automatic_fields():
    class Counter(tune.Trainable):
        def setup(self, config):
            self.total = 0

        def step(self):
            self.total += self.config["rate"]
            return {"total": self.total}

        def save_checkpoint(self, checkpoint_dir):
            return {"total": self.total}

        def load_checkpoint(self, checkpoint):
            self.total = checkpoint["total"]

    counter = Counter({"rate": 2})
    first, second = counter.train(), counter.train()
    # The keys Ray 2.60's Trainable.train() returns outside a Tuner (checked against the installed Ray).
    assert set(second) == {"total", "config", "date", "done", "hostname", "iterations_since_restore", "node_ip",
                           "pid", "time_since_restore", "time_this_iter_s", "time_total_s", "timestamp",
                           "training_iteration", "trial_id"}
    assert (first["training_iteration"], second["training_iteration"], second["total"]) == (1, 2, 4)
    assert second["trial_id"] == "default" and counter.trial_name == "default" and second["done"] is False
    assert second["config"] == {"rate": 2} and second["pid"] == os.getpid()
    assert second["time_total_s"] == pytest.approx(first["time_this_iter_s"] + second["time_this_iter_s"])
    path = counter.save()
    clone = Counter({"rate": 2})
    clone.restore(path)
    resumed = clone.train()
    assert (resumed["training_iteration"], resumed["iterations_since_restore"], resumed["total"]) == (3, 1, 6)
