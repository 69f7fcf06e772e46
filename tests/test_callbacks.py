"""tune.Callback: Ray's hooks, in Ray's order, with read-only trials; a raising callback stops the run cleanly."""

from __future__ import annotations

import os

import pytest

from pbtlab import tune
from pbtlab.callbacks import CallbackList
from pbtlab.config import FailureConfig, RunConfig, TuneConfig
from pbtlab.errors import CallbackError, ConfigError
from pbtlab.executors.simulated import SimulatedExecutor
from pbtlab.tuner import Tuner


def never_called(config):
    raise AssertionError("not run")


def scores(score, checkpoint_every=1):
    """A simulator whose trials report ``score(iteration)`` (no trainable runs)."""
    return SimulatedExecutor(lambda config, iteration, state: {"score": score(iteration)},
                             checkpoint_every=checkpoint_every)


def fails(config, iteration, state):
    raise RuntimeError("boom")


class Recorder(tune.Callback):
    def __init__(self):
        self.calls = []

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self.calls.append(("setup", num_samples, total_num_samples))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.calls.append(("start", str(trial).rsplit("_", 1)[-1]))

    def on_trial_restore(self, iteration, trials, trial, **info):
        self.calls.append(("restore", str(trial).rsplit("_", 1)[-1]))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.calls.append(("result", str(trial).rsplit("_", 1)[-1], result["training_iteration"]))

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.calls.append(("checkpoint", os.path.basename(checkpoint.path)))

    def on_trial_save(self, iteration, trials, trial, **info):
        self.calls.append(("save", str(trial).rsplit("_", 1)[-1]))

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.calls.append(("recover", str(trial).rsplit("_", 1)[-1]))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.calls.append(("error", str(trial).rsplit("_", 1)[-1]))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.calls.append(("complete", str(trial).rsplit("_", 1)[-1], trial.status))

    def on_experiment_end(self, trials, **info):
        self.calls.append(("end", [t.status for t in trials]))


def fit(executor, storage, callbacks, **run):
    return Tuner(never_called, param_space={"x": tune.grid_search([0, 1])},
                 tune_config=TuneConfig(metric="score", mode="max", seed=0, max_concurrent_trials=1),
                 run_config=RunConfig(storage_path=storage, name="run", verbose=0, executor=executor,
                                      callbacks=callbacks, **run)).fit()


def test_hooks_are_called_in_rays_order(storage):
    recorder = Recorder()
    fit(scores(lambda it: 1.0, checkpoint_every=2), storage, [recorder],
        stop={"training_iteration": 2})
    assert recorder.calls == [
        ("setup", 1, 2),
        ("start", "00000"), ("result", "00000", 1), ("result", "00000", 2),
        ("checkpoint", "checkpoint_000000"), ("save", "00000"), ("complete", "00000", "TERMINATED"),
        ("start", "00001"), ("result", "00001", 1), ("result", "00001", 2),
        ("checkpoint", "checkpoint_000000"), ("save", "00001"), ("complete", "00001", "TERMINATED"),
        ("end", ["TERMINATED", "TERMINATED"]),
    ]


def test_failures_call_recover_then_error(storage):
    recorder = Recorder()
    fit(SimulatedExecutor(fails), storage, [recorder],
        failure_config=FailureConfig(max_failures=1))
    first = [c for c in recorder.calls if c[0] in ("start", "recover", "error") and c[1] == "00000"]
    assert first == [("start", "00000"), ("recover", "00000"), ("start", "00000"), ("error", "00000")]


def test_exploits_call_restore_before_start(storage):
    recorder = Recorder()
    from pbtlab.examples.runs import toy_scheduler
    from pbtlab.examples.toy import train_func
    Tuner(train_func, param_space={"lr": 0.05, "h0": tune.grid_search([0.0, 1.0]),
                                   "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
                                   "checkpoint_interval": 4},
          tune_config=TuneConfig(metric="Q", mode="max", seed=0, scheduler=toy_scheduler(4, True)),
          run_config=RunConfig(storage_path=storage, name="cb", verbose=0, callbacks=[recorder],
                               stop={"training_iteration": 8})).fit()
    kinds = [c[0] for c in recorder.calls]
    restore = kinds.index("restore")
    assert kinds[restore + 1] == "start" and recorder.calls[restore][1] == recorder.calls[restore + 1][1]
    assert kinds.count("restore") == 1  # the barrier at 4 (at 8 the stop criterion ends both trials first)


def test_trials_seen_by_callbacks_are_read_only_views(storage):
    seen = {}

    class Peek(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            trial.config["x"] = 42  # the callback's own copy
            seen["path"], seen["n"] = trial.path, len(trials)

    results = fit(scores(lambda it: 1.0), storage, [Peek()],
                  stop={"training_iteration": 1})
    assert [r.config["x"] for r in results] == [0, 1]
    assert seen == {"path": results[1].path, "n": 2}


def test_a_raising_callback_stops_the_run_and_it_can_be_resumed(storage):
    class Boom(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result["training_iteration"] == 3 and str(trial).endswith("1"):
                raise ValueError("bad callback")

    executor = scores(float)
    with pytest.raises(CallbackError, match=r"callback Boom.on_trial_result raised ValueError: bad callback"):
        fit(executor, storage, [Boom()], stop={"training_iteration": 4})
    path = os.path.join(storage, "run")
    resumed = Tuner.restore(path, never_called, run_config=RunConfig(
        verbose=0, stop={"training_iteration": 4},
        executor=scores(float))).fit()
    for result in resumed:
        assert [r["training_iteration"] for r in result.history()] == [1, 2, 3, 4]
        assert [r["score"] for r in result.history()] == [1.0, 2.0, 3.0, 4.0]


def test_callbacks_argument_is_checked():
    with pytest.raises(ConfigError, match=r"callbacks\[0\]\) is the class Recorder; pass an instance"):
        RunConfig(callbacks=[Recorder])
    with pytest.raises(ConfigError, match=r"must be a list of tune.Callback objects, got 'x'"):
        RunConfig(callbacks="x")


def test_only_hooks_a_callback_implements_are_called():
    """A ``Callback`` subclass's inherited empty hooks are skipped; a hook set on the instance, or on an object
    that is not a ``Callback``, is called."""
    calls = []

    class StepEnd(tune.Callback):
        def on_step_end(self, iteration, trials, **info):
            calls.append(("class", iteration))

    on_instance = tune.Callback()
    on_instance.on_step_begin = lambda iteration, trials, **info: calls.append(("instance", iteration))

    class DuckTyped:
        def on_step_begin(self, iteration, trials, **info):
            calls.append(("duck", iteration))

    callbacks = CallbackList([StepEnd(), on_instance, DuckTyped()])
    assert [callbacks.wants(h) for h in ("on_step_begin", "on_step_end", "on_trial_result")] == [True, True, False]
    callbacks.call("on_step_begin", iteration=1, trials=[])
    callbacks.call("on_step_end", iteration=2, trials=[])
    callbacks.call("on_trial_result", iteration=3, trials=[], trial=None, result={})
    assert calls == [("instance", 1), ("duck", 1), ("class", 2)]


def test_step_hooks_run_once_per_step(storage):
    counts = {"begin": 0, "end": 0}

    class Steps(tune.Callback):
        def on_step_begin(self, iteration, trials, **info):
            counts["begin"] += 1

        def on_step_end(self, iteration, trials, **info):
            counts["end"] += 1

    fit(scores(lambda it: 1.0), storage, [Steps()], stop={"training_iteration": 3})
    assert counts == {"begin": 6, "end": 6}  # 2 trials x 3 reports, one loop step each
