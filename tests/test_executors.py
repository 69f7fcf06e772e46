"""One conformance suite for every executor: the same trainables, the same checks.

"inprocess", "process" and "ray" must all: run trials to their stop criterion, restart an exploited
trial in place (same worker, the donor's checkpoint, the new config), retry failed trials from their
latest checkpoint, record errors, stop on request, run asynchronous PBT, answer SAVE (with and
without a save hook), and refuse a wait() with nothing running. Ray runs on one local instance per
module (num_cpus=2), shut down at the end. The trainables live in ``executor_trainables.py``.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from executor_trainables import counting_trainable, saving_trainable

from pbtlab import tune
from pbtlab.config import FailureConfig, RunConfig, TuneConfig
from pbtlab.errors import ConfigError, ExecutorError
from pbtlab.executors.base import make_executor
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.session import (
    CONTINUE,
    SAVE,
    STOP,
    Command,
    CommandKind,
    FinishedMessage,
    SavedMessage,
    StartSpec,
)
from pbtlab.tuner import Stopper, Tuner

EXECUTORS = ["inprocess", "process", pytest.param("ray", marks=pytest.mark.ray)]


@pytest.fixture(params=EXECUTORS)
def executor(request):
    if request.param == "ray":
        request.getfixturevalue("ray_runtime")
    return request.param


def rows(results, trial_id):
    return results.trial(trial_id).history()


def run(executor, storage, trainable=counting_trainable, *, param_space, scheduler=None, stop=None,
        max_failures=0, seed=0, max_concurrent=None, name="exp"):
    return Tuner(
        trainable, param_space=param_space,
        tune_config=TuneConfig(metric="score", mode="max", seed=seed, scheduler=scheduler,
                               max_concurrent_trials=max_concurrent),
        run_config=RunConfig(name=name, storage_path=storage, stop=stop, verbose=0, executor=executor,
                             failure_config=FailureConfig(max_failures=max_failures)),
    ).fit()


def pbt(synch=True, interval=4):
    return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=interval,
                                   quantile_fraction=0.5, synch=synch,
                                   hyperparam_mutations={"rate": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})


# -- plain runs ----------------------------------------------------------------------------------------
def test_trials_run_to_their_stop_criterion(executor, storage):
    results = run(executor, storage, param_space={"rate": tune.grid_search([1.0, 2.0, 3.0])},
                  stop={"training_iteration": 5})
    assert [r.status for r in results] == ["TERMINATED"] * 3
    for result, rate in zip(results, [1.0, 2.0, 3.0]):
        history = rows(results, result.trial_id)
        assert [row["step"] for row in history] == [1, 2, 3, 4, 5]
        assert [row["score"] for row in history] == pytest.approx([rate * k for k in range(1, 6)])
        assert {row["starts"] for row in history} == {1}
        assert len({row["pid"] for row in history}) == 1
        assert [row["checkpoint_dir_name"] for row in history] == [None, "checkpoint_000000", None,
                                                                    "checkpoint_000001", None]
        assert os.path.isfile(os.path.join(result.path, "checkpoint_000001", "state.json"))
    with open(os.path.join(results.experiment_path, "experiment.json")) as handle:
        assert json.load(handle)["executor"] == executor


def test_function_that_returns_finishes_its_trial(executor, storage):
    results = run(executor, storage, param_space={"rate": 1.0, "max_steps": tune.grid_search([2, 3])})
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    assert [r.metrics["training_iteration"] for r in results] == [2, 3]
    assert [r.metrics["done"] for r in results] == [True, True]


def test_one_trial_at_a_time_still_finishes(executor, storage):
    results = run(executor, storage, param_space={"rate": tune.grid_search([1.0, 2.0, 3.0])},
                  stop={"training_iteration": 10}, scheduler=pbt(), max_concurrent=1)
    assert [r.metrics["training_iteration"] for r in results] == [10, 10, 10]
    assert len(results.events_of("exploit")) == 2  # one per barrier (at 4 and 8): the worst of 3 clones the best


# -- PBT: exploits restart the function in place ---------------------------------------------------------
def check_exploits_restart_in_place(results, executor):
    exploits = results.events_of("exploit")
    assert exploits, "the test needs at least one exploit"
    starts = {e["trial_id"]: 0 for e in exploits}
    for e in exploits:
        starts[e["trial_id"]] += 1
    donors_rows = {r.trial_id: {row["training_iteration"]: row for row in rows(results, r.trial_id)}
                   for r in results}
    for result in results:
        history = rows(results, result.trial_id)
        assert len({row["pid"] for row in history}) == 1, "a trial kept its worker process"
        assert history[-1]["starts"] == 1 + starts.get(result.trial_id, 0), "restarted in place, once per exploit"
        restored_rows = [row for row in history if row["restored_from"]]
        mine = [e for e in exploits if e["trial_id"] == result.trial_id]
        explores = [e for e in results.events_of("explore") if e["trial_id"] == result.trial_id]
        assert len(restored_rows) == len(mine) == len(explores)
        for row, event, explore in zip(restored_rows, mine, explores):
            donor_row = donors_rows[event["donor"]][event["donor_iteration"]]
            assert row["restored_from"]["trial_id"] == event["donor"]
            assert row["restored_step"] == event["donor_iteration"]
            assert row["config"] == explore["new_config"]
            assert row["score"] == pytest.approx(donor_row["score"] + row["config"]["rate"])
    if executor != "inprocess":
        assert len({row["pid"] for r in results for row in rows(results, r.trial_id)}) == len(results)


def test_sync_pbt_exploits_restart_the_same_worker(executor, storage):
    results = run(executor, storage, param_space={"rate": tune.grid_search([0.1, 0.5, 0.3, 0.6])},
                  scheduler=pbt(synch=True), stop={"training_iteration": 12})
    assert [r.metrics["training_iteration"] for r in results] == [12] * 4
    assert len(results.events_of("exploit")) == 4  # 2 per barrier at 4 and 8; none at 12 (stopped first)
    check_exploits_restart_in_place(results, executor)


def test_async_pbt_runs_and_exploits(executor, storage):
    results = run(executor, storage, param_space={"rate": tune.grid_search([0.1, 0.5, 0.3, 0.6])},
                  scheduler=pbt(synch=False), stop={"training_iteration": 12})
    assert [r.status for r in results] == ["TERMINATED"] * 4
    assert [r.metrics["training_iteration"] for r in results] == [12] * 4
    check_exploits_restart_in_place(results, executor)
    for event in results.events_of("exploit"):  # every donor checkpoint is in the experiment directory
        assert os.path.isfile(os.path.join(results.experiment_path, event["checkpoint"], "state.json"))


# -- failures ----------------------------------------------------------------------------------------------
def test_failed_trial_is_retried_from_its_latest_checkpoint(executor, storage):
    results = run(executor, storage, param_space={"rate": 1.0, "fail_at": tune.grid_search([5, None]),
                                                  "fail": "raise"},
                  stop={"training_iteration": 8}, max_failures=1)
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    errors = results.events_of("trial_error")
    assert [(e["trial_id"], e["iteration"], e["error_type"], e["will_retry"]) for e in errors] == [
        (results[0].trial_id, 4, "RuntimeError", True)]
    history = rows(results, results[0].trial_id)
    assert [row["step"] for row in history] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert history[4]["restored_step"] == 4 and history[4]["restored_from"]["reason"] == "failure"
    assert history[-1]["score"] == pytest.approx(8.0)


def test_trial_that_keeps_failing_errors_and_others_finish(executor, storage):
    results = run(executor, storage, param_space={"rate": 1.0, "fail_at": tune.grid_search([3, None]),
                                                  "fail": "always"},
                  stop={"training_iteration": 6}, max_failures=1)
    assert [r.status for r in results] == ["ERROR", "TERMINATED"]
    assert "planned failure at step 3" in str(results[0].error)
    assert [e["will_retry"] for e in results.events_of("trial_error")] == [True, False]
    assert results[1].metrics["training_iteration"] == 6


@pytest.mark.parametrize("executor", ["process", pytest.param("ray", marks=pytest.mark.ray)], indirect=True)
def test_worker_that_dies_is_reported_and_retried(executor, storage):
    """A worker process killed mid-trial (here: os._exit) surfaces as WorkerDied; the retry gets a new worker."""
    results = run(executor, storage, param_space={"rate": 1.0, "fail_at": tune.grid_search([5, None]),
                                                  "fail": "exit"},
                  stop={"training_iteration": 8}, max_failures=1)
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    errors = results.events_of("trial_error")
    assert [(e["trial_id"], e["error_type"], e["will_retry"]) for e in errors] == [
        (results[0].trial_id, "WorkerDied", True)]
    died = f"the worker of trial {results[0].trial_id} died: "
    if executor == "process":
        assert re.fullmatch(re.escape(died) + r"process \d+ exited with code 3", errors[0]["message"])
    else:
        assert errors[0]["message"].startswith(died + "its Ray actor died: ")
    history = rows(results, results[0].trial_id)
    assert [row["step"] for row in history] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert len({row["pid"] for row in history[:4]}) == 1 and history[4]["pid"] != history[0]["pid"]
    assert history[4]["restored_step"] == 4


# -- stopping -------------------------------------------------------------------------------------------------
class StopAllAt(Stopper):
    def __init__(self, iteration):
        self.iteration = iteration
        self.hit = False

    def __call__(self, trial_id, result):
        self.hit = self.hit or result["training_iteration"] >= self.iteration
        return False

    def stop_all(self):
        return self.hit


def test_stop_all_ends_every_trial(executor, storage):
    results = run(executor, storage, param_space={"rate": tune.grid_search([1.0, 2.0])}, stop=StopAllAt(3))
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    reasons = {e["trial_id"]: e["reason"] for e in results.events_of("trial_complete")}
    assert set(reasons.values()) == {"stop_all"}
    assert max(r.metrics.get("training_iteration", 0) for r in results) == 3  # a late starter may have none


# -- configuration errors -----------------------------------------------------------------------------------
def test_executor_arguments_are_checked():
    from pbtlab.executors.process import ProcessExecutor

    with pytest.raises(ConfigError, match=r"start_method=.*must be one of fork, spawn, forkserver.*'threads'"):
        ProcessExecutor(start_method="threads")
    with pytest.raises(ConfigError, match=r"stop_grace_s=.*>= 0, got -1"):
        ProcessExecutor(stop_grace_s=-1)
    with pytest.raises(ConfigError, match=r"executor=.*got 'gpu'"):
        RunConfig(executor="gpu")
    with pytest.raises(ConfigError, match=r"must be 'inprocess', 'greenlets', 'process', 'ray' or an Executor object, got 3"):
        make_executor(3)


def test_spawn_needs_a_picklable_trainable(storage):
    from pbtlab.executors.process import ProcessExecutor

    with pytest.raises(ConfigError, match=r"start_method='spawn'.*cannot be pickled.*module level"):
        run(ProcessExecutor(start_method="spawn"), storage, lambda config: None, param_space={"rate": 1.0})


class _FakeRay:
    """Stands in for an imported ``ray`` module (the check reads ``sys.modules`` and never imports Ray)."""

    def __init__(self, running):
        self.running = running

    def is_initialized(self):
        return self.running


def test_fork_after_ray_init_warns_and_the_run_still_completes(storage, monkeypatch):
    import sys
    import warnings

    from pbtlab.executors.process import ProcessExecutor

    monkeypatch.setitem(sys.modules, "ray", _FakeRay(True))
    with pytest.warns(RuntimeWarning, match=r"Ray is running in this process.*ray\.shutdown\(\).*forkserver"):
        results = run(ProcessExecutor(), storage, param_space={"rate": 1.0}, stop={"training_iteration": 2})
    assert [r.metrics["training_iteration"] for r in results] == [2]
    for fake, method in ((_FakeRay(False), "fork"), (_FakeRay(True), "spawn")):  # Ray not running; no fork
        monkeypatch.setitem(sys.modules, "ray", fake)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ProcessExecutor(start_method=method).setup(counting_trainable, 1)
    monkeypatch.delitem(sys.modules, "ray")
    from pbtlab.compat.ray.shim import ray_modules

    with ray_modules(), warnings.catch_warnings():  # `pbtlab run`'s stand-in: ray.init() starts no threads
        import ray

        ray.init()
        assert ray.is_initialized()
        warnings.simplefilter("error")
        ProcessExecutor().setup(counting_trainable, 1)


def test_spawn_runs_a_module_level_trainable(storage):
    from pbtlab.examples.runs import run_toy_pbt
    from pbtlab.executors.process import ProcessExecutor

    results = run_toy_pbt(population=2, seed=0, iterations=8, storage_path=storage,
                          executor=ProcessExecutor(start_method="spawn"))
    assert [r.metrics["training_iteration"] for r in results] == [8, 8]


def test_ray_executor_arguments_are_checked():
    from pbtlab.executors.ray import RayExecutor

    with pytest.raises(ConfigError, match=r"checkpoint_transport=.*auto, shared, object_store.*'nfs'"):
        RayExecutor(checkpoint_transport="nfs")
    with pytest.raises(ConfigError, match=r"address=.*got 6379"):
        RayExecutor(address=6379)
    with pytest.raises(ConfigError, match=r"actor_options=.*got 'gpu'"):
        RayExecutor(actor_options="gpu")


@pytest.mark.ray
def test_ray_object_store_transport_on_one_node(storage, ray_runtime):
    """Every checkpoint goes through the object store (as for a node without the driver's disk)."""
    from pbtlab.executors.ray import RayExecutor

    executor = RayExecutor(checkpoint_transport="object_store")
    results = run(executor, storage, param_space={"rate": tune.grid_search([0.1, 0.5])},
                  scheduler=pbt(synch=True), stop={"training_iteration": 10})
    exploits = results.events_of("exploit")
    assert len(exploits) == 2  # at the barriers at 4 and 8
    assert executor.checkpoints_to_driver == 10  # 5 checkpoints per trial (every 2 steps), all uploaded
    # one node: the donor's checkpoint is already in this node's scratch directory, nothing is shipped back
    assert executor.checkpoints_to_workers == 0
    check_exploits_restart_in_place(results, "ray")


# -- large runs stream their results ---------------------------------------------------------------------
def never_checkpoints(config):
    """Reports forever without a checkpoint, so the controller never reaches a state save mid-run;
    from iteration 40 on it reports how many of its rows are already on disk."""
    path = os.path.join(tune.get_context().get_trial_dir(), "result.jsonl")
    step = 0
    while True:
        step += 1
        on_disk = 0
        if step >= 40 and os.path.exists(path):
            with open(path) as handle:
                on_disk = sum(1 for _ in handle)
        tune.report({"score": float(step), "rows_on_disk": on_disk})


def test_results_stream_to_disk_without_state_saves(storage, monkeypatch):
    from pbtlab.rundir.store import ExperimentStore

    monkeypatch.setattr(ExperimentStore, "FLUSH_LINES", 64)
    results = run("inprocess", storage, never_checkpoints, param_space={"rate": tune.grid_search([1, 2, 3, 4])},
                  stop={"training_iteration": 50})
    for result in results:
        history = rows(results, result.trial_id)
        assert len(history) == 50
        assert history[-1]["rows_on_disk"] >= 50 - 64 // 4 - 1  # at most one flush's worth still buffered


# -- the protocol, driven directly: SAVE, and wait() with nothing running ------------------------------------
def protocol_executor(name):
    """A fresh executor; on Ray the one that moves every checkpoint as bytes, so SAVE's files travel too."""
    if name == "ray":
        from pbtlab.executors.ray import RayExecutor

        return RayExecutor(checkpoint_transport="object_store")
    return make_executor(name)


def replies(executor, count):
    """The next ``count`` messages, by trial (concurrent executors may deliver them in any order)."""
    got = dict(executor.wait() for _ in range(count))
    assert len(got) == count
    return got


def state_of(path):
    with open(os.path.join(path, "state.json")) as handle:
        return json.load(handle)


def test_save_asks_a_paused_trial_for_a_checkpoint(executor, tmp_path):
    """SAVE is answered with a SavedMessage and the trial waits again: None without a save hook; with one,
    its checkpoint persisted as the next checkpoint_<index> of the trial, like a reported one."""
    runner = protocol_executor(executor)
    runner.setup(saving_trainable, 2)
    with pytest.raises(ExecutorError, match=r"wait\(\) was called while no trial is running.*start\(\) a trial"):
        runner.wait()
    plain, hooked = (str(tmp_path / name) for name in ("plain", "hooked"))
    runner.start(StartSpec("plain", {"max_steps": 2}, plain, None, 0))
    runner.start(StartSpec("hooked", {"hook": "state"}, hooked, None, 5))
    try:
        first = replies(runner, 2)
        assert {t: (m.metrics["step"], m.checkpoint_index) for t, m in first.items()} == {
            "plain": (1, None), "hooked": (1, None)}

        runner.send("plain", SAVE)
        runner.send("hooked", SAVE)
        assert replies(runner, 2) == {"plain": SavedMessage(None, None),
                                      "hooked": SavedMessage(os.path.join(hooked, "checkpoint_000005"), 5)}
        assert state_of(os.path.join(hooked, "checkpoint_000005")) == {"step": 1, "by": "saved_by_hook"}
        runner.send("hooked", SAVE)  # still paused at step 1: a second save takes the next number
        assert replies(runner, 1) == {"hooked": SavedMessage(os.path.join(hooked, "checkpoint_000006"), 6)}

        runner.send("plain", CONTINUE)
        runner.send("hooked", CONTINUE)
        second = replies(runner, 2)  # the report at step 2 carries a checkpoint, numbered after the saves
        assert {t: (m.metrics["step"], m.checkpoint_index) for t, m in second.items()} == {
            "plain": (2, 0), "hooked": (2, 7)}
        assert state_of(second["hooked"].checkpoint_path) == {"step": 2, "by": "reported"}
        assert sorted(p for p in os.listdir(hooked) if p.startswith("checkpoint_")) == [
            "checkpoint_000005", "checkpoint_000006", "checkpoint_000007"]
        assert first["hooked"].metrics["pid"] == second["hooked"].metrics["pid"]  # the same worker throughout

        # the plain trial's function returns; it still answers SAVE until it is stopped or restarted
        runner.send("plain", CONTINUE)
        assert replies(runner, 1) == {"plain": FinishedMessage()}
        runner.send("plain", SAVE)
        assert replies(runner, 1) == {"plain": SavedMessage(None, None)}

        # a restart from the first saved checkpoint resumes its state, in the same worker
        runner.send("hooked", Command(CommandKind.RESTART, StartSpec(
            "hooked", {"hook": "state"}, hooked, os.path.join(hooked, "checkpoint_000005"), 8)))
        third = replies(runner, 1)["hooked"]
        assert (third.metrics["step"], third.checkpoint_index, third.metrics["pid"]) == (
            2, 8, first["hooked"].metrics["pid"])

        runner.send("plain", STOP)
        runner.send("hooked", CONTINUE)
        runner.send("hooked", STOP)  # stopped before its turn came (or while it runs): nothing is left to wait for
        with pytest.raises(ExecutorError, match=r"wait\(\) was called while no trial is running"):
            runner.wait()
        if executor == "ray":  # the saved and reported checkpoints came to the driver as bytes, and intact
            assert runner.checkpoints_to_driver == 5  # plain: 1 report; hooked: 2 saves, 2 reports
    finally:
        runner.shutdown()


def test_save_hook_outcomes(storage):
    """A hook that raises fails the trial at that report; one that returns something else than a checkpoint
    is a usage error; one that returns None saves nothing. After the function returned, the hook still
    saves, a failing hook is answered with an ErrorMessage, and the trial keeps waiting for a command."""
    runner = make_executor("inprocess")
    runner.setup(saving_trainable, 4)
    hooks = {"raises": "raise", "wrong": "not a checkpoint", "nothing": "nothing", "after_end": "state"}
    for trial_id, hook in hooks.items():
        runner.start(StartSpec(trial_id, {"hook": hook, "max_steps": 1}, os.path.join(storage, trial_id), None, 0))
    assert {t: m.metrics["step"] for t, m in replies(runner, 4).items()} == dict.fromkeys(hooks, 1)
    for trial_id in hooks:
        runner.send(trial_id, SAVE)
    answers = replies(runner, 4)
    assert answers["nothing"] == SavedMessage(None, None)
    assert answers["after_end"] == SavedMessage(os.path.join(storage, "after_end", "checkpoint_000000"), 0)
    assert (answers["raises"].error_type, answers["raises"].message, answers["raises"].usage_error) == (
        "RuntimeError", "cannot save at step 1", False)
    assert answers["wrong"].error_type == "ReportError" and answers["wrong"].usage_error
    assert "save hook must return a tune.Checkpoint or None, got '" in answers["wrong"].message
    runner.send("nothing", CONTINUE)
    assert runner.wait() == ("nothing", FinishedMessage())
    runner.send("after_end", CONTINUE)
    assert runner.wait() == ("after_end", FinishedMessage())
    runner.send("after_end", SAVE)  # its function returned at step 1; its hook still saves that state
    assert runner.wait() == ("after_end", SavedMessage(os.path.join(storage, "after_end", "checkpoint_000001"), 1))
    assert state_of(os.path.join(storage, "after_end", "checkpoint_000001")) == {"step": 1, "by": "saved_by_hook"}
    runner.send("raises", Command(CommandKind.RESTART, StartSpec(
        "raises", {"hook": "raise", "max_steps": 1}, os.path.join(storage, "raises"), None, 0)))
    assert runner.wait()[1].metrics["step"] == 1
    runner.send("raises", CONTINUE)
    assert runner.wait() == ("raises", FinishedMessage())
    runner.send("raises", SAVE)  # the function has returned: the hook still runs, its error is the answer
    trial_id, answer = runner.wait()
    assert (trial_id, answer.error_type, answer.message) == ("raises", "RuntimeError", "cannot save at step 1")
    runner.send("raises", SAVE)  # and it keeps waiting for a command
    assert runner.wait()[1].error_type == "RuntimeError"
    runner.shutdown()
    with pytest.raises(ExecutorError, match=r"InProcessExecutor.wait\(\) was called while no trial is running"):
        runner.wait()
