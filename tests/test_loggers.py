"""The files Ray writes per trial: result.json, progress.csv, TensorBoard events; rebuilt on resume."""

from __future__ import annotations

import csv
import os
import struct

import pytest

from pbtlab.examples.runs import run_toy_pbt
from pbtlab.loggers import tensorboardx_available
from pbtlab.tuner import Tuner


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_toy_pbt(population=2, seed=0, iterations=12, storage_path=str(tmp_path_factory.mktemp("r")),
                       name="run")


def test_result_json_has_the_same_rows_as_result_jsonl(run):
    for result in run:
        with open(os.path.join(result.path, "result.json"), encoding="utf-8") as a, \
                open(os.path.join(result.path, "result.jsonl"), encoding="utf-8") as b:
            assert a.read() == b.read()
        assert len(result.history()) == 12


def test_progress_csv_has_a_row_per_report_with_flattened_config(run):
    for result in run:
        with open(os.path.join(result.path, "progress.csv"), encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [int(r["training_iteration"]) for r in rows] == list(range(1, 13))
        assert [float(r["Q"]) for r in rows] == [row["Q"] for row in result.history()]
        assert [float(r["config/lr"]) for r in rows] == [row["config"]["lr"] for row in result.history()]


def tensorboard_scalars(directory):
    """Read TensorBoard scalars back from the event file (TFRecord framing, Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    (name,) = [n for n in os.listdir(directory) if n.startswith("events.out.tfevents.")]
    values = {}
    with open(os.path.join(directory, name), "rb") as handle:
        data = handle.read()
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        event = Event.FromString(data[offset + 12:offset + 12 + length])
        offset += 12 + length + 4
        for value in event.summary.value:
            values.setdefault(value.tag, []).append((event.step, value.simple_value))
    return values


@pytest.mark.skipif(not tensorboardx_available(), reason="tensorboardX is not installed")
def test_tensorboard_has_every_trials_metric_per_iteration(run):
    for result in run:
        scalars = tensorboard_scalars(result.path)
        assert [step for step, _ in scalars["ray/tune/Q"]] == list(range(1, 13))
        assert [v for _, v in scalars["ray/tune/Q"]] == pytest.approx([r["Q"] for r in result.history()], rel=1e-6)


def test_files_are_rebuilt_from_the_kept_rows_on_resume(tmp_path):
    results = run_toy_pbt(population=2, seed=0, iterations=8, storage_path=str(tmp_path), name="run")
    path = results.experiment_path
    for result in results:  # as if the driver died after writing more than the saved state holds
        with open(os.path.join(result.path, "progress.csv"), "a", encoding="utf-8") as handle:
            handle.write("garbage,row\n")
    from pbtlab.examples.toy import train_func

    again = Tuner.restore(path, train_func).fit()
    for result in again:
        with open(os.path.join(result.path, "progress.csv"), encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [int(r["training_iteration"]) for r in rows] == list(range(1, 9))


@pytest.mark.skipif(not tensorboardx_available(), reason="tensorboardX is not installed")
def test_lineage_curves_follow_the_ancestry_across_exploits(run, tmp_path, capsys):
    from pbtlab.analysis.lineage import ancestry, run_data
    from pbtlab.cli import main

    data = run_data(run)
    rows = {t.trial_id: t.rows for t in data.trials}
    assert main(["tensorboard", run.experiment_path, "-o", str(tmp_path / "tb")]) == 0
    assert sorted(os.listdir(tmp_path / "tb")) == sorted(r.trial_id for r in run)
    assert "tensorboard --logdir" in capsys.readouterr().out
    for result in run:
        scalars = tensorboard_scalars(str(tmp_path / "tb" / result.trial_id))
        expected = [row["Q"] for span in ancestry(data, result.trial_id)
                    for row in rows[span.trial_id][span.first_row:span.last_row + 1]]
        assert [v for _, v in scalars["lineage/Q"]] == pytest.approx(expected, rel=1e-6)
        assert [step for step, _ in scalars["lineage/Q"]] == list(range(1, 13))
        assert "lineage/config/lr" in scalars
    owners = [{s.trial_id for s in ancestry(data, r.trial_id)} for r in run]
    assert max(len(o) for o in owners) == 2  # a curve really switches trials at an exploit


@pytest.mark.skipif(not tensorboardx_available(), reason="tensorboardX is not installed")
def test_event_files_have_tensorboardx_bytes(tmp_path, monkeypatch):
    """pbtlab.loggers._tbx writes, byte for byte, what tensorboardX's EventsWriter writes for the same events:
    zero and negative steps, zero wall time, floats beyond float32, NaN, infinities, unicode tags,
    an empty summary, and enough records of one length to take the vectorized CRC path."""
    import time

    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary

    from pbtlab.loggers._tbx import EventFileWriter

    monkeypatch.setattr(time, "time", lambda: 1700000000.25)
    events = [(0, 0.0, []), (-3, 12.5, [("a", 1.0)]), (1, 1e9, [("ray/tune/Q", 0.5), ("lr", -0.0)]),
              (2 ** 40, 3.0, [("x", 1e39), ("y", -1e39), ("z", float("nan")), ("w", float("inf")), ("ü/v", 1e-50)])]
    events += [(step, 1700000000.0 + step, [("ray/tune/Q", step / 7), ("ray/tune/theta0", -step / 3)])
               for step in range(1, 40)]
    (tmp_path / "theirs").mkdir()
    theirs = EventsWriter(str(tmp_path / "theirs" / "events"))
    for step, wall_time, values in events:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values])
        theirs.write_event(Event(wall_time=wall_time, step=step, summary=summary))
    theirs.close()
    ours = EventFileWriter(str(tmp_path / "ours" / "events"))
    for step, wall_time, values in events[:5]:
        ours.add_scalars(step, wall_time, values)
    ours.flush()  # two batches: the file is the same however it is flushed
    for step, wall_time, values in events[5:]:
        ours.add_scalars(step, wall_time, values)
    ours.close()
    rows = EventFileWriter(str(tmp_path / "rows" / "events"))  # the logger's path: tags shared by rows
    for step, wall_time, values in events:
        rows.add_row(step, wall_time, tuple(tag for tag, _ in values), [value for _, value in values])
    rows.close()
    (their_name,) = os.listdir(tmp_path / "theirs")
    expected = (tmp_path / "theirs" / their_name).read_bytes()
    for folder in ("ours", "rows"):
        (our_name,) = os.listdir(tmp_path / folder)
        assert our_name == their_name
        assert (tmp_path / folder / our_name).read_bytes() == expected


MANY_TRIALS = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from pbtlab import tune
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.tuner import Tuner

def train(config):
    for step in range(3):
        print(f"trial {config['x']} step {step}")
        tune.report({"score": config["x"] * step})

Tuner(train, param_space={"x": tune.grid_search(list(range(300)))}, tune_config=TuneConfig(metric="score", mode="max"),
      run_config=RunConfig(storage_path=sys.argv[1], name="many", verbose=0, log_to_file=True)).fit()
"""


def test_a_population_larger_than_the_open_file_limit_keeps_every_file(tmp_path):
    """300 trials, each with a TensorBoard file and a stdout log, under a limit of 256 open files (macOS's
    default): no file stays open between writes, so the run finishes and every file is complete."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", MANY_TRIALS, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    trial_dirs = [entry for entry in os.scandir(tmp_path / "many") if entry.is_dir()]
    assert len(trial_dirs) == 300
    for entry in trial_dirs:
        names = os.listdir(entry.path)
        with open(os.path.join(entry.path, "stdout"), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        assert len(lines) == 3 and lines[0].endswith("step 0") and lines[2].endswith("step 2"), lines
        with open(os.path.join(entry.path, "progress.csv"), encoding="utf-8", newline="") as handle:
            assert len(list(csv.DictReader(handle))) == 3
        if tensorboardx_available():
            (events,) = [n for n in names if n.startswith("events.out.tfevents.")]
            assert os.path.getsize(os.path.join(entry.path, events)) > 0


def test_event_file_names_carry_the_host_name_as_tensorboardx_does(tmp_path):
    import socket

    from pbtlab.loggers._tbx import EventFileWriter

    writer = EventFileWriter(str(tmp_path / "events"))
    assert writer.path.endswith(f".{socket.gethostname()}")


def test_result_json_is_linked_once_per_trial_and_copied_once_where_links_fail(tmp_path, monkeypatch):
    """A restart (every exploit) does not check or link result.json again; where the file system has no hard
    links, each trial's result.json is copied once, at the end, with every row."""
    calls = []

    def no_links(source, target):
        calls.append(target)
        raise OSError("no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    run = run_toy_pbt(population=2, seed=0, iterations=12, storage_path=str(tmp_path), name="nolinks")
    assert len(run.events_of("trial_restore")) > 0  # exploits restarted trials
    assert sorted(calls) == sorted(os.path.join(r.path, "result.json") for r in run)
    for result in run:
        with open(os.path.join(result.path, "result.json"), encoding="utf-8") as a, \
                open(os.path.join(result.path, "result.jsonl"), encoding="utf-8") as b:
            assert a.read() == b.read()
        assert os.stat(os.path.join(result.path, "result.json")).st_ino != \
            os.stat(os.path.join(result.path, "result.jsonl")).st_ino


def test_checksums_are_the_same_with_google_crc32c_and_with_numpy(monkeypatch):
    """TensorBoard's record checksums: google-crc32c's C code where installed (the test extra installs it), numpy
    otherwise; both give CRC-32C's check value and the same checksum for every record, whatever its length."""
    import random

    from pbtlab.loggers import _tbx

    assert _tbx.native_crc32c() is not None  # the [tensorboard] extra brings it
    generator = random.Random(0)
    records = [b"123456789"] + [generator.randbytes(generator.choice([0, 1, 7, 8, 64, 300, 301]))
                                for _ in range(200)]
    native = _tbx._crc32c_many(records)
    monkeypatch.setattr(_tbx, "native_crc32c", lambda: None)
    assert _tbx._crc32c_many(records) == native == [_tbx.crc32c(record) for record in records]
    assert native[0] == 0xE3069283  # CRC-32C("123456789")


def _odd_values_trainable(config):
    """Reports values whose JSON line does not read back the same (float32, int64, a tuple, a bool key), and plain ones."""
    import numpy as np

    from pbtlab import tune

    for step in range(1, 6):
        metrics = {"loss": 1.0 / step, "acc": np.float32(0.1) * step, "pair": (step, 2.5), "eval": {"x": step}}
        if step % 2:
            metrics["count"] = np.int64(step)
            metrics["flags"] = {True: 1}
        tune.report(metrics)


class _HearsResults:
    def __init__(self):
        self.results = 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results += 1


def _logged(tmp_path, name, callbacks):
    from pbtlab import tune
    from pbtlab.config import RunConfig, TuneConfig

    grid = Tuner(_odd_values_trainable, param_space={"lr": tune.grid_search([0.1, 0.2])},
                 tune_config=TuneConfig(metric="loss", mode="min", seed=0),
                 run_config=RunConfig(name=name, storage_path=str(tmp_path), callbacks=callbacks, verbose=0)).fit()
    files = {}
    for result in grid:
        trial = os.path.basename(result.path)
        with open(os.path.join(result.path, "progress.csv"), encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        timing = [i for i, column in enumerate(rows[0]) if column.startswith("time") or column in ("timestamp", "trial_id")]
        files[trial[-5:], "csv"] = [[c for i, c in enumerate(row) if i not in timing] for row in rows]
        if tensorboardx_available():
            scalars = tensorboard_scalars(result.path)
            files[trial[-5:], "tensorboard"] = {tag: [step for step, _ in v] if "time" in tag else v
                                                for tag, v in scalars.items()}
    return files


def test_default_loggers_write_the_same_files_from_the_stores_rows_as_from_each_result(tmp_path, monkeypatch):
    """With no other callback that hears each result, the default loggers take the rows the store writes instead of a
    call per report; a row whose line reads back differently is taken as reported. The files are the same."""
    from pbtlab.loggers import CSVLoggerCallback, TBXLoggerCallback

    calls = []
    for cls in (CSVLoggerCallback, TBXLoggerCallback):
        original = cls.on_trial_result
        monkeypatch.setattr(cls, "on_trial_result",
                            lambda self, *a, _original=original, **k: (calls.append(type(self)), _original(self, *a, **k)))
    from_store = _logged(tmp_path, "from_store", None)
    assert calls == []
    hears = _HearsResults()
    per_report = _logged(tmp_path, "per_report", [hears])
    assert hears.results == 10 and calls.count(CSVLoggerCallback) == 10
    assert from_store == per_report
    csv_rows = from_store["00000", "csv"]
    header, first, second = csv_rows[0], csv_rows[1], csv_rows[2]
    assert header[:6] == ["loss", "acc", "pair", "eval/x", "count", "flags/True"]
    assert first[:6] == ["1.0", "0.1", "[1, 2.5]", "1", "1", "1"]  # float32 as str() writes it, not 0.10000000149...
    assert second[:6] == ["0.5", "0.2", "[2, 2.5]", "2", "", ""]
