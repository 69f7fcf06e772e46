"""Fault injection: SIGKILL the driver at seeded random points, resume each time, compare with a run
that was never interrupted; and trials that raise at fixed iterations on top."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from pbtlab import load_results
from pbtlab.rundir.store import is_wall_clock_field

WORKER = os.path.join(os.path.dirname(__file__), "chaos_worker.py")
DECISIONS = ("exploit", "explore", "exploit_skipped")
TOTAL_REPORTS = 4 * 100


def drive(storage: str, name: str, seed: int, kill_after: int, fail_dir: str | None) -> int:
    scratch = os.path.join(storage, ".tmp")  # a SIGKILL leaves open temporary directories: keep them here
    os.makedirs(scratch, exist_ok=True)
    completed = subprocess.run(
        [sys.executable, WORKER, storage, name, str(seed), str(kill_after), fail_dir or "-"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": scratch})
    if completed.returncode not in (0, -9):
        raise AssertionError(f"worker failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return completed.returncode


def decisions(grid):
    return [{k: v for k, v in e.items() if k not in ("seq", "time", "time_value")}
            for e in grid.events if e["event"] in DECISIONS]


def rows(result):
    """History rows without wall-clock fields and restore markers (a resume restores state, too)."""
    out = []
    for row in result.history():
        kept = {k: v for k, v in row.items()
                if not is_wall_clock_field(k) and k not in ("restored_from", "iterations_since_restore")}
        marker = row.get("restored_from")
        kept["replaced_by"] = marker["reason"] if marker and marker["reason"] != "resume" else None
        out.append(kept)
    return out


def assert_same_run(interrupted, reference):
    assert [r.trial_id for r in interrupted] == [r.trial_id for r in reference]
    assert decisions(interrupted) == decisions(reference)
    for got, want in zip(interrupted, reference):
        assert got.status == want.status == "TERMINATED"
        assert got.config == want.config
        assert rows(got) == rows(want)
    with open(os.path.join(interrupted.experiment_path, "pbt_global.txt")) as a, \
            open(os.path.join(reference.experiment_path, "pbt_global.txt")) as b:
        assert a.read() == b.read()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
def test_sigkill_at_random_points_then_resume_matches_uninterrupted_run(tmp_path, seed):
    storage = str(tmp_path / "runs")
    assert drive(storage, "reference", seed, 0, None) == 0
    rng = random.Random(seed)
    # Each driver process counts its own reports; three kills of at most 100 reports each always land
    # before the 400 reports of the run are done.
    kills = [rng.randint(1, TOTAL_REPORTS // 4) for _ in range(3)]
    for kill_after in kills:
        assert drive(storage, "chaos", seed, kill_after, None) == -9
    assert drive(storage, "chaos", seed, 0, None) == 0
    interrupted = load_results(os.path.join(storage, "chaos"))
    reference = load_results(os.path.join(storage, "reference"))
    resumes = interrupted.events_of("experiment_resume")
    assert len(resumes) == len(kills)
    assert_same_run(interrupted, reference)


@pytest.mark.slow
def test_sigkill_with_failing_trials_matches_uninterrupted_run_with_the_same_failures(tmp_path):
    storage = str(tmp_path / "runs")
    reference_failures = tmp_path / "fail_ref"
    chaos_failures = tmp_path / "fail_chaos"
    reference_failures.mkdir()
    chaos_failures.mkdir()
    assert drive(storage, "reference", 5, 0, str(reference_failures)) == 0
    for kill_after in (57, 131, 90):
        assert drive(storage, "chaos", 5, kill_after, str(chaos_failures)) == -9
    assert drive(storage, "chaos", 5, 0, str(chaos_failures)) == 0
    interrupted = load_results(os.path.join(storage, "chaos"))
    reference = load_results(os.path.join(storage, "reference"))
    errors = [e for e in reference.events if e["event"] == "trial_error"]
    assert len(errors) == 3 and all(e["will_retry"] for e in errors)
    assert_same_run(interrupted, reference)
    assert sorted(os.listdir(chaos_failures)) == sorted(os.listdir(reference_failures)) == ["0_61", "1_10", "3_37"]
