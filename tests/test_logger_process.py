"""The helper process that writes progress.csv and TensorBoard files for large runs (pbtlab.loggers.offload)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pbtlab import tune
from pbtlab.errors import CallbackError
from pbtlab.examples.runs import run_toy_pbt, toy_scheduler
from pbtlab.examples.toy import train_func
from pbtlab.loggers import _BatchedLogger, add_tensorboard_rows, append_csv, flat_row, tensorboardx_available
from pbtlab.loggers._tbx import EventFileWriter
from pbtlab.loggers.offload import LoggerProcess

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="checks processes through /proc")


class Recorder(tune.Callback):
    """What the default loggers receive for each report: its flat row, step and time."""

    def __init__(self):
        self.rows = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.rows.setdefault(trial.path, []).append(
            (int(result["training_iteration"]), float(result["timestamp"]), dict(flat_row(result))))


@pytest.fixture
def helpers(logger_helpers):
    """Every LoggerProcess that started a helper during the test."""
    return logger_helpers


def records(path):
    """The TFRecord payloads of an event file, after the first (file_version: it holds the file's creation time)."""
    data, out, position = open(path, "rb").read(), [], 0
    while position < len(data):
        (length,) = struct.unpack("<Q", data[position:position + 8])
        out.append(data[position + 12:position + 12 + length])
        position += 16 + length
    return out[1:]


def expected_files(rows, folder):
    """progress.csv and the event file that the driver itself writes for ``rows``, in ``folder``."""
    os.makedirs(folder)
    flat = [row for _, _, row in rows]
    append_csv(str(folder), list(flat[0]), True, flat)
    writer = EventFileWriter(os.path.join(folder, "events"))
    add_tensorboard_rows(writer, rows)
    writer.close()
    return open(os.path.join(folder, "progress.csv"), "rb").read(), records(writer.path)


def toy_tuner(storage, name, h0s, iterations, callbacks, scheduler=None):
    """The tutorial's trainable on ``h0s`` (lr 0.05), ``iterations`` reports per trial, a checkpoint every 4."""
    return tune.Tuner(
        train_func,
        param_space={"lr": 0.05, "h0": tune.grid_search(h0s),
                     "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
                     "num_training_iterations": iterations, "checkpoint_interval": 4},
        tune_config=tune.TuneConfig(metric="Q", mode="max", seed=0, scheduler=scheduler),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), callbacks=callbacks,
                                  stop={"training_iteration": iterations}, verbose=0),
    )


@pytest.mark.parametrize("start", ["at the start", "at the first full batch"])
def test_the_helper_writes_the_bytes_the_driver_would(tmp_path, monkeypatch, helpers, start):
    if start == "at the start":
        monkeypatch.setattr(_BatchedLogger, "HELPER_FROM_TRIALS", 8)
    else:  # rows before the switch go as flat rows, after it as result.jsonl lines
        monkeypatch.setattr(_BatchedLogger, "FLUSH_ROWS", 40)
        monkeypatch.setattr(_BatchedLogger, "ROWS_PER_FILE", 4)
    recorder = Recorder()
    run = toy_tuner(tmp_path / "runs", "checked", [i / 7 for i in range(8)], 24, [recorder],
                    scheduler=toy_scheduler(4, True)).fit()
    assert len(helpers) == 1 and not helpers[0].started  # one, ended with the run
    assert sorted(recorder.rows) == sorted(r.path for r in run)
    for index, (directory, rows) in enumerate(sorted(recorder.rows.items())):
        assert len(rows) == 24
        csv_bytes, events = expected_files(rows, tmp_path / f"expected{index}")
        assert open(os.path.join(directory, "progress.csv"), "rb").read() == csv_bytes
        if tensorboardx_available():
            (name,) = [n for n in os.listdir(directory) if n.startswith("events.out.tfevents.")]
            assert records(os.path.join(directory, name)) == events


def test_the_helper_ends_with_the_run_and_is_not_started_when_switched_off(tmp_path, monkeypatch, helpers):
    monkeypatch.setattr(_BatchedLogger, "HELPER_FROM_TRIALS", 4)
    run_toy_pbt(population=4, seed=0, iterations=8, storage_path=str(tmp_path), name="on")
    assert len(helpers) == 1
    with pytest.raises(ProcessLookupError):  # waited for and reaped
        os.kill(helpers[0].pid, 0)
    monkeypatch.setenv("PBTLAB_LOGGER_PROCESS", "0")
    run = run_toy_pbt(population=4, seed=0, iterations=8, storage_path=str(tmp_path), name="off")
    assert len(helpers) == 1  # none started
    for result in run:
        assert len(open(os.path.join(result.path, "progress.csv")).read().splitlines()) == 9


class BreakProgressCsv(tune.Callback):
    """Makes one trial's progress.csv a folder, so appending to it fails (as a full disk would)."""

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id.endswith("00002"):
            os.makedirs(os.path.join(trial.path, "progress.csv"), exist_ok=True)


def test_an_error_in_the_helper_stops_the_run_and_says_what_failed(tmp_path, monkeypatch, helpers):
    monkeypatch.setattr(_BatchedLogger, "HELPER_FROM_TRIALS", 4)
    tuner = toy_tuner(tmp_path, "broken", [0.0, 0.3, 0.6, 1.0], 8, [BreakProgressCsv()])
    with pytest.raises(CallbackError, match="IsADirectoryError"):
        tuner.fit()
    assert not helpers[0].started
    run_dir = os.path.join(tmp_path, "broken")
    for trial in sorted(os.listdir(run_dir)):
        jsonl = os.path.join(run_dir, trial, "result.jsonl")
        if os.path.isfile(jsonl):  # every row is kept
            assert len(open(jsonl).read().splitlines()) == 8


DRIVER = """
import os, sys, time
from pbtlab import tune
from pbtlab.loggers import _BatchedLogger
from pbtlab.loggers.offload import LoggerProcess

_BatchedLogger.HELPER_FROM_TRIALS = 2
use = LoggerProcess.use
def recording_use(self):
    ok = use(self)
    with open({pid_file!r}, "w") as handle:
        handle.write(str(self.pid))
    return ok
LoggerProcess.use = recording_use

def forever(config):
    while True:
        time.sleep(0.001)
        tune.report({{"x": 1.0}})

tune.Tuner(forever, param_space={{"a": tune.grid_search([1, 2])}},
           run_config=tune.RunConfig(storage_path={storage!r}, verbose=0)).fit()
"""


def test_the_helper_exits_when_the_driver_is_killed(tmp_path, helpers):
    pid_file = tmp_path / "helper.pid"
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER).format(
        pid_file=str(pid_file), storage=str(tmp_path / "runs"))])
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and driver.poll() is None, "the driver never started a helper"
            time.sleep(0.05)
        helper = int(pid_file.read_text())
        time.sleep(0.5)  # rows flow
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{helper}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":  # exited; its new parent has not reaped it yet
            break
        time.sleep(0.05)
    else:
        os.kill(helper, signal.SIGKILL)
        pytest.fail("the helper outlived its driver by 30 s")


def test_the_helper_ends_even_while_a_process_forked_from_the_driver_holds_its_pipe(tmp_path, helpers):
    """A forked process (a process executor's worker, a DataLoader's) inherits the pipe: the run's end must not
    wait for it to exit."""
    helper = LoggerProcess()
    assert helper.use()
    child = os.fork()
    if child == 0:  # holds the pipe's write end open
        time.sleep(60)
        os._exit(0)
    try:
        helper.send_csv([(str(tmp_path), ["a", "b"], True, [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])])
        ending = threading.Thread(target=helper.release)
        ending.start()
        ending.join(15)
        assert not ending.is_alive(), "the helper waited for the forked process to close the pipe"
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert open(tmp_path / "progress.csv", newline="").read() == "a,b\r\n1,x\r\n2,y\r\n"
    with pytest.raises(ProcessLookupError):
        os.kill(helper.pid, 0)


class StopAt(tune.Callback):
    """Raises at the run's ``count``-th report: the run stops with its last consistent state kept."""

    def __init__(self, count):
        self.count, self.seen = count, 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen += 1
        if self.seen == self.count:
            raise RuntimeError("stopped here")


def test_a_resumed_run_continues_the_helpers_files_from_the_kept_rows(tmp_path, monkeypatch, helpers):
    monkeypatch.setattr(_BatchedLogger, "HELPER_FROM_TRIALS", 4)
    tuner = toy_tuner(tmp_path, "resumed", [0.0, 0.3, 0.6, 1.0], 12, [StopAt(30)], scheduler=toy_scheduler(4, True))
    with pytest.raises(CallbackError, match="stopped here"):
        tuner.fit()
    again = tune.Tuner.restore(str(tmp_path / "resumed"), train_func).fit()
    assert len(helpers) == 2 and not any(h.started for h in helpers)  # one per fit, both ended
    for result in again:
        rows = result.history()
        assert [r["training_iteration"] for r in rows] == list(range(1, 13))
        with open(os.path.join(result.path, "progress.csv"), newline="") as handle:
            lines = handle.read().splitlines()
        assert len(lines) == 13 and lines[0].startswith("Q,theta0,theta1")
        assert [float(line.split(",")[0]) for line in lines[1:]] == [r["Q"] for r in rows]


def test_the_pipe_holds_a_whole_batch_and_a_batch_larger_than_the_default_pipe_is_written_whole(tmp_path, helpers):
    """The driver's end of the pipe is widened to PIPE_BYTES (Linux: 64 KiB by default), so a flush's batch is
    handed over while the helper is still busy with the previous one; what arrives is written as sent."""
    import fcntl

    from pbtlab.loggers import offload

    (tmp_path / "a").mkdir()
    helper = LoggerProcess()
    assert helper.use()
    pipe = helper._process.stdin
    try:
        with open("/proc/sys/fs/pipe-max-size") as handle:
            allowed = int(handle.read())
        expected = offload.PIPE_BYTES if offload.PIPE_BYTES <= allowed or os.geteuid() == 0 else 65536
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == expected
        rows = [{"step": i, "loss": 1 / (i + 1), "name": "x" * 200} for i in range(2000)]  # ~500 KB pickled
        helper.send_csv([(str(tmp_path / "a"), ["step", "loss", "name"], True, rows)])
    finally:
        helper.release()
    append_csv(str(tmp_path), ["step", "loss", "name"], True, rows)
    assert open(tmp_path / "a" / "progress.csv", "rb").read() == open(tmp_path / "progress.csv", "rb").read()


@pytest.mark.parametrize("start", ["at the start", "at the first full batch"])
def test_the_helper_fed_by_the_store_writes_the_bytes_the_driver_would_for_the_rows(tmp_path, monkeypatch, helpers,
                                                                                     start):
    """No callback hears each result: the loggers take the store's lines, and the helper reads each line once for
    both files (its floats as their text). The files are what the driver writes for the rows read back."""
    import json

    from pbtlab.loggers import CSVLoggerCallback
    from pbtlab.nested import flatten

    if start == "at the start":
        monkeypatch.setattr(_BatchedLogger, "HELPER_FROM_TRIALS", 8)
    else:
        monkeypatch.setattr(_BatchedLogger, "FLUSH_ROWS", 40)
        monkeypatch.setattr(_BatchedLogger, "ROWS_PER_FILE", 4)
    heard = []
    monkeypatch.setattr(CSVLoggerCallback, "on_trial_result", lambda self, *a, **k: heard.append(1))
    run = toy_tuner(tmp_path / "runs", "fed", [i / 7 for i in range(8)], 24, None,
                    scheduler=toy_scheduler(4, True)).fit()
    assert heard == [] and len(helpers) == 1 and not helpers[0].started
    for index, result in enumerate(sorted(run, key=lambda r: r.path)):
        with open(os.path.join(result.path, "result.jsonl"), encoding="utf-8") as handle:
            read_back = [flatten(json.loads(line)) for line in handle]
        assert len(read_back) == 24
        rows = [(int(r["training_iteration"]), float(r["timestamp"]), r) for r in read_back]
        csv_bytes, events = expected_files(rows, tmp_path / f"expected{index}")
        assert open(os.path.join(result.path, "progress.csv"), "rb").read() == csv_bytes
        if tensorboardx_available():
            (name,) = [n for n in os.listdir(result.path) if n.startswith("events.out.tfevents.")]
            assert records(os.path.join(result.path, name)) == events
