"""tune.Trainable, the class API: Ray's methods and attributes, checkpoints on schedule, at the end and on
PBT's request, reuse_actors, on every executor with the same seeded decisions."""

from __future__ import annotations

import json
import os

import pytest

from pbtlab import tune
from pbtlab.config import CheckpointConfig, RunConfig, TuneConfig
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.tuner import Tuner

from trainable_classes import BUILT, RESETS, DirectoryCheckpoints, Quadratic, Reusable


def pbt(synch=True):
    return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=3, quantile_fraction=0.5,
                                   resample_probability=0.0, hyperparam_mutations={"lr": [0.01, 0.05, 0.1, 0.2]},
                                   synch=synch)


def fit(trainable, storage, name="run", iterations=9, scheduler=None, executor=None, reuse_actors=None,
        **checkpoint):
    return Tuner(trainable, param_space={"lr": tune.grid_search([0.01, 0.2])},
                 tune_config=TuneConfig(metric="score", mode="max", seed=1, scheduler=scheduler,
                                        reuse_actors=reuse_actors),
                 run_config=RunConfig(storage_path=storage, name=name, verbose=0, executor=executor,
                                      stop={"training_iteration": iterations},
                                      checkpoint_config=CheckpointConfig(**checkpoint))).fit()


def test_steps_become_reports_and_checkpoint_frequency_saves(storage):
    results = fit(DirectoryCheckpoints, storage, iterations=5, checkpoint_frequency=2)
    for result in results:
        rows = result.history()
        assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4, 5]
        assert [r["seen_iteration"] for r in rows] == [0, 1, 2, 3, 4]  # step() runs before the count
        assert [r["checkpoint_dir_name"] for r in rows] == [None, "checkpoint_000000", None, "checkpoint_000001", None]
        with open(os.path.join(result.path, "checkpoint_000001", "x.json")) as handle:
            saved = json.load(handle)
        assert saved["x"] == pytest.approx(rows[3]["x"])
        assert saved["logdir"] == result.path and saved["name"] == f"DirectoryCheckpoints_{result.trial_id}"


def test_checkpoint_at_end_saves_when_the_stop_criterion_ends_the_trial(storage):
    results = fit(Quadratic, storage, iterations=3, checkpoint_at_end=True)
    saved = results.events_of("checkpoint_saved")
    assert [(e["iteration"], e["reason"]) for e in saved] == [(3, "end"), (3, "end")]
    for result in results:
        assert result.checkpoint is not None
        with open(os.path.join(result.checkpoint.path, "_dict_checkpoint.json")) as handle:
            assert json.load(handle)["x"] == pytest.approx(result.metrics["x"])


def test_pbt_asks_donors_for_a_checkpoint_so_no_exploit_is_skipped(storage):
    BUILT.clear()
    results = fit(Quadratic, storage, scheduler=pbt())  # no checkpoint_frequency: PBT asks when it needs one
    assert not results.events_of("exploit_skipped")
    exploits = results.events_of("exploit")
    assert [e["target_iteration"] for e in exploits] == [3, 6]
    saved = {(e["trial_id"], e["iteration"]) for e in results.events_of("checkpoint_saved")}
    for exploit in exploits:
        assert (exploit["donor"], exploit["donor_iteration"]) in saved
    # The clone continues from the donor's x: its next row continues the donor's progress.
    loser = results[0]
    rows = loser.history()
    restored = rows[3]
    assert restored["restored_from"]["trial_id"] == results[1].trial_id
    donor_x = results[1].history()[2]["x"]
    assert restored["x"] == pytest.approx(donor_x + restored["config"]["lr"] * 2 * (3.0 - donor_x))
    # Without reuse_actors every exploit builds a new object.
    assert [tid for tid, _ in BUILT].count(loser.trial_id) == 3


def test_reuse_actors_resets_the_same_object(storage):
    BUILT.clear()
    RESETS.clear()
    results = fit(Reusable, storage, scheduler=pbt(), reuse_actors=True)
    assert len(BUILT) == 2  # one object per trial, reused at both exploits
    assert RESETS == [e["new_config"]["lr"] for e in results.events_of("explore")]
    assert not results.events_of("exploit_skipped")


def decisions(results):
    keep = ("trial_id", "donor", "target_iteration", "donor_iteration", "new_config")
    return [{k: e.get(k) for k in keep} for e in results.events if e["event"] in ("exploit", "explore")]


@pytest.mark.parametrize("executor", ["process", pytest.param("ray", marks=pytest.mark.ray)])
def test_same_seeded_decisions_on_every_executor(storage, executor, request):
    if executor == "ray":  # Ray's workers do not have tests/ on their path: ship the classes by value
        request.getfixturevalue("ray_runtime")  # shut down at the module's end: later forks must not copy Ray's threads
        import ray.cloudpickle

        import trainable_classes

        ray.cloudpickle.register_pickle_by_value(trainable_classes)
    reference = fit(Quadratic, storage, name="inprocess", scheduler=pbt())
    other = fit(Quadratic, storage, name=executor, scheduler=pbt(), executor=executor)
    assert decisions(other) == decisions(reference) and len(decisions(reference)) == 4
    assert [r.metrics["x"] for r in other] == pytest.approx([r.metrics["x"] for r in reference])


def test_a_class_that_is_not_a_trainable_is_refused():
    class NotATrainable:
        pass

    from pbtlab.errors import ConfigError

    with pytest.raises(ConfigError, match="NotATrainable, which is not a tune.Trainable"):
        Tuner(NotATrainable)


@pytest.mark.parametrize("executor", ["inprocess", "process"])
def test_a_class_trainable_pbt_run_leaves_nothing_in_the_temp_folder(storage, tmp_path, monkeypatch, executor):
    import tempfile

    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the folder tempfile chose at import
    results = fit(DirectoryCheckpoints, storage, scheduler=pbt(), executor=executor, checkpoint_frequency=4)
    saved = [e for e in results.events_of("checkpoint_saved") if e["reason"] == "scheduler"]
    assert saved  # PBT asked donors for checkpoints (SAVE), each made in the temp folder first
    for event in saved:  # and moved, whole, into the trial's directory
        with open(os.path.join(results.experiment_path, event["checkpoint"], "x.json")) as handle:
            assert "x" in json.load(handle)
    assert os.listdir(scratch) == []


def test_scheduled_checkpoints_are_moved_into_the_trial_directory_not_copied(storage):
    """The class API saves into scratch space of its own, so the folder is adopted by a rename (same inode)."""
    from trainable_classes import WRITTEN, InodeCheckpoints

    WRITTEN.clear()
    results = fit(InodeCheckpoints, storage, iterations=4, checkpoint_frequency=2)
    written = {(trial_id, iteration): inode for trial_id, iteration, inode in WRITTEN}
    for result in results:
        for index, iteration in enumerate((2, 4)):
            stored = os.path.join(result.path, f"checkpoint_{index:06d}", "x.json")
            assert os.stat(stored).st_ino == written[(result.trial_id, iteration)]


def test_a_checkpoint_folder_the_class_returns_from_elsewhere_is_copied(storage):
    from trainable_classes import ElsewhereCheckpoints

    results = fit(ElsewhereCheckpoints, storage, iterations=2, checkpoint_frequency=2)
    for result in results:
        own = os.path.join(result.path, "own_checkpoint", "x.json")
        stored = os.path.join(result.path, "checkpoint_000000", "x.json")
        assert os.path.exists(own) and os.stat(own).st_ino != os.stat(stored).st_ino  # the class keeps its folder
        with open(stored) as handle:
            assert json.load(handle)["x"] == pytest.approx(result.history()[1]["x"])
