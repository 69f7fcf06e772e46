"""The experiment directory: layout, and the content of every file a run writes."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest

from pbtlab import load_results
from pbtlab.examples.runs import run_toy_pbt

AUTO_FIELDS = {"training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "trial_id",
               "iterations_since_restore", "time_since_restore", "done", "config", "restored_from",
               "checkpoint_dir_name"}
USER_FIELDS = {"Q", "theta0", "theta1", "h0", "h1", "train_step"}

# documented fields of each event kind (every event also has seq, event, time)
EVENT_FIELDS = {
    "experiment_start": {"name", "seed", "num_trials", "scheduler", "executor"},
    "trial_add": {"trial_id", "config", "tag"},
    "trial_start": {"trial_id", "config", "iteration", "checkpoint", "reason"},
    "trial_restore": {"trial_id", "checkpoint", "from_trial", "iteration", "reason"},
    "exploit": {"trial_id", "donor", "target_iteration", "donor_iteration", "checkpoint", "target_score",
                "donor_score", "old_config", "donor_config", "time_attr", "time_value"},
    "explore": {"trial_id", "donor", "iteration", "changes", "new_config"},
    "trial_complete": {"trial_id", "iteration", "reason", "was_running"},
    "experiment_end": {"scheduler", "statuses"},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    storage = tmp_path_factory.mktemp("store")
    return run_toy_pbt(population=2, seed=0, storage_path=str(storage), name="exp")


def _jsonl(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_layout(run):
    path = run.experiment_path
    ids = [r.trial_id for r in run]
    assert os.path.basename(path) == "exp"
    tensorboard = [n for n in os.listdir(path) if n == "tensorboard_lineage"]  # with tensorboardX installed
    assert sorted(os.listdir(path)) == sorted(["experiment.json", "events.jsonl", "state.json", "pbt_global.txt",
                                               *[f"pbt_policy_{t}.txt" for t in ids], *ids, *tensorboard])
    for result in run:
        names = sorted(os.listdir(result.path))
        checkpoints = [n for n in names if n.startswith("checkpoint_")]
        tensorboard = [n for n in names if n.startswith("events.out.tfevents.")]
        assert len(tensorboard) <= 1  # one TensorBoard event file where tensorboardX is installed
        assert names == sorted(["params.json", "result.jsonl", "result.json", "progress.csv", *checkpoints,
                                *tensorboard])
        # one checkpoint every 4 iterations, numbered in order, each the tutorial's pickle
        assert checkpoints == [f"checkpoint_{i:06d}" for i in range(25)]
        for name in checkpoints:
            assert os.listdir(os.path.join(result.path, name)) == ["checkpoint.pkl"]
        assert not [n for n in names if n.startswith(".tmp")]


def test_experiment_json(run):
    with open(os.path.join(run.experiment_path, "experiment.json"), encoding="utf-8") as handle:
        exp = json.load(handle)
    assert exp == run.experiment
    assert exp["name"] == "exp" and exp["seed"] == 0 and exp["metric"] == "Q" and exp["mode"] == "max"
    assert exp["trainable"] == "train_func" and exp["num_samples"] == 1
    assert exp["trial_ids"] == [r.trial_id for r in run]
    assert exp["stop"] == {"training_iteration": 100} and exp["max_failures"] == 3
    assert exp["scheduler"]["type"] == "PopulationBasedTraining"
    assert exp["scheduler"]["synch"] is True and exp["scheduler"]["quantile_fraction"] == 0.5
    assert exp["param_space"]["h0"] == "tune.grid_search([0.0, 1.0])"


def test_params_json_is_the_starting_config(run):
    adds = {e["trial_id"]: e["config"] for e in run.events_of("trial_add")}
    for result in run:
        with open(os.path.join(result.path, "params.json"), encoding="utf-8") as handle:
            assert json.load(handle) == adds[result.trial_id]
    assert adds[run[0].trial_id] == {"lr": 0.05, "h0": 0.0, "h1": 1.0, "num_training_iterations": 100,
                                     "checkpoint_interval": 4}


def test_result_jsonl_rows(run):
    for result in run:
        rows = _jsonl(os.path.join(result.path, "result.jsonl"))
        assert len(rows) == 100
        for i, row in enumerate(rows, start=1):
            assert set(row) == USER_FIELDS | AUTO_FIELDS
            assert row["training_iteration"] == i and row["trial_id"] == result.trial_id
            assert row["checkpoint_dir_name"] == (f"checkpoint_{i // 4 - 1:06d}" if i % 4 == 0 else None)
            assert row["done"] is (i == 100)
            if row["restored_from"] is not None:
                assert set(row["restored_from"]) == {"trial_id", "checkpoint", "iteration", "reason"}
        assert rows == result.history()


def test_events_jsonl(run):
    events = _jsonl(os.path.join(run.experiment_path, "events.jsonl"))
    assert events == run.events
    assert [e["seq"] for e in events] == list(range(len(events)))
    times = [e["time"] for e in events]
    assert times == sorted(times)
    counts = {}
    for e in events:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
        assert {"seq", "event", "time"} | EVENT_FIELDS[e["event"]] <= set(e), e["event"]
    assert counts == {"experiment_start": 1, "trial_add": 2, "trial_start": 26, "trial_restore": 24,
                      "exploit": 24, "explore": 24, "trial_complete": 2, "experiment_end": 1}
    assert events[0]["event"] == "experiment_start" and events[-1]["event"] == "experiment_end"
    assert events[-1]["statuses"] == {r.trial_id: "TERMINATED" for r in run}
    assert events[-1]["scheduler"] == "PopulationBasedTraining: 24 checkpoints, 24 perturbs"


def test_exploit_explore_restore_start_sequence(run):
    """Each exploit is followed by its explore, then the restore and the restart of the target."""
    events = run.events
    for i, e in enumerate(events):
        if e["event"] != "exploit":
            continue
        explore, restore, start = events[i + 1], events[i + 2], events[i + 3]
        assert explore["event"] == "explore" and explore["trial_id"] == e["trial_id"]
        assert explore["donor"] == e["donor"] and explore["iteration"] == e["donor_iteration"]
        for change in explore["changes"]:
            assert set(change) == {"param", "old", "op", "new"}
            assert change["old"] == e["donor_config"][change["param"]]  # the donor's value, as Ray logs it
            assert change["new"] == explore["new_config"][change["param"]]
        assert [c["param"] for c in explore["changes"]] == ["lr", "h0", "h1"]
        assert restore == {**restore, "event": "trial_restore", "trial_id": e["trial_id"],
                           "checkpoint": e["checkpoint"], "from_trial": e["donor"],
                           "iteration": e["donor_iteration"], "reason": "exploit"}
        assert start == {**start, "event": "trial_start", "trial_id": e["trial_id"], "config": explore["new_config"],
                         "iteration": e["donor_iteration"], "checkpoint": e["checkpoint"], "reason": "exploit"}
        with open(os.path.join(run.experiment_path, e["checkpoint"], "checkpoint.pkl"), "rb") as handle:
            assert pickle.load(handle)["train_step"] == e["donor_iteration"]


def test_old_config_is_the_targets_config_before_exploit(run):
    current = {e["trial_id"]: e["config"] for e in run.events_of("trial_add")}
    for e in run.events:
        if e["event"] == "exploit":
            assert e["old_config"] == current[e["trial_id"]]
            assert e["donor_config"] == current[e["donor"]]
        elif e["event"] == "explore":
            current[e["trial_id"]] = e["new_config"]
    assert current == {r.trial_id: r.config for r in run}


def test_state_json(run):
    with open(os.path.join(run.experiment_path, "state.json"), encoding="utf-8") as handle:
        state = json.load(handle)
    assert {"format_version", "trials", "scheduler", "next_seq", "rows_written", "events_written"} <= set(state)
    assert state["rows_written"] == {r.trial_id: 100 for r in run}
    assert state["events_written"] == state["next_seq"] == len(run.events)
    assert [t["trial_id"] for t in state["trials"]] == [r.trial_id for r in run]
    for record, result in zip(state["trials"], run):
        assert record["status"] == "TERMINATED" and record["iteration"] == 100
        assert record["config"] == result.config
        assert record["latest"]["path"] == os.path.relpath(result.checkpoint.path, run.experiment_path)
    scheduler = state["scheduler"]
    assert scheduler["num_checkpoints"] == scheduler["num_perturbations"] == 24
    assert set(scheduler["members"]) == {r.trial_id for r in run}


def test_pbt_global_rows_like_rays(run):
    with open(os.path.join(run.experiment_path, "pbt_global.txt"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    exploits = run.events_of("exploit")
    explores = run.events_of("explore")
    assert len(rows) == len(exploits) == 24
    for row, e, x in zip(rows, exploits, explores):
        assert len(row) == 6
        _, _, target_iter, donor_iter, donor_config, new_config = row
        assert (target_iter, donor_iter) == (e["target_iteration"], e["donor_iteration"])
        assert donor_config == e["donor_config"] and new_config == x["new_config"]


def test_pbt_policy_files_hold_each_lineage(run):
    """pbt_policy_<id>.txt: the donor's file (if it has one) is copied over the target's, then the row appended.

    As Ray's ``_log_config_on_step``: when the donor has no policy file yet, the target keeps its own rows.
    """
    with open(os.path.join(run.experiment_path, "pbt_global.txt"), encoding="utf-8") as handle:
        rows = handle.read().splitlines()
    expected: dict[str, list[str]] = {}
    for row, e in zip(rows, run.events_of("exploit")):
        base = expected[e["donor"]] if e["donor"] in expected else expected.get(e["trial_id"], [])
        expected[e["trial_id"]] = base + [row]
    for result in run:
        with open(os.path.join(run.experiment_path, f"pbt_policy_{result.trial_id}.txt"), encoding="utf-8") as handle:
            assert handle.read().splitlines() == expected[result.trial_id]


def test_pbt_global_tags_are_the_original_tags(run):
    tags = {e["trial_id"]: e["tag"] for e in run.events_of("trial_add")}
    with open(os.path.join(run.experiment_path, "pbt_global.txt"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    for row, e in zip(rows, run.events_of("exploit")):
        assert row[:2] == [tags[e["trial_id"]], tags[e["donor"]]]
        assert (e["target_tag"], e["donor_tag"]) == (tags[e["trial_id"]], tags[e["donor"]])


def test_experiment_can_be_moved(run, tmp_path):
    moved = shutil.copytree(run.experiment_path, tmp_path / "moved")
    loaded = load_results(str(moved))
    assert loaded.experiment_path == str(moved)
    for a, b in zip(loaded, run):
        assert a.checkpoint.path == os.path.join(str(moved), b.trial_id, os.path.basename(b.checkpoint.path))
        assert os.path.isdir(a.checkpoint.path)
        assert a.metrics_dataframe.equals(b.metrics_dataframe)


def test_dumps_writes_what_json_dumps_writes():
    """``dumps`` keeps one C encoder across calls: the same text as ``json.dumps(default=json_default)`` for every
    kind of value a row holds, and the same errors."""
    import math

    import numpy as np

    from pbtlab.rundir.store import dumps, json_default

    row = {"loss": np.float64(0.25), "step": np.int64(3), "nested": {"a": [1, (2, 3.5)], "b": None}, "flag": True,
           "text": 'é "quoted"\n', "nan": math.nan, "inf": -math.inf, "array": np.arange(3), "keys": {1: "x", 2.5: 0},
           "set": {4}, "big": 2**70, "other": object}
    for value in (row, [row, row], "text", 1.5, None):
        assert dumps(value) == json.dumps(value, default=json_default)
    circular: dict = {}
    circular["self"] = circular
    with pytest.raises(ValueError, match="Circular reference"):
        dumps(circular)
    with pytest.raises(TypeError, match="keys must be"):
        dumps({(1, 2): 0})
    assert dumps({"after": "errors"}) == '{"after": "errors"}'


class _Reader:
    """A RowReader that records every pass: (trial directory, rows) batches."""

    def __init__(self, lines: bool) -> None:
        self.lines = lines
        self.passes: list[list[tuple[str, list]]] = []

    def takes_lines(self) -> bool:
        return self.lines

    def take_rows(self, batches):
        self.passes.append(batches)


@pytest.mark.parametrize("lines", [True, False])
def test_readers_get_rows_in_passes_of_enough_rows_per_trial(tmp_path, lines):
    from pbtlab.rundir.store import ExperimentStore

    store = ExperimentStore(str(tmp_path))
    trials = [f"t{i}" for i in range(200)]
    for trial_id in trials:
        store.add_trial(trial_id, {"x": 1})
    reader = _Reader(lines)
    store.read_rows_with(reader)
    per_trial = store.PASS_ROWS_PER_TRIAL
    for step in range(per_trial):
        for trial_id in trials:
            store.append_result(trial_id, {"step": step, "trial_id": trial_id})
            # 200 trials with rows waiting: no pass before 16 rows each (3,200 rows), though PASS_ROWS is 1,024
            if (step, trial_id) != (per_trial - 1, trials[-1]):
                assert reader.passes == []
    assert len(reader.passes) == 1
    batches = reader.passes[0]
    assert [os.path.basename(directory) for directory, _ in batches] == trials
    for directory, rows in batches:
        rows = [json.loads(row) if lines else row for row in rows]
        assert rows == [{"step": step, "trial_id": os.path.basename(directory)} for step in range(per_trial)]
    # a few trials: PASS_ROWS rows are enough, however many each has
    store.append_result("t0", {"step": per_trial, "trial_id": "t0"})
    store.flush()
    assert len(reader.passes) == 2 and [len(rows) for _, rows in reader.passes[1]] == [1]
    few = ExperimentStore(str(tmp_path / "few"))
    few.add_trial("a", {})
    few.add_trial("b", {})
    other = _Reader(lines)
    few.read_rows_with(other)
    for step in range(few.PASS_ROWS // 2):
        few.append_result("a", {"step": step})
        few.append_result("b", {"step": step})
    assert len(other.passes) == 1 and [len(rows) for _, rows in other.passes[0]] == [few.PASS_ROWS // 2] * 2
