"""The wide crash matrix on the simulated executor: FIFO, synchronous and asynchronous PBT x a checkpoint every
1, every 3 or never x kill points, in virtual time (no processes, no sleeps).

A crash is what a driver SIGKILL leaves on disk: when the run has handled its ``kill_at``-th report, a
callback copies the run directory as it is (rows and events buffered since the last save are not in it,
as they would not be after a SIGKILL) and stops the driver. The copy is restored with a fresh simulated
executor. ``tests/test_chaos_matrix.py`` does the same with real SIGKILLs on the three real executors.

Checked for every case: each unfinished trial re-runs at most its reports since its last saved checkpoint
(the report being handled at the crash is not saved yet); finished trials do not start again and their rows
are untouched; rows are exact (FIFO: iterations 1..30 and the scores of an uninterrupted run; PBT: every row
continues the one before it, or the checkpoint that ``restored_from`` names).
"""

from __future__ import annotations

import collections
import json
import os
import shutil

import pytest
from run_files import assert_rows_continue

from pbtlab import tune
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.executors.simulated import SimulatedExecutor
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.tuner import Tuner

ITERATIONS = 30
SPEEDS = [1.0, 1.5, 6.0, 8.0]  # virtual seconds an iteration


def simulator(every):
    return SimulatedExecutor(result=lambda config, iteration, state: {"score": state, "step": iteration},
                             update=lambda config, iteration, state: state + config["lr"],
                             duration=lambda config, iteration, state: config["speed"], initial_state=0.0,
                             iterations=ITERATIONS, checkpoint_every=every)


def scheduler_for(kind):
    if kind == "fifo":
        return None
    return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=4,
                                   hyperparam_mutations={"lr": [0.5, 1.0, 2.0, 4.0]}, synch=kind == "pbt-sync")


class Crash(tune.Callback):
    """At the ``kill_at``-th report, copy the run directory as a SIGKILL would leave it, then stop."""

    def __init__(self, path, copy_to, kill_at):
        self.path, self.copy_to, self.kill_at = path, copy_to, kill_at
        self.reports = collections.defaultdict(list)  # trial -> whether each report had a checkpoint
        self.crashed_in = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.reports[trial.trial_id].append(result["checkpoint_dir_name"] is not None)
        if sum(len(r) for r in self.reports.values()) == self.kill_at:
            shutil.copytree(self.path, self.copy_to)
            self.crashed_in = trial.trial_id
            raise KeyboardInterrupt


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def rows_of(path, trial_id):
    with open(os.path.join(path, trial_id, "result.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def floor_of(reports, crashed):
    """Reports since the last checkpoint the state can hold (the one being handled at the crash is not saved)."""
    saved = reports[:-1] if crashed else reports
    last = max((i for i, has in enumerate(saved) if has), default=-1)
    return len(reports) - (last + 1)


@pytest.mark.parametrize("kill_at", [20, 50, 75])
@pytest.mark.parametrize("every", [1, 3, 0])
@pytest.mark.parametrize("kind", ["fifo", "pbt-sync", "pbt-async"])
def test_a_crash_costs_each_trial_at_most_its_work_since_its_last_checkpoint(tmp_path, kind, every, kill_at):
    path, crash_copy = str(tmp_path / "runs" / "run"), str(tmp_path / "crashed" / "run")
    crash = Crash(path, crash_copy, kill_at)
    with pytest.raises(KeyboardInterrupt):
        Tuner(simulator(every).trainable, param_space={"speed": tune.grid_search(SPEEDS), "lr": 1.0},
              tune_config=TuneConfig(metric="score", mode="max", seed=0, scheduler=scheduler_for(kind)),
              run_config=RunConfig(storage_path=str(tmp_path / "runs"), name="run", verbose=0, state_save_period_s=0,
                                   executor=simulator(every), callbacks=[crash])).fit()
    state = read_json(os.path.join(crash_copy, "state.json"))
    finished = {tid for tid, point in state["recovery"].items() if point["finished"]}
    kept = state["rows_written"]
    before = {tid: open(os.path.join(crash_copy, tid, "result.jsonl"), "rb").read() for tid in finished}

    # re-run work: the reports each unfinished trial made that the state does not keep, at most the floor
    for trial_id, reports in crash.reports.items():
        if trial_id in finished:
            continue
        rerun = len(reports) - kept[trial_id]
        assert 0 <= rerun <= floor_of(reports, trial_id == crash.crashed_in), (trial_id, reports, kept)

    results = Tuner.restore(crash_copy, simulator(every).trainable,
                            run_config=RunConfig(verbose=0, executor=simulator(every))).fit()
    events = results.events
    resume_at = next(i for i, e in enumerate(events) if e["event"] == "experiment_resume")
    started = {e["trial_id"] for e in events[resume_at:] if e["event"] == "trial_start"}
    assert not started & finished
    for trial_id in finished:
        assert open(os.path.join(crash_copy, trial_id, "result.jsonl"), "rb").read() == before[trial_id]
    assert all(r.status == "TERMINATED" for r in results)
    for result in results:
        rows = rows_of(crash_copy, result.trial_id)
        assert_rows_continue(rows, ITERATIONS)
        if kind == "fifo":
            assert [row["training_iteration"] for row in rows] == list(range(1, ITERATIONS + 1))
            assert [row["score"] for row in rows] == [float(i) for i in range(1, ITERATIONS + 1)]
