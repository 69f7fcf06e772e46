"""``InProcessExecutor(greenlets=True)``: trials as greenlets of the driver's thread decide and record exactly
what trials as threads do, keep their own sessions and output files, and pass Ctrl-C to the driver."""

from __future__ import annotations

import json
import os
import sys

import greenlet  # noqa: F401 - pbtlab[test] installs it (pbtlab[fast]): these tests must not skip
import pytest

from pbtlab import tune
from pbtlab.config import FailureConfig, RunConfig
from pbtlab.errors import ConfigError
from pbtlab.examples.runs import run_toy_pbt
from pbtlab.executors.inprocess import InProcessExecutor
from pbtlab.tuner import Tuner
from test_executor_determinism import summary


def test_async_and_sync_pbt_decide_and_record_the_same_as_threads(tmp_path):
    for synch in (True, False):
        runs = {}
        for greenlets in (False, True):
            runs[greenlets] = summary(run_toy_pbt(
                population=4, seed=3, iterations=24, synch=synch, storage_path=str(tmp_path),
                name=f"toy_{synch}_{greenlets}", executor=InProcessExecutor(greenlets=greenlets)))
        assert runs[True] == runs[False]
        assert runs[True]["decisions"]  # PBT exploited: restarts inside greenlets were exercised


def each_trial_sees_its_own_session(config):
    for step in range(3):
        print(f"trial {config['index']} step {step}")
        tune.report({"step": step, "index_seen": config["index"],
                     "id_seen": tune.get_context().get_trial_id()})


def test_each_trial_keeps_its_own_session_and_output_file(tmp_path):
    results = Tuner(each_trial_sees_its_own_session, param_space={"index": tune.grid_search([0, 1, 2])},
                    run_config=RunConfig(storage_path=str(tmp_path), name="own", verbose=0, log_to_file=True,
                                         executor=InProcessExecutor(greenlets=True))).fit()
    assert not results.errors
    for result in results:
        rows = result.history()
        assert [row["id_seen"] for row in rows] == [result.trial_id] * 3
        assert {row["index_seen"] for row in rows} == {result.config["index"]}
        with open(os.path.join(result.path, "stdout")) as handle:
            assert handle.read() == "".join(f"trial {result.config['index']} step {s}\n" for s in range(3))


def fails_once(config):
    checkpoint = tune.get_checkpoint()
    start = 0 if checkpoint is None else json.load(open(os.path.join(checkpoint.path, "step.json")))
    for step in range(start + 1, 6):
        if step == 3 and checkpoint is None:
            raise ValueError("boom at step 3")
        scratch = os.path.join(tune.get_context().get_trial_dir(), "scratch")
        os.makedirs(scratch, exist_ok=True)
        with open(os.path.join(scratch, "step.json"), "w") as handle:
            json.dump(step, handle)
        tune.report({"step": step}, checkpoint=tune.Checkpoint.from_directory(scratch))


def test_a_failing_trial_is_retried_from_its_checkpoint(tmp_path):
    results = Tuner(fails_once, param_space={"x": 1},
                    run_config=RunConfig(storage_path=str(tmp_path), name="retry", verbose=0,
                                         failure_config=FailureConfig(max_failures=1),
                                         executor=InProcessExecutor(greenlets=True))).fit()
    (result,) = results
    assert result.status == "TERMINATED"
    assert [row["step"] for row in result.history()] == [1, 2, 3, 4, 5]
    (error,) = results.events_of("trial_error")
    assert "boom at step 3" in error["message"]


def interrupted(config):
    for step in range(10):
        if step == 2 and config["index"] == 1:
            raise KeyboardInterrupt  # what Ctrl-C raises in whatever code the thread is running
        tune.report({"step": step})


def test_ctrl_c_inside_a_trial_stops_the_run_instead_of_failing_the_trial(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        Tuner(interrupted, param_space={"index": tune.grid_search([0, 1])},
              run_config=RunConfig(storage_path=str(tmp_path), name="ctrl_c", verbose=0,
                                   failure_config=FailureConfig(max_failures=3),
                                   executor=InProcessExecutor(greenlets=True))).fit()
    run = os.path.join(str(tmp_path), "ctrl_c")
    with open(os.path.join(run, "events.jsonl")) as handle:
        events = [json.loads(line)["event"] for line in handle]
    assert "trial_error" not in events  # not a trial's failure, and not retried
    assert Tuner.can_restore(run)


def test_bad_greenlets_argument_and_missing_package_are_clear(monkeypatch):
    with pytest.raises(ConfigError, match=r"InProcessExecutor\(greenlets=\.\.\.\) must be True or False, got 'yes'"):
        InProcessExecutor(greenlets="yes")
    monkeypatch.setitem(sys.modules, "greenlet", None)
    with pytest.raises(ImportError, match=r"pip install 'pbtlab\[fast\]'"):
        InProcessExecutor(greenlets=True)


ATTEMPTS: list[str] = []


def notes_its_thread(config):
    import threading

    ATTEMPTS.append(threading.current_thread().name)
    start = len(ATTEMPTS) == 1
    for step in range(1, 5):
        if start and step == 3:
            raise RuntimeError("stops the first attempt")
        tune.report({"step": step, "thread": threading.current_thread().name})


def test_the_executor_by_name_is_recorded_and_a_resume_rebuilds_it(tmp_path):
    ATTEMPTS.clear()
    results = Tuner(notes_its_thread, param_space={"x": 1},
                    run_config=RunConfig(storage_path=str(tmp_path), name="named", verbose=0,
                                         executor="greenlets")).fit()
    assert results[0].status == "ERROR"
    run = os.path.join(str(tmp_path), "named")
    with open(os.path.join(run, "experiment.json")) as handle:
        assert json.load(handle)["executor"] == "greenlets"
    results = Tuner.restore(run, notes_its_thread, resume_errored=True).fit()
    assert results[0].status == "TERMINATED"
    # Greenlets run on the thread that called fit(); the default executor gives each trial a thread.
    assert ATTEMPTS == ["MainThread", "MainThread"]
    assert {row["thread"] for row in results[0].history()} == {"MainThread"}


def test_the_cli_runs_the_tutorial_on_greenlets(tmp_path, capsys):
    from pbtlab.cli import main

    assert main(["toy", "--population", "2", "--iterations", "8", "--storage", str(tmp_path), "--name", "cli",
                 "--executor", "greenlets", "--quiet"]) == 0
    with open(os.path.join(str(tmp_path), "cli", "experiment.json")) as handle:
        assert json.load(handle)["executor"] == "greenlets"
    assert "Results in" in capsys.readouterr().out


AFTER_REPORT: dict[int, list[bool]] = {}


def reports_under_no_grad(config):
    import torch

    for step in range(4):
        before = torch.is_grad_enabled()
        if config["index"] == 0:
            with torch.no_grad():
                tune.report({"step": step, "grad_before": before, "grad_after": torch.is_grad_enabled()})
                AFTER_REPORT.setdefault(0, []).append(torch.is_grad_enabled())  # back from the driver
        else:
            tune.report({"step": step, "grad_before": before, "grad_after": torch.is_grad_enabled()})
            AFTER_REPORT.setdefault(1, []).append(torch.is_grad_enabled())


def test_pytorch_grad_mode_stays_with_its_trial_as_with_threads(tmp_path):
    import torch  # noqa: F401 - pbtlab[test] installs it; the trials import it too

    AFTER_REPORT.clear()
    results = Tuner(reports_under_no_grad, param_space={"index": tune.grid_search([0, 1])},
                    run_config=RunConfig(storage_path=str(tmp_path), name="grad", verbose=0,
                                         executor="greenlets")).fit()
    rows = {r.config["index"]: r.history() for r in results}
    assert [(row["grad_before"], row["grad_after"]) for row in rows[0]] == [(True, False)] * 4
    assert [(row["grad_before"], row["grad_after"]) for row in rows[1]] == [(True, True)] * 4
    assert AFTER_REPORT == {0: [False] * 4, 1: [True] * 4}
