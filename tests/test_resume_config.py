"""A faithful resume: every storable setting comes back, what cannot be stored is named, a failing resume
changes no byte, and nothing outside the run directory is ever deleted."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile

import pytest

from pbtlab import tune
from pbtlab.callbacks import Callback
from pbtlab.cli import main
from pbtlab.config import NOT_STORED_FIELDS, CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from pbtlab.engine import build
from pbtlab.errors import ConfigError, ExperimentError
from pbtlab.rundir.records import ExperimentSpec
from pbtlab.tuner import Tuner

# -- every field of the four config classes ----------------------------------------------------------------

#: A value other than the default for every field that experiment.json stores. A field added to a config
#: class later must be added here (stored) or to config.NOT_STORED_FIELDS (with the reason), or this fails.
STORED_SAMPLES = {
    "TuneConfig": {"metric": "score", "mode": "min", "num_samples": 2, "seed": 5, "max_concurrent_trials": 1,
                   "time_budget_s": 100.0, "reuse_actors": True},
    "RunConfig": {"stop": {"training_iteration": 3}, "verbose": 0, "executor": "process",
                  "progress_interval_s": 7.5, "state_save_period_s": 0.5, "log_to_file": "trial.log",
                  "callbacks": [], "failure_config": None, "checkpoint_config": None},
    "CheckpointConfig": {"num_to_keep": 2, "checkpoint_score_attribute": "score", "checkpoint_score_order": "min",
                         "checkpoint_frequency": 2, "checkpoint_at_end": True},
    "FailureConfig": {"max_failures": 3, "fail_fast": True},
}
CLASSES = {"TuneConfig": TuneConfig, "RunConfig": RunConfig, "CheckpointConfig": CheckpointConfig,
           "FailureConfig": FailureConfig}


def count_trainable(config):
    for step in range(3):
        tune.report({"score": float(step)})


def test_every_config_field_is_stored_or_named_as_not_stored():
    for kind, cls in CLASSES.items():
        for field in dataclasses.fields(cls):
            name = f"{kind}.{field.name}"
            assert (field.name in STORED_SAMPLES[kind]) != (name in NOT_STORED_FIELDS), (
                f"{name}: add a sample value to STORED_SAMPLES or a reason to config.NOT_STORED_FIELDS")


def test_every_stored_field_round_trips_through_experiment_json(storage):
    samples = {kind: dict(values) for kind, values in STORED_SAMPLES.items()}
    for kind, values in samples.items():  # each sample differs from the default, so the test can fail
        default = CLASSES[kind]()
        for name, value in values.items():
            if value is not None and value != []:
                assert getattr(default, name) != value, f"{kind}.{name}: pick a sample that is not the default"
    checkpoint_config = CheckpointConfig(**samples["CheckpointConfig"])
    failure_config = FailureConfig(**samples["FailureConfig"])
    run_values = {**samples["RunConfig"], "checkpoint_config": checkpoint_config, "failure_config": failure_config}
    tune_config = TuneConfig(**samples["TuneConfig"])
    run_config = RunConfig(storage_path=storage, name="run", **run_values)
    controller = build.new_run(count_trainable, {"x": tune.grid_search([1, 2])}, tune_config, run_config)
    path = controller.store.path
    with open(os.path.join(path, "experiment.json")) as handle:
        experiment = ExperimentSpec.from_dict(json.load(handle))
    assert experiment.not_stored == {}
    tune_back, run_back = build._resumed_configs(experiment, path, None, None, None)
    for name, value in samples["TuneConfig"].items():
        assert getattr(tune_back, name) == value, name
    for name, value in samples["RunConfig"].items():
        if name not in ("checkpoint_config", "failure_config"):
            assert getattr(run_back, name) == value, name
    assert run_back.checkpoint_config == checkpoint_config
    assert run_back.failure_config == failure_config
    assert (run_back.name, run_back.storage_path) == ("run", storage)


class Recorder(Callback):
    def __init__(self):
        self.results = 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results += 1


def stop_at_two(trial_id, result):
    return result["training_iteration"] >= 2


def test_settings_json_cannot_hold_are_named_with_how_to_pass_them(storage, caplog):
    from pbtlab.executors.inprocess import InProcessExecutor

    results = Tuner(count_trainable, tune_config=TuneConfig(metric="score", mode="max", seed=0),
                    run_config=RunConfig(storage_path=storage, name="run", verbose=0, stop=stop_at_two,
                                         callbacks=[Recorder()], executor=InProcessExecutor())).fit()
    path = results.experiment_path
    with open(os.path.join(path, "experiment.json")) as handle:
        not_stored = json.load(handle)["not_stored"]
    assert sorted(not_stored) == ["RunConfig.callbacks", "RunConfig.executor", "RunConfig.stop"]
    with pytest.raises(ConfigError, match=r"stopped trials with .*stop_at_two.*pass it again: "
                                          r"Tuner\.restore\(path, trainable, run_config=RunConfig\(stop=\.\.\.\)\)"):
        Tuner.restore(path, count_trainable)  # said at once, before fit()
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="pbtlab"):
        Tuner.restore(path, count_trainable, run_config=RunConfig(stop=stop_at_two)).fit()
    assert "started with callbacks=" in caplog.text and "Recorder" in caplog.text
    assert "Tuner.restore(path, trainable, run_config=RunConfig(callbacks=[...]))" in caplog.text
    assert "continues with executor='inprocess'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pbtlab"):
        again = Tuner.restore(path, count_trainable, run_config=RunConfig(
            stop=stop_at_two, callbacks=[recorder], executor=InProcessExecutor())).fit()
    assert "experiment.json cannot hold" not in caplog.text
    assert [r.status for r in again] == ["TERMINATED"]


# -- scoring retention survives a resume (Tuner.restore and pbtlab resume) ----------------------------------

SCORES = [3.0, 9.0, 8.0, 1.0, 0.0, 2.0, 0.5, 1.5, 0.25, 0.75]  # the best two come early


def scored_trainable(config):
    checkpoint = tune.get_checkpoint()
    step = 0
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "step")) as handle:
            step = int(handle.read())
    while step < len(SCORES):
        step += 1
        if step == 6 and not os.path.exists(config["interrupted_marker"]):
            open(config["interrupted_marker"], "w").close()
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the driver thread gets it
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "step"), "w") as handle:
                handle.write(str(step))
            tune.report({"score": SCORES[step - 1]}, checkpoint=tune.Checkpoint.from_directory(directory))


def interrupted_scored_run(storage, tmp_path):
    checkpoint_config = CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="score",
                                         checkpoint_score_order="max")
    with pytest.raises(KeyboardInterrupt):
        Tuner(scored_trainable, param_space={"interrupted_marker": str(tmp_path / "interrupted")},
              tune_config=TuneConfig(metric="score", mode="max", seed=0),
              run_config=RunConfig(storage_path=storage, name="run", verbose=0, state_save_period_s=0,
                                   checkpoint_config=checkpoint_config)).fit()
    return os.path.join(storage, "run")


def best_scores(result):
    return [metrics["score"] for _, metrics in result.best_checkpoints]


def test_restore_and_cli_resume_keep_the_best_scored_checkpoints(storage, tmp_path):
    path = interrupted_scored_run(storage, tmp_path)
    copy = os.path.join(storage, "copy")
    shutil.copytree(path, copy)
    (restored,) = Tuner.restore(path, scored_trainable).fit()
    assert restored.metrics["training_iteration"] == len(SCORES)
    assert best_scores(restored) == [8.0, 9.0]  # the two best, worst first (as Ray lists them)
    on_disk = sorted(n for n in os.listdir(restored.path) if n.startswith("checkpoint_"))
    assert on_disk == ["checkpoint_000001", "checkpoint_000002", "checkpoint_000009"]  # and the latest
    assert main(["resume", copy, "--quiet"]) == 0
    from pbtlab import load_results

    (resumed,) = load_results(copy)
    assert best_scores(resumed) == [8.0, 9.0]
    assert sorted(n for n in os.listdir(resumed.path) if n.startswith("checkpoint_")) == on_disk


# -- a failing resume changes nothing; nothing outside the run is deleted -----------------------------------


def snapshot(root):
    """Every file under ``root`` with a hash of its bytes (and every folder)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                found[os.path.relpath(os.path.join(folder, name), root)] = hashlib.sha256(handle.read()).hexdigest()
    return found


def crashed_run(storage, tmp_path):
    """An interrupted run with lines past its saved state (as a SIGKILL leaves them): a resume cuts them."""
    path = interrupted_scored_run(storage, tmp_path)
    with open(os.path.join(path, "events.jsonl"), "a") as handle:
        handle.write('{"seq": 99999, "event": "garbage"}\n{"half a line')
    state = json.load(open(os.path.join(path, "state.json")))
    trial_dir = os.path.join(path, state["trials"][0]["trial_id"])
    with open(os.path.join(trial_dir, "result.jsonl"), "a") as handle:
        handle.write('{"training_iteration": 99}\n{"trunc')
    return path, trial_dir


def test_a_failing_restore_leaves_every_file_byte_identical(storage, tmp_path, monkeypatch):
    path, trial_dir = crashed_run(storage, tmp_path)
    before = snapshot(path)
    with pytest.raises(ConfigError, match=r"TuneConfig\(metric='other'\)"):
        Tuner.restore(path, scored_trainable, tune_config=TuneConfig(metric="other"))
    assert snapshot(path) == before

    def cannot_build(executor):
        raise ConfigError("no executor here")

    monkeypatch.setattr(build, "make_executor", cannot_build)
    with pytest.raises(ConfigError, match="no executor here"):
        Tuner.restore(path, scored_trainable).fit()
    assert snapshot(path) == before
    monkeypatch.undo()

    experiment = json.load(open(os.path.join(path, "experiment.json")))
    with open(os.path.join(path, "experiment.json"), "w") as handle:
        json.dump({**experiment, "run_config": {**experiment["run_config"], "executor": "bogus"}}, handle)
    before = snapshot(path)
    with pytest.raises(ConfigError, match="RunConfig\\(executor=...\\) must be"):
        Tuner.restore(path, scored_trainable).fit()
    assert snapshot(path) == before
    with open(os.path.join(path, "experiment.json"), "w") as handle:
        json.dump(experiment, handle)

    # A resume that works cuts in place: the result.json hard link still shows the same rows.
    link = os.path.join(trial_dir, "result.json")
    assert os.stat(link).st_ino == os.stat(os.path.join(trial_dir, "result.jsonl")).st_ino
    (result,) = Tuner.restore(path, scored_trainable).fit()
    assert os.stat(link).st_ino == os.stat(os.path.join(trial_dir, "result.jsonl")).st_ino
    with open(link) as handle:
        rows = [json.loads(line) for line in handle]
    assert [r["training_iteration"] for r in rows] == list(range(1, len(SCORES) + 1))


@pytest.mark.parametrize("where", ["events", "state", "state_latest", "trial_dirs"])
def test_a_run_directory_naming_a_path_outside_is_refused_and_nothing_outside_is_deleted(
        storage, tmp_path, where):
    path, _ = crashed_run(storage, tmp_path)
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "data.txt").write_text("keep me")
    outside = os.path.relpath(victim, path)  # ../../precious: relative, as the run's files name checkpoints
    state_file = os.path.join(path, "state.json")
    state = json.load(open(state_file))
    if where == "events":
        # a checkpoint_deleted record inside the saved part of the log
        events = open(os.path.join(path, "events.jsonl")).read().splitlines(keepends=True)
        kept = state["events_written"]
        record = json.loads(events[kept - 1])
        record.update(event="checkpoint_deleted", trial_id=state["trials"][0]["trial_id"], checkpoint=outside,
                      iteration=1)
        events[kept - 1] = json.dumps(record) + "\n"
        open(os.path.join(path, "events.jsonl"), "w").write("".join(events))
    elif where == "trial_dirs":  # a trial folder outside: checkpoints would be written and replaced there
        experiment_file = os.path.join(path, "experiment.json")
        experiment = json.load(open(experiment_file))
        experiment["trial_dirs"] = {experiment["trial_ids"][0]: outside}
        json.dump(experiment, open(experiment_file, "w"))
    else:
        trial = state["trials"][0]
        ref = dict(trial["checkpoints"][0], path=outside)
        if where == "state":
            trial["checkpoints"].insert(0, ref)  # retention would retire it (num_to_keep=2)
        else:
            trial["latest"] = ref
        json.dump(state, open(state_file, "w"))
    before = snapshot(path)
    with pytest.raises(ExperimentError) as error:
        Tuner.restore(path, scored_trainable).fit()
    assert repr(outside) in str(error.value) and "outside the run directory" in str(error.value)
    assert (victim / "data.txt").read_text() == "keep me"
    assert snapshot(path) == before
    assert main(["resume", path, "--quiet"]) != 0
    assert (victim / "data.txt").read_text() == "keep me"


def test_retention_refuses_to_delete_outside_the_run(tmp_path):
    from pbtlab.rundir.store import ExperimentStore

    store = ExperimentStore(str(tmp_path / "run"))
    assert store.deletable("t0/checkpoint_000001") == str(tmp_path / "run" / "t0" / "checkpoint_000001")
    for bad in ("..", "../other", str(tmp_path), ".", "t0/../../x"):
        with pytest.raises(ExperimentError, match="outside the run directory"):
            store.deletable(bad)


def test_a_run_written_before_the_configs_were_stored_resumes_from_its_flat_settings(storage, tmp_path):
    path = interrupted_scored_run(storage, tmp_path)
    experiment_file = os.path.join(path, "experiment.json")
    experiment = json.load(open(experiment_file))
    for key in ("tune_config", "run_config", "not_stored"):
        del experiment[key]
    json.dump(experiment, open(experiment_file, "w"))
    spec = ExperimentSpec.from_dict(experiment)
    tune_config, run_config = build._resumed_configs(spec, path, None, None, None)
    assert run_config.checkpoint_config == CheckpointConfig(num_to_keep=2)  # all such a run recorded
    assert (tune_config.metric, tune_config.mode, tune_config.seed) == ("score", "max", 0)
    (result,) = Tuner.restore(path, scored_trainable).fit()
    assert result.metrics["training_iteration"] == len(SCORES)
    assert len(result.best_checkpoints) == 2
