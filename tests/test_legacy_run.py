"""tune.run(...) for older Ray Tune scripts: arguments mapped onto Tuner, ExperimentAnalysis over the ResultGrid."""

from __future__ import annotations

import dataclasses
import datetime
import os

import pytest

from pbtlab import CheckpointConfig, ConfigError, ExperimentError, tune
from pbtlab.compat.ray.legacy import AnalysisTrial, ExperimentAnalysis
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.tune.stopper import MaximumIterationStopper

#: score at iteration i (1-based) for each x: x=1 rises, x=2 peaks early then falls, x=3 flat.
CURVES = {1: [1, 2, 3, 4], 2: [5, 9, 2, 1], 3: [3, 3, 3, 3]}


def curve(config):
    for value in CURVES[config["x"]]:
        tune.report({"score": value})


def run_curves(**kwargs):
    kwargs.setdefault("storage_path", "results")
    kwargs.setdefault("verbose", 0)
    return tune.run(curve, config={"x": tune.grid_search([1, 2, 3])}, **kwargs)


def test_best_by_the_metric_and_mode_given_to_run():
    analysis = run_curves(metric="score", mode="max")
    assert isinstance(analysis, ExperimentAnalysis)
    assert analysis.best_config == {"x": 1}  # last values 4, 1, 3
    assert analysis.best_result["score"] == 4 and analysis.best_result["training_iteration"] == 4
    best = analysis.best_trial
    assert isinstance(best, AnalysisTrial) and best.config == {"x": 1} and best.status == "TERMINATED"
    assert best.logdir == best.path == analysis.best_logdir and os.path.isdir(best.path)
    assert best.trial_id in best.path and str(best) == best.trial_id
    assert [t.config["x"] for t in analysis.trials] == [1, 2, 3]
    assert {tid: r["score"] for tid, r in analysis.results.items()} == {t.trial_id: CURVES[t.config["x"]][-1]
                                                                       for t in analysis.trials}
    assert analysis.experiment_path == analysis.result_grid.experiment_path


def test_scopes_and_explicit_metric():
    analysis = run_curves()
    with pytest.raises(ConfigError, match="best_config needs metric and mode"):
        _ = analysis.best_config
    assert analysis.get_best_config("score", "max", scope="all") == {"x": 2}  # 9 ever
    assert analysis.get_best_config("score", "max", scope="avg") == {"x": 2}  # 4.25
    assert analysis.get_best_config("score", "min", scope="last") == {"x": 2}  # 1
    assert analysis.get_best_trial("score", "max", scope="last-5-avg").config == {"x": 2}
    assert analysis.get_best_trial("nothing", "max") is None  # as in Ray: None (with a warning)
    with pytest.raises(ConfigError, match="scope"):
        analysis.get_best_trial("score", "max", scope="best")
    with pytest.raises(ConfigError, match="mode"):
        analysis.get_best_trial("score", "up")


def test_dataframes():
    pytest.importorskip("pandas")
    analysis = run_curves(metric="score", mode="max")
    last = analysis.dataframe()
    assert list(last["score"]) == [4, 1, 3] and list(last["config/x"]) == [1, 2, 3]
    assert list(last["logdir"]) == [t.path for t in analysis.trials]
    best_ever = analysis.dataframe(metric="score", mode="max")
    assert list(best_ever["score"]) == [4, 9, 3] and list(best_ever["training_iteration"]) == [4, 2, 1]
    assert list(analysis.results_df.loc[[t.trial_id for t in analysis.trials], "score"]) == [4, 1, 3]
    assert list(analysis.best_dataframe["score"]) == [1, 2, 3, 4]
    assert list(analysis.trial_dataframes[analysis.trials[1].trial_id]["score"]) == [5, 9, 2, 1]
    assert analysis.best_result_df.index.tolist() == [analysis.best_trial.trial_id]
    assert analysis.get_all_configs(prefix=True)[analysis.trials[2].path] == {"config/x": 3}
    with pytest.raises(ConfigError, match="also needs metric"):
        analysis.dataframe(mode="max")


def checkpointing(config):
    import json
    import tempfile

    for value in CURVES[config["x"]]:
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as f:
                json.dump({"value": value}, f)
            tune.report({"score": value}, checkpoint=tune.Checkpoint.from_directory(folder))


def test_best_checkpoint_is_the_best_scoring_one_of_the_best_trial():
    analysis = tune.run(checkpointing, config={"x": tune.grid_search([1, 2])}, metric="score", mode="max",
                        storage_path="results", verbose=0, keep_checkpoints_num=4)
    import json

    with open(os.path.join(analysis.best_checkpoint.path, "state.json")) as f:
        assert json.load(f) == {"value": 4}
    second = analysis.trials[1]
    with open(os.path.join(analysis.get_best_checkpoint(second, "score", "max").path, "state.json")) as f:
        assert json.load(f) == {"value": 9}
    with open(os.path.join(analysis.get_best_checkpoint(second, "score", "min").path, "state.json")) as f:
        assert json.load(f) == {"value": 1}
    with open(os.path.join(analysis.get_last_checkpoint(second).path, "state.json")) as f:
        assert json.load(f) == {"value": 1}


def test_keep_checkpoints_num_keeps_the_latest():
    analysis = tune.run(checkpointing, config={"x": 2}, storage_path="results", verbose=0, keep_checkpoints_num=1)
    assert len(analysis.result_grid[0].best_checkpoints) == 1


def test_stop_num_samples_local_dir_and_time_budget(tmp_path):
    analysis = tune.run(curve, config={"x": tune.choice([1, 2, 3])}, num_samples=3, stop={"training_iteration": 2},
                        local_dir=str(tmp_path / "old"), verbose=0, name="legacy",
                        time_budget_s=datetime.timedelta(hours=1))
    assert analysis.experiment_path == str(tmp_path / "old" / "legacy")
    assert [t.last_result["training_iteration"] for t in analysis.trials] == [2, 2, 2]
    stopped = tune.run(curve, config={"x": 1}, stop=[MaximumIterationStopper(3)], storage_path="results", verbose=0)
    assert stopped.trials[0].last_result["training_iteration"] == 3


def test_pbt_through_tune_run_exploits():
    def climb(config):
        score = 0.0
        checkpoint = tune.get_checkpoint()
        if checkpoint:
            with open(os.path.join(checkpoint.path, "score")) as f:
                score = float(f.read())
        while True:
            score += config["lr"]
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                with open(os.path.join(folder, "score"), "w") as f:
                    f.write(str(score))
                tune.report({"score": score}, checkpoint=tune.Checkpoint.from_directory(folder))

    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                  hyperparam_mutations={"lr": tune.uniform(0.0, 1.0)})
    analysis = tune.run(climb, config={"lr": tune.grid_search([0.01, 0.02, 0.9, 1.0])}, metric="score", mode="max",
                        scheduler=pbt, stop={"training_iteration": 8}, storage_path="results", verbose=0)
    assert len(analysis.result_grid.events_of("exploit")) > 0
    assert all(t.last_result["training_iteration"] == 8 for t in analysis.trials)


def flaky(config):
    for step in range(4):
        if step == 2 and not os.path.exists("allow"):
            raise RuntimeError("not yet")
        tune.report({"score": step})


def test_failed_trials_raise_unless_told_and_resume_errored_continues():
    with pytest.raises(ExperimentError, match="Trials did not complete.*RuntimeError: not yet"):
        tune.run(flaky, storage_path="results", verbose=0, name="first")
    analysis = tune.run(flaky, storage_path="results", verbose=0, name="flaky", raise_on_failed_trial=False)
    assert [t.status for t in analysis.trials] == ["ERROR"] and "not yet" in analysis.trials[0].error_message
    open("allow", "w").close()
    resumed = tune.run(flaky, storage_path="results", verbose=0, name="flaky", resume="AUTO+ERRORED")
    assert [t.status for t in resumed.trials] == ["TERMINATED"]
    assert resumed.trials[0].trial_id == analysis.trials[0].trial_id
    assert resumed.trials[0].last_result["score"] == 3
    fresh = tune.run(curve, config={"x": 3}, storage_path="results", verbose=0, name="new", resume=True)
    assert fresh.trials[0].last_result["score"] == 3  # nothing to continue: a new run


def test_checkpoint_score_attr_maps_to_checkpoint_config_or_is_refused():
    fields = {f.name for f in dataclasses.fields(CheckpointConfig)}
    if "checkpoint_score_attribute" in fields:
        analysis = run_curves(checkpoint_score_attr="min-score", keep_checkpoints_num=2)
        assert len(analysis.trials) == 3
    else:
        with pytest.raises(ConfigError, match="checkpoint_score_attr.*not supported"):
            run_curves(checkpoint_score_attr="min-score")


@pytest.mark.parametrize("kwargs, words", [
    ({"export_formats": ["h5"]}, ["export_formats"]),
    ({"restore": "/tmp/ckpt"}, ["restore"]),
    ({"resume_config": object()}, ["resume_config"]),
    ({"_remote": True}, ["_remote"]),
    ({"sync_config": object()}, ["sync_config"]),
    ({"storage_filesystem": object()}, ["storage_filesystem"]),
    ({"progress_reporter": object()}, ["progress_reporter"]),
    ({"chdir_to_trial_dir": False}, ["chdir_to_trial_dir"]),
    ({"local_dir": "a", "storage_path": "b"}, ["local_dir", "storage_path"]),
    ({"resume": "PROMPT", "name": "x"}, ["PROMPT"]),
    ({"resume": "AUTO+SKIP", "name": "x"}, ["SKIP"]),
    ({"resume": True}, ["needs name"]),
    ({"checkpoint_config": CheckpointConfig(), "keep_checkpoints_num": 2}, ["checkpoint_config",
                                                                           "keep_checkpoints_num"]),
    ({"search_alg": "optuna"}, ["search_alg", "optuna"]),
    ({"verbosity": 1}, ["verbosity"]),
])
def test_arguments_pbtlab_cannot_honour_are_errors(kwargs, words):
    with pytest.raises(ConfigError) as info:
        run_curves(**{"verbose": 0, **kwargs})
    assert all(word in str(info.value) for word in words), str(info.value)
    assert not os.path.exists("results")  # refused before anything ran


def test_registered_names_and_rllib_are_refused():
    with pytest.raises(ConfigError, match="'PPO'.*RLlib"):
        tune.run("PPO", config={"env": "CartPole-v1"})
