"""Result rows encoded and appended by the loggers' helper process (``ExperimentStore.write_rows_through``):
the same bytes as the driver writes, every row once and in order when the helper dies, and ``state.json``
never counting a row that is not in its file."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbtlab import tune
from pbtlab.errors import CallbackError
from pbtlab.examples.runs import run_toy_pbt, toy_scheduler
from pbtlab.examples.toy import train_func
from pbtlab.loggers import _BatchedLogger
from pbtlab.loggers.offload import LoggerProcess
from pbtlab.rundir.store import RESULT_FILE, ExperimentStore, dumps, plain_snapshot

plain_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True), st.floats().map(np.float64))


@settings(max_examples=300, derandomize=True)
@given(st.dictionaries(st.text(max_size=6), st.one_of(plain_values, st.dictionaries(st.text(max_size=4), plain_values,
                                                                                      max_size=4)), max_size=8))
def test_a_snapshot_encodes_to_the_rows_own_line(row):
    snapshot = plain_snapshot(row)
    assert snapshot is not None and dumps(snapshot) == dumps(row)
    assert all(type(v) is not np.float64 for v in snapshot.values())


@pytest.mark.parametrize("value", [np.float32(0.5), np.int64(3), (1, 2), [1.0], {"a": {"b": 1}}, {1: 2}, object()])
def test_a_row_with_anything_else_gets_no_snapshot(value):
    assert plain_snapshot({"loss": 0.5, "x": value}) is None


class FakeWriter:
    """A RowWriter that writes in this process, and can die after writing part of what it was sent."""

    def __init__(self, dies_at_sync=None, half_line=False):
        self.kept = []
        self.syncs = 0
        self.dies_at_sync = dies_at_sync
        self.half_line = half_line
        self.alive = True

    def send_rows(self, batches):
        if not self.alive:
            raise OSError("gone")
        self.kept.extend(batches)

    def sync_rows(self):
        self.syncs += 1
        if self.syncs == self.dies_at_sync:
            self.alive = False
            path, items = self.kept[0]  # it got as far as part of the first file
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(dumps(items[0]) + "\n" + ('{"half": ' if self.half_line else ""))
            return False
        for path, items in self.kept:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("".join((i if isinstance(i, str) else dumps(i)) + "\n" for i in items))
        self.kept.clear()
        return True


def rows_of(trial, count, start=0):
    return [{"loss": np.float64(1 / (i + 1)), "i": i, "trial": trial, "config": {"lr": 0.1 * i}}
            for i in range(start, start + count)]


@pytest.mark.parametrize("dies_at_sync", [None, 1, 2])
@pytest.mark.parametrize("half_line", [False, True])
@pytest.mark.parametrize("taken_before", [0, 2])
def test_rows_the_writer_did_not_confirm_are_written_again_once_and_in_order(tmp_path, dies_at_sync, half_line,
                                                                               taken_before):
    """``taken_before``: rows of trial a buffered before the writer starts (a logger's first full batch starts it
    mid-run); they go to the writer with a's next rows."""
    store = ExperimentStore(str(tmp_path))
    for trial in ("a", "b"):
        store.add_trial(trial, {})
    store.SEND_ROWS = 3
    writer = FakeWriter(dies_at_sync, half_line)
    expected = {"a": [], "b": []}
    for row in rows_of("a", taken_before, start=100):
        store.append_result("a", row)
        expected["a"].append(dumps(row))
    store.write_rows_through(writer)
    for round_ in range(3):
        for trial in ("a", "b"):
            rows = rows_of(trial, 5, start=5 * round_)
            rows.append({"odd": np.float32(0.25), "i": -1})  # encoded at once, in its place
            for row in rows:
                store.append_result(trial, row)
                expected[trial].append(dumps(row))
        store.save_state({})
        state = json.load(open(tmp_path / "state.json"))
        for trial in ("a", "b"):
            lines = open(tmp_path / trial / RESULT_FILE, encoding="utf-8").read().splitlines()
            assert lines == expected[trial]  # every row once, in order, whatever the writer managed
            assert state["rows_written"][trial] == len(lines)
    assert (store._writer is None) == (dies_at_sync is not None)


def test_a_row_json_cannot_take_fails_at_its_report_with_the_writer_on(tmp_path):
    store = ExperimentStore(str(tmp_path))
    store.add_trial("a", {})
    store.write_rows_through(FakeWriter())
    with pytest.raises(ValueError, match="Circular reference"):  # as without the writer
        row = {"x": []}
        row["x"].append(row)
        store.append_result("a", row)


class Recorder(tune.Callback):
    def __init__(self):
        self.rows = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.rows.setdefault(trial.path, []).append((result["training_iteration"], result["Q"]))


def toy_tuner(storage, name, callbacks, iterations=60):
    return tune.Tuner(
        train_func,
        param_space={"lr": 0.05, "h0": tune.grid_search([0.0, 0.3, 0.6, 1.0]),
                     "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
                     "num_training_iterations": iterations, "checkpoint_interval": 4},
        tune_config=tune.TuneConfig(metric="Q", mode="max", seed=0, scheduler=toy_scheduler(4, True)),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), callbacks=callbacks,
                                  stop={"training_iteration": iterations}, verbose=0))


class KillHelper(Recorder):
    """Records each report, and SIGKILLs the loggers' helper at the ``at``-th."""

    def __init__(self, helpers, at):
        super().__init__()
        self.helpers, self.at, self.seen = helpers, at, 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        super().on_trial_result(iteration, trials, trial, result, **info)
        self.seen += 1
        if self.seen == self.at:
            os.kill(self.helpers[0].pid, signal.SIGKILL)


@pytest.fixture
def helpers(logger_helpers, monkeypatch):
    """The helpers started during the test; the helper writes rows (16 at a time) from a run of 4 trials."""
    monkeypatch.setenv("PBTLAB_ROW_WRITER", "1")
    monkeypatch.setattr(_BatchedLogger, "HELPER_FROM_TRIALS", 4)
    monkeypatch.setattr(ExperimentStore, "SEND_ROWS", 16)
    return logger_helpers


def file_rows(path):
    return [(r["training_iteration"], r["Q"]) for r in map(json.loads, open(os.path.join(path, RESULT_FILE)))]


@pytest.mark.skipif(sys.platform != "linux", reason="kills the helper by its pid")
def test_the_helper_killed_mid_run_loses_no_row_and_writes_none_twice(tmp_path, helpers, monkeypatch):
    killer = KillHelper(helpers, at=150)
    written_back = []
    write_back = ExperimentStore._write_back

    def recording_write_back(self):
        written_back.append(sum(len(items) for _, items in self._in_flight))
        write_back(self)

    monkeypatch.setattr(ExperimentStore, "_write_back", recording_write_back)
    with pytest.raises(CallbackError, match="helper process"):
        toy_tuner(tmp_path, "killed", [killer]).fit()
    (run,) = [os.path.join(tmp_path, "killed")]
    state = json.load(open(os.path.join(run, "state.json")))
    assert sum(len(rows) for rows in killer.rows.values()) >= 150
    assert written_back and written_back[0] > 0  # the store took over the rows the helper had not confirmed
    for path, seen in killer.rows.items():
        assert file_rows(path) == seen  # every reported row, once, in order
        assert state["rows_written"][os.path.basename(path)] <= len(seen)


def test_the_helpers_rows_are_the_rows_the_driver_writes(tmp_path, helpers, monkeypatch):
    """The same seeded run with the helper writing rows and with the driver writing them (the default): the same
    rows, the same decisions; only the wall-clock fields differ."""
    on = run_toy_pbt(population=4, seed=0, iterations=24, storage_path=str(tmp_path), name="on")
    assert len(helpers) == 1
    monkeypatch.delenv("PBTLAB_ROW_WRITER")
    off = run_toy_pbt(population=4, seed=0, iterations=24, storage_path=str(tmp_path), name="off")
    clock = {"time_this_iter_s", "time_total_s", "timestamp", "time_since_restore"}
    for a, b in zip(sorted(on, key=lambda r: r.trial_id), sorted(off, key=lambda r: r.trial_id)):
        rows_a = [json.loads(line) for line in open(os.path.join(a.path, RESULT_FILE))]
        rows_b = [json.loads(line) for line in open(os.path.join(b.path, RESULT_FILE))]
        assert len(rows_a) == 24 and [{k: v for k, v in r.items() if k not in clock | {"trial_id"}} for r in rows_a] \
            == [{k: v for k, v in r.items() if k not in clock | {"trial_id"}} for r in rows_b]
        assert not any(isinstance(v, float) and math.isnan(v) for r in rows_a for v in r.values())


@pytest.mark.parametrize("where", ["handing rows over", "waiting for the helper"])
def test_ctrl_c_while_talking_to_the_helper_keeps_every_row_and_the_run_resumes(tmp_path, helpers, monkeypatch, where):
    """Ctrl-C can cut a message to the helper, or its answer, short: the helper is ended, the store writes
    every row it had not confirmed, and the run resumes to the end with each row once."""
    from pbtlab.loggers import offload

    calls = []
    if where == "handing rows over":
        pickled = offload._pickled

        def interrupted(message):
            if type(message) is tuple and len(message) == 2 and type(message[0]) is list:  # (rows, held batches)
                calls.append(1)
                if len(calls) == 5:
                    raise KeyboardInterrupt
            return pickled(message)

        monkeypatch.setattr(offload, "_pickled", interrupted)
    else:
        acknowledged = LoggerProcess._acknowledged

        def interrupted(self):
            calls.append(1)
            if len(calls) == 2:
                self.send("sync", 10**6, channel=offload._ROWS)
                raise KeyboardInterrupt
            return acknowledged(self)

        monkeypatch.setattr(LoggerProcess, "_acknowledged", interrupted)
    recorder = Recorder()
    with pytest.raises(KeyboardInterrupt):
        toy_tuner(tmp_path, "interrupted", [recorder]).fit()
    assert len(helpers) == 1 and helpers[0]._interrupted
    with pytest.raises(ProcessLookupError):
        os.kill(helpers[0].pid, 0)  # ended and reaped
    run = os.path.join(tmp_path, "interrupted")
    state = json.load(open(os.path.join(run, "state.json")))
    for path, seen in recorder.rows.items():
        rows = file_rows(path)  # every row reported before Ctrl-C, once, in order (and the one it cut short)
        assert rows[:len(seen)] == seen and len(rows) - len(seen) in (0, 1)
        assert state["rows_written"][os.path.basename(path)] <= len(rows)
    monkeypatch.undo()
    results = tune.Tuner.restore(run, train_func).fit()
    assert sorted(r.metrics["training_iteration"] for r in results) == [60] * 4
    for result in results:
        assert [row[0] for row in file_rows(result.path)][-1] == 60


class HeldBatches(tune.Callback):
    """Records, at each report, how many logger batches wait in the helper's LoggerProcess."""

    def __init__(self, helpers):
        self.helpers, self.held = helpers, []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.helpers:
            self.held.append(len(self.helpers[0]._held))


def test_with_rows_in_the_driver_the_loggers_batches_wait_only_for_each_others(tmp_path, helpers, monkeypatch):
    """Without PBTLAB_ROW_WRITER=1 (the default) no rows go to the helper, so a file batch waits only for the other
    logger's batch (progress.csv's for TensorBoard's, or the reverse), never for rows."""
    monkeypatch.delenv("PBTLAB_ROW_WRITER")
    monkeypatch.setattr(_BatchedLogger, "FLUSH_ROWS", 16)
    monkeypatch.setattr(_BatchedLogger, "ROWS_PER_FILE", 1)
    watcher = HeldBatches(helpers)
    toy_tuner(tmp_path, "driver_rows", [watcher], iterations=24).fit()
    assert len(watcher.held) == 96 and set(watcher.held) == {0, 1}
    monkeypatch.setenv("PBTLAB_ROW_WRITER", "1")  # with the helper writing rows, batches wait for the next rows
    helpers.clear()
    watcher = HeldBatches(helpers)
    toy_tuner(tmp_path, "helper_rows", [watcher], iterations=24).fit()
    assert max(watcher.held) > 0


def test_a_row_whose_config_has_a_key_json_would_rename_is_not_handed_on_as_its_line(tmp_path):
    """``{True: 1.0}`` comes back from JSON as ``{"true": 1.0}``: the loggers flatten such a row themselves, so the
    helper's progress.csv has the column the driver's would (``config/True``)."""
    from pbtlab.loggers import flat_row, stored_row

    store = ExperimentStore(str(tmp_path))
    store.add_trial("a", {})
    for config, handed_on in (({"lr": 0.1}, True), ({True: 1.0}, False), ({"lr": np.float32(0.1)}, False)):
        row = {"loss": np.float64(0.5), "config": config}
        store.append_result("a", row)
        assert (stored_row(dict(row)) is not None) is handed_on
    assert list(flat_row({"config": {True: 1.0}})) == ["config/True"]


def test_the_loggers_batches_of_the_same_rows_go_in_one_message_that_holds_each_row_once(tmp_path, helpers,
                                                                                        monkeypatch):
    """progress.csv's and TensorBoard's batches are sent together: one pickle, in which the rows they share (the
    store's JSON lines) are written once, and which the helper carries out in order."""
    from pbtlab.loggers import offload

    monkeypatch.delenv("PBTLAB_ROW_WRITER")
    sent = []
    write = offload.LoggerProcess._write
    monkeypatch.setattr(offload.LoggerProcess, "_write",
                        lambda self, data, channel: (sent.append((channel, data)), write(self, data, channel))[1])
    results = toy_tuner(tmp_path, "one_message", [], iterations=24).fit()
    files = [pickle.loads(data) for channel, data in sent if channel != offload._ROWS]
    assert {channel for channel, _ in sent} == {offload._MANY}
    paired = [message for message in files if [op[0] for op in message] == ["csv", "tensorboard"]]
    assert paired, [[op[0] for op in message] for message in files]
    for message in paired:
        csv_rows = [row for _, _, _, rows in message[0][1] for row in rows]
        tensorboard_rows = [row for _, _, rows in message[1][1] for row in rows]
        assert csv_rows and all(type(row) is str for row in csv_rows)
        by_text = {row: row for row in tensorboard_rows}
        shared = [row for row in csv_rows if row in by_text]
        assert shared and all(by_text[row] is row for row in shared), "a line in both is pickled once: one object"
    assert [op[0] for message in files for op in message][-1] == "tensorboard_close"
    for result in results:  # every row reached both files
        assert len(open(os.path.join(result.path, "progress.csv")).readlines()) == 1 + 24


def test_a_helper_started_mid_run_gets_both_loggers_batches_of_the_same_rows(tmp_path, helpers, monkeypatch):
    """When the first full batch starts the helper (a run under HELPER_FROM_TRIALS trials), the other logger hands
    its batches over from that moment too: from the first message on, each holds progress.csv's and TensorBoard's
    batches of the same rows (which would otherwise stay one batch apart, and be pickled twice)."""
    from pbtlab.loggers import offload

    monkeypatch.delenv("PBTLAB_ROW_WRITER")
    monkeypatch.setattr(_BatchedLogger, "HELPER_FROM_TRIALS", 1000)
    monkeypatch.setattr(_BatchedLogger, "FLUSH_ROWS", 16)
    monkeypatch.setattr(_BatchedLogger, "ROWS_PER_FILE", 1)
    sent = []
    write = offload.LoggerProcess._write
    monkeypatch.setattr(offload.LoggerProcess, "_write",
                        lambda self, data, channel: (sent.append((channel, data)), write(self, data, channel))[1])
    results = toy_tuner(tmp_path, "mid_run", [], iterations=24).fit()
    messages = [pickle.loads(data) for channel, data in sent if channel == offload._MANY]
    during = [message for message in messages if [op[0] for op in message] == ["csv", "tensorboard"]]
    assert len(during) >= 2 and messages[0] == during[0]  # the very first message already holds both
    for message in during:
        csv_rows = [row for _, _, _, rows in message[0][1] for row in rows]
        tensorboard_rows = [row for _, _, rows in message[1][1] for row in rows]
        # the same rows (lines, or copies of the rows taken before the helper started), each one object
        assert len(csv_rows) == len(tensorboard_rows) and all(a is b for a, b in zip(csv_rows, tensorboard_rows))
    for result in results:
        assert len(open(os.path.join(result.path, "progress.csv")).readlines()) == 1 + 24
