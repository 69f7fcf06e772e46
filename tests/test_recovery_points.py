"""Per-trial recovery points in ``state.json``, driven by the simulated executor (no processes, no sleeps).

Both trials checkpoint every 3 iterations; trial 0 runs to 10, trial 1 returns after 3. The driver is
interrupted (Ctrl-C) while trial 0 reports its 8th iteration.
"""

from __future__ import annotations

import json
import os

import pytest

from pbtlab import tune
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.executors.simulated import SimulatedExecutor
from pbtlab.tuner import Tuner


def simulator():
    def result(config, iteration, state):
        return None if iteration > (3 if config["x"] == 1 else 10) else {"score": float(iteration)}
    return SimulatedExecutor(result, checkpoint_every=3)


def read_state(path):
    with open(os.path.join(path, "state.json")) as handle:
        return json.load(handle)


class Interrupt(tune.Callback):
    """Read state.json at every report of trial 0, and stop the driver (Ctrl-C) at its iteration 8."""

    def __init__(self, path):
        self.path = path
        self.seen = {}  # trial 0's iteration -> its recovery point in state.json then

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not str(trial).endswith("0"):
            return
        state = read_state(self.path)
        self.seen[result["training_iteration"]] = state["recovery"][trial.trial_id]
        if result["training_iteration"] == 8:
            raise KeyboardInterrupt


def run(storage, callbacks=None):
    executor = simulator()
    return Tuner(executor.trainable, param_space={"x": tune.grid_search([0, 1])},
                 tune_config=TuneConfig(metric="score", mode="max", seed=0),
                 run_config=RunConfig(storage_path=storage, name="run", verbose=0, state_save_period_s=0,
                                      executor=executor, callbacks=callbacks)).fit()


def test_each_trial_is_saved_at_its_own_recovery_point_and_resumes_from_it(storage):
    path = os.path.join(storage, "run")
    interrupt = Interrupt(path)
    with pytest.raises(KeyboardInterrupt):
        run(storage, [interrupt])

    # the state on disk names each trial's latest checkpoint before the trial went on
    assert {i: point["iteration"] for i, point in interrupt.seen.items()} == \
        {1: 0, 2: 0, 3: 0, 4: 3, 5: 3, 6: 3, 7: 6, 8: 6}
    state = read_state(path)
    first, second = (t["trial_id"] for t in state["trials"])
    assert state["recovery"][first] == {"checkpoint": f"{first}/checkpoint_000001", "iteration": 6, "rows": 6,
                                        "finished": False}
    assert state["recovery"][second] == {"checkpoint": f"{second}/checkpoint_000000", "iteration": 3, "rows": 3,
                                         "finished": True}
    assert state["rows_written"] == {first: 6, second: 3}
    assert [t["status"] for t in state["trials"]] == ["RUNNING", "TERMINATED"]
    with open(os.path.join(path, first, "result.jsonl")) as handle:
        assert len(handle.readlines()) == 8  # rows 7 and 8 are on disk, past the recovery point

    executor = simulator()
    results = Tuner.restore(path, executor.trainable, run_config=RunConfig(verbose=0, executor=executor)).fit()
    # the finished trial did not run again; the other went on from its checkpoint at 6, rows 7 and 8 once
    (resume,) = results.events_of("experiment_resume")
    assert resume["resumed_trials"] == [first] and resume["dropped_rows"] == {first: 2, second: 0}
    starts = [e for e in results.events[resume["seq"]:] if e["event"] == "trial_start"]
    assert [(e["trial_id"], e["checkpoint"], e["reason"]) for e in starts] == \
        [(first, f"{first}/checkpoint_000001", "resume")]
    history = results[0].history()
    assert [r["training_iteration"] for r in history] == list(range(1, 11))
    assert history[6]["restored_from"] == {"trial_id": first, "checkpoint": f"{first}/checkpoint_000001",
                                           "iteration": 6, "reason": "resume"}
    assert [r["training_iteration"] for r in results[1].history()] == [1, 2, 3]
