"""The simulated executor: virtual time, checkpoints as states, the protocol check, and PBT at 1,024 trials."""

from __future__ import annotations

import collections
import json
import os

import pytest

from pbtlab import RunConfig, TuneConfig, Tuner, tune
from pbtlab.errors import ConfigError, ExecutorError
from pbtlab.executors import Executor, make_executor
from pbtlab.executors.simulated import STATE_FILE, SimulatedExecutor
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.session import CONTINUE, SAVE, STOP, Command, CommandKind, ErrorMessage, FinishedMessage, \
    ReportMessage, SavedMessage, StartSpec


def spec(tmp_path, trial_id, config, checkpoint=None, next_index=0):
    return StartSpec(trial_id, config, str(tmp_path / trial_id), checkpoint, next_index)


def accumulate(config, iteration, state):
    return state + config["step"]


def report_state(config, iteration, state):
    return {"state": state}


def simulator(**options):
    options.setdefault("update", accumulate)
    options.setdefault("initial_state", 0)
    options.setdefault("duration", lambda config, iteration, state: config["seconds"])
    executor = SimulatedExecutor(report_state, **options)
    executor.setup(executor.trainable, 10)
    return executor


# -- virtual time ------------------------------------------------------------------------------------------
def test_messages_come_in_virtual_time_order_and_the_clock_follows(tmp_path):
    executor = simulator(checkpoint_every=0)
    executor.start(spec(tmp_path, "slow", {"step": 1, "seconds": 3.0}))
    executor.start(spec(tmp_path, "fast", {"step": 10, "seconds": 2.0}))
    seen = []
    for _ in range(4):
        trial_id, message = executor.wait()
        seen.append((executor.clock(), trial_id, message.metrics["state"], message.time_this_iter_s))
        executor.send(trial_id, CONTINUE)
    # At 6.0 both are due; "slow" was answered first (at 3.0, "fast" at 4.0), so it comes first.
    assert seen == [(2.0, "fast", 10, 2.0), (3.0, "slow", 1, 3.0), (4.0, "fast", 20, 2.0), (6.0, "slow", 2, 3.0)]


def test_ties_come_in_the_order_the_commands_were_sent(tmp_path):
    executor = simulator(checkpoint_every=0)
    for trial_id in ("b", "a", "c"):
        executor.start(spec(tmp_path, trial_id, {"step": 1, "seconds": 1.0}))
    assert [executor.wait()[0] for _ in range(3)] == ["b", "a", "c"]


def test_poll_lets_virtual_time_pass_without_a_message(tmp_path):
    executor = simulator(checkpoint_every=0)
    executor.start(spec(tmp_path, "t", {"step": 1, "seconds": 5.0}))
    assert executor.poll(2.0) is None and executor.now == 2.0
    assert executor.poll(2.5) is None and executor.now == 4.5
    assert executor.poll(0.5)[0] == "t" and executor.now == 5.0
    executor.send("t", CONTINUE)
    assert executor.poll(None)[0] == "t" and executor.now == 10.0


def test_stop_mid_iteration_drops_the_message_and_the_state_it_would_have_reached(tmp_path):
    executor = simulator()
    executor.start(spec(tmp_path, "t", {"step": 1, "seconds": 5.0}))
    executor.start(spec(tmp_path, "u", {"step": 1, "seconds": 1.0}))
    executor.send("t", STOP)  # STOP may be sent while a command is outstanding
    assert executor.wait()[0] == "u"
    executor.send("u", STOP)
    with pytest.raises(ExecutorError, match="no trial is running"):
        executor.wait()
    assert not os.path.exists(tmp_path / "t")  # its first report, and its checkpoint, never happened


# -- checkpoints ---------------------------------------------------------------------------------------------
def test_a_checkpoint_is_the_state_at_its_iteration_and_a_restart_continues_from_it(tmp_path):
    executor = simulator(checkpoint_every=2)
    executor.start(spec(tmp_path, "t", {"step": 3, "seconds": 1.0}))
    messages = []
    for _ in range(3):
        messages.append(executor.wait()[1])
        executor.send("t", CONTINUE)
    assert [(m.metrics["state"], m.checkpoint_index) for m in messages] == [(3, None), (6, 0), (9, None)]
    path = messages[1].checkpoint_path
    assert path == str(tmp_path / "t" / "checkpoint_000000")
    with open(os.path.join(path, STATE_FILE)) as handle:
        assert json.load(handle) == {"iteration": 2, "state": 6}
    executor.wait()
    # Another trial restarts from it with its own config: iteration 3 from state 6.
    executor.send("t", Command(CommandKind.RESTART, spec(tmp_path, "t", {"step": 100, "seconds": 1.0}, path, 1)))
    trial_id, message = executor.wait()
    assert message.metrics == {"state": 106}
    executor.send("t", CONTINUE)
    assert executor.wait()[1].checkpoint_path == str(tmp_path / "t" / "checkpoint_000001")  # iteration 4


def test_save_checkpoints_the_state_now_and_the_trial_waits_as_before(tmp_path):
    executor = simulator(checkpoint_every=0, iterations=1)
    executor.start(spec(tmp_path, "t", {"step": 2, "seconds": 4.0}, next_index=7))
    executor.wait()
    executor.send("t", SAVE)
    assert executor.wait() == ("t", SavedMessage(str(tmp_path / "t" / "checkpoint_000007"), 7))
    assert executor.now == 4.0  # saving takes no virtual time
    with open(tmp_path / "t" / "checkpoint_000007" / STATE_FILE) as handle:
        assert json.load(handle) == {"iteration": 1, "state": 2}
    executor.send("t", CONTINUE)
    assert executor.wait() == ("t", FinishedMessage())  # after `iterations`, the function returns
    executor.send("t", SAVE)  # SAVE may follow any message
    assert executor.wait()[1].checkpoint_index == 8


def test_a_raising_function_fails_the_trial_after_the_iteration_time(tmp_path):
    def result(config, iteration, state):
        if iteration == 2:
            raise KeyError("diverged")
        return {"state": state}

    executor = SimulatedExecutor(result, duration=1.5)
    executor.setup(executor.trainable, 1)
    executor.start(spec(tmp_path, "t", {}))
    executor.wait()
    executor.send("t", CONTINUE)
    trial_id, message = executor.wait()
    assert isinstance(message, ErrorMessage) and executor.now == 3.0
    assert (message.error_type, message.message, message.usage_error) == ("KeyError", "'diverged'", False)
    assert "in result" in message.traceback and "KeyError: 'diverged'" in message.traceback
    with pytest.raises(ExecutorError, match=r"CONTINUE\) after the trial's function failed"):
        executor.send("t", CONTINUE)
    executor.send("t", Command(CommandKind.RESTART, spec(tmp_path, "t", {})))  # a retry starts it again
    assert isinstance(executor.wait()[1], ReportMessage)


def test_a_missing_checkpoint_fails_the_trial_at_its_start(tmp_path):
    executor = simulator()
    executor.start(spec(tmp_path, "t", {"step": 1, "seconds": 1.0}, str(tmp_path / "nowhere")))
    trial_id, message = executor.wait()
    assert message.error_type == "FileNotFoundError" and executor.now == 0.0


# -- the protocol check ----------------------------------------------------------------------------------------
def test_a_second_command_while_one_is_outstanding_raises(tmp_path):
    executor = simulator()
    executor.start(spec(tmp_path, "t", {"step": 1, "seconds": 1.0}))
    for command in (CONTINUE, SAVE, Command(CommandKind.RESTART, spec(tmp_path, "t", {"step": 1, "seconds": 1.0}))):
        with pytest.raises(ExecutorError, match=r"while the trial's previous command is outstanding"):
            executor.send("t", command)
    executor.wait()
    executor.send("t", SAVE)
    with pytest.raises(ExecutorError, match=r"send\('t', CONTINUE\) while the trial's previous command"):
        executor.send("t", CONTINUE)


def test_commands_to_trials_without_a_worker_raise(tmp_path):
    executor = simulator()
    with pytest.raises(ExecutorError, match=r"send\('ghost', CONTINUE\): the trial has no worker"):
        executor.send("ghost", CONTINUE)
    executor.start(spec(tmp_path, "t", {"step": 1, "seconds": 1.0}))
    with pytest.raises(ExecutorError, match="has a worker already"):
        executor.start(spec(tmp_path, "t", {"step": 1, "seconds": 1.0}))
    executor.send("t", STOP)
    with pytest.raises(ExecutorError, match=r"send\('t', STOP\): the trial has no worker"):
        executor.send("t", STOP)
    with pytest.raises(ExecutorError, match="before setup"):
        SimulatedExecutor(report_state).start(spec(tmp_path, "u", {}))


def test_it_is_an_executor_with_the_default_capabilities_it_does_not_override():
    executor = SimulatedExecutor(report_state)
    assert isinstance(executor, Executor) and make_executor(executor) is executor
    assert executor.fits("t", None) and executor.capacity_error(None) is None and executor.release("t") is None
    assert executor.default_concurrency(12) == 12 and SimulatedExecutor(report_state, concurrency=3).default_concurrency(12) == 3


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda: SimulatedExecutor("score"), "result=...) must be a function (config, iteration, state) -> metrics, got 'score' (str)"),
    (lambda: SimulatedExecutor(report_state, update=3), "update=...) must be a function"),
    (lambda: SimulatedExecutor(report_state, duration=-1), "duration=...) must be a function or a finite number of seconds >= 0, got -1 (int)"),
    (lambda: SimulatedExecutor(report_state, duration=float("nan")), "got nan (float)"),
    (lambda: SimulatedExecutor(report_state, iterations=0), "iterations=...) must be an int >= 1 or None, got 0 (int)"),
    (lambda: SimulatedExecutor(report_state, concurrency=True), "concurrency=...) must be an int >= 1 or None, got True (bool)"),
    (lambda: SimulatedExecutor(report_state, checkpoint_every=-2), "checkpoint_every=...) must be an int >= 0 (0: never), got -2"),
])
def test_arguments_are_checked(make, fragment):
    with pytest.raises(ConfigError) as raised:
        make()
    assert fragment in str(raised.value)


def test_bad_values_from_the_trial_functions_are_named(tmp_path):
    executor = SimulatedExecutor(report_state, duration=lambda config, iteration, state: "long")
    executor.setup(executor.trainable, 1)
    with pytest.raises(ConfigError, match=r"duration=...\) must give a finite number of seconds >= 0, for "
                                          r"iteration 1 of trial t, got 'long' \(str\)"):
        executor.start(spec(tmp_path, "t", {}))
    executor = SimulatedExecutor(lambda config, iteration, state: 0.5)
    executor.setup(executor.trainable, 1)
    with pytest.raises(ConfigError, match=r"result=...\) must return a dict of metrics or None, got 0.5"):
        executor.start(spec(tmp_path, "t", {}))
    executor = SimulatedExecutor(report_state, initial_state={1, 2})
    executor.setup(executor.trainable, 1)
    executor.start(spec(tmp_path, "t", {}))
    with pytest.raises(ConfigError, match=r"state of trial t at iteration 1 must be a JSON value"):
        executor.wait()


def test_the_stand_in_trainable_is_never_run():
    with pytest.raises(ExecutorError, match=r"RunConfig\(executor=SimulatedExecutor"):
        SimulatedExecutor(report_state).trainable({})


# -- through the Tuner -------------------------------------------------------------------------------------------
def test_a_time_budget_ends_the_run_mid_iteration_in_virtual_time(storage):
    executor = SimulatedExecutor(lambda config, iteration, state: {"score": float(iteration)}, duration=3.0)
    results = Tuner(executor.trainable, param_space={"x": tune.grid_search([0, 1])},
                    tune_config=TuneConfig(metric="score", mode="max", seed=0, time_budget_s=10.0),
                    run_config=RunConfig(storage_path=storage, name="run", verbose=0, executor=executor)).fit()
    assert [len(r.history()) for r in results] == [3, 3]  # reports at 3, 6 and 9; the 4th would come at 12
    assert [e["reason"] for e in results.events_of("trial_complete")] == ["time_budget", "time_budget"]
    assert executor.now == pytest.approx(10.01)  # the controller polls until just past the budget
    assert [c.kind for c in executor.sent][-2:] == ["stop", "stop"]
    with open(os.path.join(results.experiment_path, "state.json")) as handle:
        assert json.load(handle)["elapsed_s"] == executor.now


def test_checkpoint_at_end_asks_the_trial_to_save(storage):
    executor = SimulatedExecutor(lambda config, iteration, state: {"score": 1.0}, checkpoint_every=0)
    results = Tuner(executor.trainable, param_space={"x": 1},
                    tune_config=TuneConfig(metric="score", mode="max", seed=0),
                    run_config=RunConfig(storage_path=storage, name="run", verbose=0, executor=executor,
                                         stop={"training_iteration": 3},
                                         checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True))).fit()
    (saved,) = results.events_of("checkpoint_saved")
    assert (saved["iteration"], saved["reason"]) == (3, "end")
    assert [c.kind for c in executor.sent] == ["start", "continue", "continue", "save", "stop"]
    assert results[0].checkpoint.path == os.path.join(results[0].path, "checkpoint_000000")


def growth(config, iteration, state):
    """The state moves toward 100 at a rate set by lr."""
    return state + config["lr"] * (1 - state / 100)


def iteration_seconds(config, iteration, state):
    return 1.0 + 0.25 * (iteration % 4)  # 1.25, 1.5, 1.75, 1.0: 5.5 s per perturbation interval


def run_sync_pbt(storage, num_trials, concurrency, monkeypatch):
    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial CSV/JSON/TensorBoard copies
    executor = SimulatedExecutor(lambda config, iteration, state: {"score": state}, update=growth,
                                 duration=iteration_seconds, initial_state=0.0, checkpoint_every=4,
                                 concurrency=concurrency)
    scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=4, quantile_fraction=0.25,
                                        hyperparam_mutations={"lr": tune.uniform(0.01, 10.0)}, synch=True)
    results = Tuner(executor.trainable, param_space={"lr": tune.uniform(0.01, 10.0)},
                    tune_config=TuneConfig(metric="score", mode="max", seed=0, num_samples=num_trials,
                                           scheduler=scheduler),
                    run_config=RunConfig(storage_path=storage, name="sim", verbose=0, executor=executor,
                                         stop={"training_iteration": 20})).fit()
    return executor, results


def check_pbt_run(executor, results, num_trials, makespan):
    quarter = num_trials // 4
    events = results.events
    assert [e["seq"] for e in events] == list(range(len(events)))
    counts = collections.Counter(e["event"] for e in events)
    # 4 barriers (iterations 4, 8, 12, 16; at 20 the stop criterion comes first), a quarter exploits at each.
    exploits = results.events_of("exploit")
    assert collections.Counter(e["target_iteration"] for e in exploits) == {4: quarter, 8: quarter, 12: quarter,
                                                                            16: quarter}
    assert all(e["donor_iteration"] == e["target_iteration"] for e in exploits)
    assert counts["explore"] == counts["trial_restore"] == len(exploits) == num_trials
    assert counts["trial_start"] == num_trials + len(exploits)
    assert counts["trial_complete"] == num_trials and counts["checkpoint_saved"] == 0 and counts["trial_error"] == 0
    assert {e["reason"] for e in results.events_of("trial_complete")} == {"stop_criterion"}
    assert len(results) == num_trials and {r.status for r in results} == {"TERMINATED"}
    by_id = {r.trial_id: r.history() for r in results}
    assert all([row["training_iteration"] for row in rows] == list(range(1, 21)) for rows in by_id.values())
    assert all(rows[-1]["done"] for rows in by_id.values())
    # Each exploit restores the donor's checkpoint of that iteration, which still existed, and the target's
    # next score grows from the donor's state with its new config.
    deleted_at = {e["checkpoint"]: e["seq"] for e in results.events_of("checkpoint_deleted")}
    new_configs = {e["seq"]: e["new_config"] for e in results.events_of("explore")}
    for exploit in exploits:
        donor_row = by_id[exploit["donor"]][exploit["donor_iteration"] - 1]
        assert exploit["checkpoint"] == f"{exploit['donor']}/{donor_row['checkpoint_dir_name']}"
        assert deleted_at.get(exploit["checkpoint"], len(events)) > exploit["seq"]
        next_row = by_id[exploit["trial_id"]][exploit["target_iteration"]]
        assert next_row["restored_from"]["trial_id"] == exploit["donor"]
        new_config = new_configs[exploit["seq"] + 1]
        assert next_row["config"] == new_config
        assert next_row["score"] == growth(new_config, next_row["training_iteration"], donor_row["score"])
    assert executor.now == makespan
    with open(os.path.join(results.experiment_path, "state.json")) as handle:
        assert json.load(handle)["elapsed_s"] == makespan


def test_sync_pbt_in_waves_takes_the_makespan_computed_by_hand(storage, monkeypatch):
    # 64 trials on 16 slots: each interval of 4 iterations (5.5 s) runs in 4 waves; 5 intervals.
    executor, results = run_sync_pbt(storage, 64, 16, monkeypatch)
    check_pbt_run(executor, results, 64, 5 * 4 * 5.5)
    starts = collections.Counter(c.time for c in executor.sent if c.kind == "start")
    assert starts == {0.0: 16, 5.5: 16, 11.0: 16, 16.5: 16}


@pytest.mark.slow
def test_sync_pbt_with_1024_trials_runs_in_virtual_time(storage, monkeypatch):
    # 1,024 trials x 20 iterations, all at once: every interval takes 5.5 virtual seconds.
    executor, results = run_sync_pbt(storage, 1024, None, monkeypatch)
    check_pbt_run(executor, results, 1024, 5 * 5.5)
