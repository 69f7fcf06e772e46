"""A reported checkpoint folder is moved into the trial directory when a ``tempfile.TemporaryDirectory`` made
during that step owns it (the tutorial's pattern), and copied in every other case."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from pbtlab import tune
from pbtlab.config import RunConfig
from pbtlab.executors.process import ProcessExecutor
from pbtlab.rundir.checkpoints import finalizer_mark, made_since, persist_directory
from pbtlab.tuner import Tuner

STEPS = 5


def per_step_temporary_directory(config):
    """The tutorial's pattern: a new TemporaryDirectory every step, reported inside its ``with`` block."""
    for step in range(1, STEPS + 1):
        with tempfile.TemporaryDirectory() as scratch:
            path = os.path.join(scratch, "state.json")
            with open(path, "w") as handle:
                json.dump({"step": step}, handle)
            inode = os.stat(path).st_ino
            tune.report({"step": step, "inode": inode},
                        checkpoint=tune.Checkpoint.from_directory(scratch))
            left = os.path.isdir(scratch)
        with open(os.path.join(tune.get_context().get_trial_dir(), f"left_{step}"), "w") as handle:
            handle.write(str(left))


def one_temporary_directory_for_the_run(config):
    """A TemporaryDirectory made once and reused: a file written once, another every step."""
    with tempfile.TemporaryDirectory() as scratch:
        with open(os.path.join(scratch, "meta.json"), "w") as handle:
            json.dump({"written": "once"}, handle)
        for step in range(1, STEPS + 1):
            with open(os.path.join(scratch, "state.json"), "w") as handle:  # rewritten in place
                json.dump({"step": step}, handle)
            tune.report({"step": step, "inode": os.stat(os.path.join(scratch, "state.json")).st_ino},
                        checkpoint=tune.Checkpoint.from_directory(scratch))
            with open(os.path.join(tune.get_context().get_trial_dir(), f"left_{step}"), "w") as handle:
                handle.write(str(os.path.isdir(scratch)))


def per_step_mkdtemp(config):
    """A folder of the trainable's own every step (``mkdtemp``): nobody deletes it, so it is copied."""
    for step in range(1, STEPS + 1):
        scratch = tempfile.mkdtemp(dir=config["scratch"])
        path = os.path.join(scratch, "state.json")
        with open(path, "w") as handle:
            json.dump({"step": step}, handle)
        tune.report({"step": step, "inode": os.stat(path).st_ino}, checkpoint=tune.Checkpoint.from_directory(scratch))
        with open(os.path.join(tune.get_context().get_trial_dir(), f"left_{step}"), "w") as handle:
            handle.write(str(os.path.isdir(scratch)))


def run(trainable, tmp_path, executor=None):
    scratch = tmp_path / "scratch"  # where per_step_mkdtemp's folders go (nothing deletes them)
    scratch.mkdir(exist_ok=True)
    results = Tuner(trainable, param_space={"scratch": str(scratch)},
                    run_config=RunConfig(storage_path=str(tmp_path), name="adopt", verbose=0,
                                         executor=executor)).fit()
    assert not results.errors
    trial_dir = results[0].path
    with open(os.path.join(trial_dir, "result.jsonl")) as handle:
        rows = [json.loads(line) for line in handle]
    outcome = []
    for index, row in enumerate(rows):
        stored = os.path.join(trial_dir, f"checkpoint_{index:06d}", "state.json")
        with open(stored) as handle:
            assert json.load(handle) == {"step": row["step"]}
        with open(os.path.join(trial_dir, f"left_{row['step']}")) as handle:
            left = handle.read() == "True"
        moved = os.stat(stored).st_ino == row["inode"]
        outcome.append((row["step"], "moved" if moved else "copied", "left" if left else "gone"))
    return trial_dir, outcome


@pytest.mark.parametrize("executor", [None, "process"])
def test_a_temporary_directory_of_the_step_is_moved_after_the_first_report(tmp_path, executor):
    _, outcome = run(per_step_temporary_directory, tmp_path,
                     ProcessExecutor() if executor == "process" else None)
    # The first report of a run copies: its folder may have been made before the loop (next test).
    assert outcome == [(1, "copied", "left")] + [(step, "moved", "gone") for step in range(2, STEPS + 1)]


def test_a_temporary_directory_reused_across_steps_is_copied_every_time(tmp_path):
    trial_dir, outcome = run(one_temporary_directory_for_the_run, tmp_path)
    assert outcome == [(step, "copied", "left") for step in range(1, STEPS + 1)]
    for index in range(STEPS):
        with open(os.path.join(trial_dir, f"checkpoint_{index:06d}", "meta.json")) as handle:
            assert json.load(handle) == {"written": "once"}


def test_a_folder_of_the_trainables_own_is_copied(tmp_path):
    _, outcome = run(per_step_mkdtemp, tmp_path)
    assert outcome == [(step, "copied", "left") for step in range(1, STEPS + 1)]


def test_moving_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("PBTLAB_CHECKPOINT_MOVE", "0")
    _, outcome = run(per_step_temporary_directory, tmp_path)
    assert outcome == [(step, "copied", "left") for step in range(1, STEPS + 1)]


def test_made_since_knows_only_live_temporary_directories_made_after_the_mark(tmp_path):
    before = tempfile.TemporaryDirectory()
    mark = finalizer_mark()
    assert isinstance(mark, int)
    after = tempfile.TemporaryDirectory()
    try:
        assert made_since(after.name, mark)
        assert not made_since(before.name, mark)  # made before the mark
        assert not made_since(str(tmp_path), mark)  # no TemporaryDirectory owns it
        assert not made_since(after.name, None)  # no mark: the first report of a run
    finally:
        after.cleanup()
        before.cleanup()
    assert not made_since(after.name, mark)  # cleaned up: its finalizer is gone


def test_a_moved_temporary_directory_cleans_up_without_error():
    with tempfile.TemporaryDirectory() as scratch:
        os.rename(scratch, scratch + "_moved")
    assert not os.path.exists(scratch)
    os.rmdir(scratch + "_moved")


@pytest.mark.parametrize("move", [True, False])
@pytest.mark.parametrize("there", ["nothing", "an empty folder", "a folder with a file"])
def test_a_checkpoint_persisted_onto_a_name_already_there_replaces_it(tmp_path, move, there):
    """A resumed trial can find ``checkpoint_<index>`` left by the run before the crash: the new checkpoint takes
    its place whole, moved or copied, and no staging folder is left."""
    source = tmp_path / "scratch"
    source.mkdir()
    (source / "new.txt").write_text("new")
    target = tmp_path / "trial"
    target.mkdir()
    if there != "nothing":
        (target / "checkpoint_000001").mkdir()
        if there == "a folder with a file":
            (target / "checkpoint_000001" / "old.txt").write_text("old")
    final = persist_directory(str(source), str(target), "checkpoint_000001", move=move)
    assert final == str(target / "checkpoint_000001")
    assert sorted(os.listdir(final)) == ["new.txt"] and open(os.path.join(final, "new.txt")).read() == "new"
    assert os.listdir(target) == ["checkpoint_000001"]
    assert source.exists() is not move


def test_the_finalizer_mark_is_weakrefs_next_index_and_does_not_take_one():
    import weakref

    mark = finalizer_mark()
    assert mark == finalizer_mark() == int(repr(weakref.finalize._index_iter)[len("count("):-1])
    with tempfile.TemporaryDirectory() as scratch:
        assert finalizer_mark() == mark + 1 and made_since(scratch, mark) and not made_since(scratch, mark + 1)
