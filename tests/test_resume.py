"""Resuming runs (Tuner.restore, pbtlab resume) and loading damaged or foreign directories."""

from __future__ import annotations

import json
import os
import pickle
import re

import pytest

from pbtlab import load_results, tune
from pbtlab.cli import main
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.errors import ConfigError, ExperimentError
from pbtlab.examples.runs import run_toy_pbt
from pbtlab.examples.toy import train_func
from pbtlab.rundir.store import truncate_lines
from pbtlab.tuner import Tuner


def finished_run(storage: str, name: str = "run", population: int = 2):
    return run_toy_pbt(population=population, seed=7, storage_path=storage, name=name, iterations=20)


def test_restoring_a_finished_run_changes_nothing(storage):
    results = finished_run(storage)
    before = [r.history() for r in results]
    again = Tuner.restore(results.experiment_path, train_func).fit()
    assert [r.history() for r in again] == before
    assert [e["event"] for e in again.events][-2:] == ["experiment_resume", "experiment_end"]


def test_resume_drops_rows_and_events_written_after_the_saved_state(storage):
    """What a SIGKILL can leave: lines past the saved state, the last one half written."""
    results = finished_run(storage)
    path = results.experiment_path
    reference = {r.trial_id: r.history() for r in results}
    with open(os.path.join(path, "events.jsonl"), "a") as f:
        f.write('{"seq": 99999, "event": "garbage"}\n{"half a line')
    with open(os.path.join(path, results[1].trial_id, "result.jsonl"), "a") as f:
        f.write('{"training_iteration": 21}\n{"trunc')
    again = Tuner.restore(path, train_func).fit()
    assert all(e["event"] != "garbage" for e in again.events)
    assert {r.trial_id: r.history() for r in again} == reference


def test_resume_from_the_cli_uses_the_recorded_trainable(storage, capsys):
    results = finished_run(storage)
    assert main(["resume", results.experiment_path, "--quiet"]) == 0
    assert "Resumed and finished" in capsys.readouterr().out


def test_resume_of_a_script_trainable_asks_for_it(storage, capsys):
    def local_trainable(config):
        tune.report({"score": 1.0})

    results = Tuner(local_trainable, tune_config=TuneConfig(metric="score", mode="max", seed=0),
                    run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    assert main(["resume", results.experiment_path]) == 2
    assert "pass --trainable package.module:function" in capsys.readouterr().err
    assert main(["resume", results.experiment_path, "--trainable", "pbtlab.examples.toy:nope"]) == 2
    assert "has no 'nope'" in capsys.readouterr().err


def test_restore_needs_the_scheduler_when_it_cannot_be_rebuilt(storage):
    from pbtlab.schedulers import PopulationBasedTraining

    def trainable(config):
        for step in range(1, 9):
            tune.report({"score": step * config["x"]})

    scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                        hyperparam_mutations={"x": lambda: 1.0})
    results = Tuner(trainable, param_space={"x": tune.grid_search([1.0, 2.0])},
                    tune_config=TuneConfig(metric="score", mode="max", scheduler=scheduler, seed=0),
                    run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    with pytest.raises(ConfigError, match="pass the same scheduler"):
        Tuner.restore(results.experiment_path, trainable).fit()


@pytest.mark.parametrize("damage, message", [
    ("state.json", "experiment state (state.json) is damaged"),
    ("experiment.json", "experiment settings (experiment.json) is damaged"),
    ("events.jsonl", "event log (events.jsonl) is damaged at line 3"),
    ("result.jsonl", "is damaged at line 2"),
])
def test_damaged_directory_gives_an_error_naming_the_file(storage, damage, message):
    results = finished_run(storage)
    path = results.experiment_path
    target = {"result.jsonl": os.path.join(path, results[0].trial_id, "result.jsonl")}.get(
        damage, os.path.join(path, damage))
    lines = open(target).read().splitlines(keepends=True)
    if damage.endswith(".jsonl"):
        lines[1 if damage == "result.jsonl" else 2] = "{not json\n"
        open(target, "w").writelines(lines)
    else:
        open(target, "w").write("{" + "".join(lines)[:40])
    with pytest.raises(ExperimentError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        grid = load_results(path)
        grid.events  # noqa: B018 - loading is lazy
        [r.history() for r in grid]
    assert os.path.basename(target) in str(info.value)


def test_foreign_or_missing_directory_is_refused(tmp_path):
    with pytest.raises(ExperimentError, match="no experiment directory"):
        load_results(tmp_path / "nothing")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "experiment.json").write_text('{"some": "other tool"}')
    with pytest.raises(ExperimentError, match="is not a pbtlab experiment file"):
        load_results(tmp_path / "foreign")
    with pytest.raises(ExperimentError):
        Tuner.restore(tmp_path / "foreign", train_func)
    with pytest.raises(ConfigError, match="needs an experiment directory"):
        Tuner.restore(42, train_func)


def test_loading_never_unpickles_files_from_the_directory(storage, tmp_path):
    results = finished_run(storage)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name in ("tuner.pkl", "state.pkl", "experiment_state.pkl"):
        with open(os.path.join(results.experiment_path, name), "wb") as f:
            pickle.dump(Payload(), f)
    grid = load_results(results.experiment_path)
    [r.metrics_dataframe for r in grid]
    grid.events  # noqa: B018
    assert not marker.exists()
    # Every module uses JSON only, but the executors, the trial session and the loggers' helper process (which
    # pickle messages between processes, never files) and the tutorial's trainable (which unpickles its own
    # checkpoints).
    source = os.path.join(os.path.dirname(__file__), "..", "src", "pbtlab")
    allowed = {"session.py", "examples/toy.py", "trainable.py", "loggers/offload.py"}
    checked = 0
    for folder, _, files in os.walk(source):
        for name in files:
            relative = os.path.relpath(os.path.join(folder, name), source).replace(os.sep, "/")
            if not name.endswith(".py") or relative in allowed or relative.startswith("executors/"):
                continue
            text = open(os.path.join(folder, name)).read()
            assert not re.search(r"import (cloud)?pickle\b|pickle\.loads?\(|marshal|shelve", text), relative
            checked += 1
    assert checked > 20


def test_truncate_lines_drops_a_half_written_line(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a"')
    truncate_lines(str(path), 2)
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'


def test_ctrl_c_keeps_the_last_consistent_state_and_resume_continues_without_duplicates(storage):
    import signal

    interrupted = []

    def trainable(config):
        checkpoint = tune.get_checkpoint()
        step = 0
        if checkpoint is not None:
            with open(os.path.join(checkpoint.path, "step")) as f:
                step = int(f.read())
        while True:
            step += 1
            if step == 7 and not interrupted:
                interrupted.append(step)
                os.kill(os.getpid(), signal.SIGINT)  # as a user pressing Ctrl-C: the driver thread gets it
            if step % 4 == 0:
                import tempfile

                with tempfile.TemporaryDirectory() as d:
                    with open(os.path.join(d, "step"), "w") as f:
                        f.write(str(step))
                    tune.report({"score": step * config["x"]}, checkpoint=tune.Checkpoint.from_directory(d))
            else:
                tune.report({"score": step * config["x"]})

    def run_config(name):
        return RunConfig(storage_path=storage, name=name, verbose=0, stop={"training_iteration": 12},
                         state_save_period_s=0)

    space = {"x": tune.grid_search([1, 2])}
    with pytest.raises(KeyboardInterrupt):
        Tuner(trainable, param_space=space, tune_config=TuneConfig(seed=0), run_config=run_config("run")).fit()
    path = os.path.join(storage, "run")
    state = json.load(open(os.path.join(path, "state.json")))
    assert [t["iteration"] for t in state["trials"]] == [4, 4]  # the barrier-free cut after both reported step 4
    resumed = Tuner.restore(path, trainable).fit()
    reference = Tuner(trainable, param_space=space, tune_config=TuneConfig(seed=0), run_config=run_config("ref")).fit()
    for got, want in zip(resumed, reference):
        assert [r["training_iteration"] for r in got.history()] == list(range(1, 13))
        assert [r["score"] for r in got.history()] == [r["score"] for r in want.history()]


def test_a_checkpoint_deleted_outside_pbtlab_falls_back_to_an_older_one(storage, caplog):
    """Resume after someone deleted the checkpoints a trial was to restart from: it restarts from its
    newest checkpoint that still exists, says so, and the run completes."""
    import logging
    import shutil

    results = run_toy_pbt(population=2, seed=7, storage_path=storage, name="run", iterations=20)
    path = results.experiment_path
    state = json.load(open(os.path.join(path, "state.json")))
    # Rewind the state to "both trials still running at their latest checkpoint", as after a crash.
    for trial in state["trials"]:
        trial["status"] = "RUNNING"
    json.dump(state, open(os.path.join(path, "state.json"), "w"))
    victim = state["trials"][0]
    shutil.rmtree(os.path.join(path, victim["latest"]["path"]))
    with caplog.at_level(logging.WARNING, logger="pbtlab"):
        again = Tuner.restore(path, train_func, run_config=RunConfig(stop={"training_iteration": 24}, verbose=0)).fit()
    (missing,) = again.events_of("checkpoint_missing")
    assert missing["trial_id"] == victim["trial_id"] and missing["checkpoint"] == victim["latest"]["path"]
    assert missing["fallback"] is not None and missing["fallback"] != missing["checkpoint"]
    assert "is missing (deleted outside pbtlab)" in caplog.text
    assert [r.status for r in again] == ["TERMINATED", "TERMINATED"]
    assert all(r.metrics["training_iteration"] == 24 for r in again)
