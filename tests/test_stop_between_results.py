"""A time budget or a stopper's stop_all() ends a run while trials are inside an iteration, on executors
that can poll (process, Ray), as Ray checks between results: a trial stuck in a long iteration does not hold
the run past its budget. What was reported before is kept, and the run ends cleanly."""

from __future__ import annotations

import os

import pytest
from executor_trainables import reports_then_sticks
from run_files import read_jsonl

from pbtlab import RunConfig, TuneConfig, Tuner, tune
from pbtlab.tune.stopper import TimeoutStopper


@pytest.mark.timeout(90)
@pytest.mark.parametrize("executor", ["process", pytest.param("ray", marks=pytest.mark.ray)])
@pytest.mark.parametrize("how", ["time_budget", "stop_all"])
def test_the_run_ends_while_every_trial_is_inside_an_iteration(tmp_path, how, executor, request):
    """Both trials report 3 times, then spend 60 s in their 4th iteration."""
    if executor == "ray":
        request.getfixturevalue("ray_runtime")
    seconds = 8.0 if executor == "ray" else 1.5  # Ray's actors can take seconds to start on 2 busy cores
    budget = {"time_budget_s": seconds} if how == "time_budget" else {}
    stop = TimeoutStopper(seconds) if how == "stop_all" else None
    grid = Tuner(reports_then_sticks, param_space={"x": tune.grid_search([1, 2])},
                 tune_config=TuneConfig(num_samples=1, seed=0, **budget),
                 run_config=RunConfig(storage_path=str(tmp_path), name=how, verbose=0, executor=executor,
                                      stop=stop)).fit()
    assert [r.status for r in grid] == ["TERMINATED", "TERMINATED"]
    completes = grid.events_of("trial_complete")
    assert [(e["reason"], e["was_running"], e["iteration"]) for e in completes] == [(how, True, 3)] * 2
    for result in grid:  # what was reported before the budget ran out is all there
        rows = read_jsonl(os.path.join(result.path, "result.jsonl"))
        assert [r["training_iteration"] for r in rows] == [1, 2, 3]
    assert grid.events[-1]["event"] == "experiment_end"
    assert Tuner.can_restore(grid.experiment_path)
