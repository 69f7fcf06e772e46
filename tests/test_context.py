"""``tune.get_context()``: trial id, name, directory and resources, and the experiment name, on the
in-process and process executors (Ray: test_resources.py's Ray run), for function and class trainables."""

from __future__ import annotations

import json
import os

import pytest
from resource_trainables import probe_trainable

from pbtlab import tune
from pbtlab.errors import ReportError
from pbtlab.tuner import Tuner


def read_text(path):
    with open(path) as handle:
        return handle.read()


def read_json(path):
    return json.loads(read_text(path))


class ContextClass(tune.Trainable):
    def setup(self, config):
        context = tune.get_context()
        self.seen = {"id": context.get_trial_id(), "name": context.get_trial_name(),
                     "dir": context.get_trial_dir(), "experiment": context.get_experiment_name(),
                     "cpu": context.get_trial_resources().cpu, "attr_name": self.trial_name}

    def step(self):
        return {**self.seen, "done": True}


@pytest.mark.parametrize("executor", ["inprocess", "process"])
def test_function_trainable_context(tmp_path, executor):
    trainable = tune.with_resources(probe_trainable, lambda config: {"cpu": 1 + config["i"], "gpu": 0})
    space = {"i": tune.grid_search([0, 1]), "probe_dir": str(tmp_path / "probe"), "work_s": 0.0}
    results = Tuner(trainable, param_space=space, tune_config=tune.TuneConfig(seed=0),
                    run_config=tune.RunConfig(name="ctx", storage_path=str(tmp_path), verbose=0,
                                              executor=executor)).fit()
    for result in results:
        trial_id = result.metrics["trial_id"]
        seen = read_json(tmp_path / "probe" / f"{trial_id}.json")
        assert seen["trial_name"] == f"probe_trainable_{trial_id}"
        assert seen["trial_dir"] == result.path and os.path.isdir(result.path)
        assert seen["experiment_name"] == "ctx"
        assert (seen["cpu"], seen["gpu"]) == (1.0 + result.config["i"], 0.0)
        assert seen["required"] == {"CPU": 1.0 + result.config["i"], "GPU": 0.0}


@pytest.mark.parametrize("executor", ["inprocess", "process"])
def test_class_trainable_context_with_trial_name_creator(tmp_path, executor):
    results = Tuner(ContextClass, param_space={"x": tune.grid_search([1, 2])},
                    tune_config=tune.TuneConfig(seed=0, trial_name_creator=lambda trial: f"named_{trial.trial_id}"),
                    run_config=tune.RunConfig(name="classes", storage_path=str(tmp_path), verbose=0,
                                              executor=executor)).fit()
    for result in results:
        metrics = result.metrics
        assert metrics["name"] == metrics["attr_name"] == f"named_{metrics['id']}"
        assert (metrics["dir"], metrics["experiment"], metrics["cpu"]) == (result.path, "classes", 1.0)


def test_get_context_outside_a_trial_is_a_clear_error():
    with pytest.raises(ReportError, match=r"tune.get_context\(\) was called outside a trial"):
        tune.get_context()
