"""Crash cost as a matrix: executors x schedulers x checkpoint frequency x kill points.

Each case runs ``crash_driver.py`` (4 function trials at different speeds, 30 iterations each), SIGKILLs
the driver when the trials together have run ``kill_at`` iterations, waits for its trial processes to end,
restores the run and checks:

- re-run work: the iterations run before the kill whose rows the state did not keep are at most the
  floor, each unfinished trial's iterations since its own last checkpoint (all of them without checkpoints);
- finished trials are untouched: they run no iteration after the restore and their rows are byte-identical;
- rows are exact: every trial ends at iteration 30; its rows count 1, 2, 3, ... (an exploit jumps to the
  donor's checkpoint and says so in ``restored_from``); the trainable's own step equals the engine's
  ``training_iteration`` in every row (what was restored is what the rows say); at the resume a trial's
  rows go on from its last kept row, none lost and none repeated;
- the event log records the resume, with the rows it dropped.

The runs save every recovery point (``RunConfig(state_save_period_s=0)``): by default saving is capped at
5% of the run, which these trials, with iterations of 10 to 80 ms, can exceed on a loaded machine (then a
recovery point waits, and a crash in that moment costs more; ``bench/crash_cost.py`` measures the default).
The measured case of issue 17 (FIFO, a checkpoint every 3 iterations, killed at 80 of 120) runs on every
executor by default; more process-executor cases are marked slow, and every Ray case is marked ray. The
wide matrix (every scheduler x checkpoint frequency x kill point) runs on the simulated executor, in
virtual time: tests/test_chaos_simulated.py.
"""

from __future__ import annotations

import itertools
import json
import os

import pytest
from crash_cost import kill_and_restore
from run_files import assert_rows_continue

ITERATIONS = 30

#: (executor, scheduler, every, kill_at) run by default: the issue's case everywhere, and one of each kind.
DEFAULT = [
    ("inprocess", "fifo", 3, 80),
    ("process", "fifo", 3, 80),
    ("process", "pbt-async", 3, 50),
    ("inprocess", "pbt-sync", 1, 60),
    ("process", "fifo", 0, 40),
    ("greenlets", "pbt-async", 3, 50),
]
KILL_POINTS = (30, 80, 105)  # early (nothing finished), the issue's, late (most finished)


def wide_cases():
    """With real processes, every scheduler x checkpoint frequency, at kill points taken in turn. The wider
    matrix (every kill point with every kind) runs on the simulated executor: tests/test_chaos_simulated.py."""
    combos = itertools.product(("fifo", "pbt-sync", "pbt-async"), (1, 3, 0))
    for index, (scheduler, every) in enumerate(combos):
        case = ("process", scheduler, every, KILL_POINTS[index % len(KILL_POINTS)])
        if case not in DEFAULT:
            yield case


WIDE = list(wide_cases())
RAY = [("ray", "fifo", 3, 80), ("ray", "pbt-async", 1, 60), ("ray", "pbt-sync", 3, 50)]  # each starts Ray twice
#: With the loggers' helper process writing the result rows (as in runs of 64 trials or more).
HELPER = [("inprocess", "fifo", 3, 80), ("greenlets", "pbt-sync", 1, 60)]


def params():
    for case in DEFAULT:
        yield pytest.param(*case, False, id="-".join(map(str, case)))
    for case in HELPER:
        yield pytest.param(*case, True, id="-".join(map(str, case)) + "-helper")
    for case in WIDE:
        yield pytest.param(*case, False, id="-".join(map(str, case)), marks=pytest.mark.slow)
    for case in RAY:
        marks = [pytest.mark.ray] + ([] if case == RAY[0] else [pytest.mark.slow])
        yield pytest.param(*case, False, id="-".join(map(str, case)), marks=marks)


def result_rows(path, trial_id):
    with open(os.path.join(path, trial_id, "result.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def events(path):
    with open(os.path.join(path, "events.jsonl")) as handle:
        return [json.loads(line) for line in handle]


@pytest.mark.parametrize("executor, scheduler, every, kill_at, helper", list(params()))
def test_a_driver_sigkill_costs_each_trial_at_most_its_work_since_its_last_checkpoint(
        tmp_path, executor, scheduler, every, kill_at, helper):
    if executor == "ray":
        pytest.importorskip("ray", reason="make test installs ray (pip install 'pbtlab[ray]')")
    args = ["--executor", executor, "--scheduler", scheduler, "--every", str(every), "--save-period", "0"]
    args += ["--helper"] if helper else []
    run = kill_and_restore(str(tmp_path), args, kill_at)
    assert sum(len(steps) for steps in run.before.values()) >= kill_at

    # re-run work is at most the floor
    assert run.rerun() <= run.floor(every), (run.before, run.rows_kept, run.finished_at_kill)
    if scheduler == "fifo":
        assert run.rerun_by_step() <= run.floor(every)

    # finished trials are untouched
    for trial_id in run.finished_at_kill:
        assert trial_id not in run.after
        with open(os.path.join(run.path, trial_id, "result.jsonl"), "rb") as handle:
            assert handle.read() == run.results_at_kill[trial_id]

    # rows are exact
    log = events(run.path)
    (resume,) = [e for e in log if e["event"] == "experiment_resume"]
    assert sorted(resume["resumed_trials"]) == sorted(set(run.rows_kept) - run.finished_at_kill)
    for trial_id, kept in run.rows_kept.items():
        rows = result_rows(run.path, trial_id)
        assert_rows_continue(rows, ITERATIONS)
        if trial_id not in run.finished_at_kill and 0 < kept < len(rows):
            # it restarts from its recovery point: its checkpoint, or a decided exploit carried out again
            # (with no checkpoint it starts afresh; at its last checkpoint with nothing left, it just ends)
            assert rows[kept]["restored_from"]["reason"] in ("resume", "exploit", "explore")
        if scheduler == "fifo":
            assert [row["training_iteration"] for row in rows] == list(range(1, ITERATIONS + 1))
            assert [row["score"] for row in rows] == [float(step) for step in range(1, ITERATIONS + 1)]
    assert log[-1]["event"] == "experiment_end"
    assert set(log[-1]["statuses"].values()) == {"TERMINATED"}
