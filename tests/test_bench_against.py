"""The benchmarks' ``--against REV``: another revision's pbtlab, run alternating with this tree's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")),
                       reason="needs a git checkout (the revision comes from git archive)"),
]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def test_scaling_runs_another_revision_alternating_and_prints_each_pair():
    done = bench("bench/scaling.py", "--populations", "2", "--iterations", "8", "--repeats", "2", "--switch",
                 "greenlets", "--against", "HEAD")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    rows = [line.split() for line in lines if line.startswith("sync")]
    assert [row[3] for row in rows[-3:-1]] == ["HEAD", "here"]  # the table: one row per code version
    pair = rows[-1]  # the paired differences: two pairs, their median, how many this tree won
    assert pair[:4] == ["sync", "greenlets", "on", "2"] and len(pair) == 10  # the 2 pairs, median, "k of 2"
    assert all(value[0] in "+-" for value in pair[4:7]) and pair[-3] in ("0", "1", "2") and pair[-2:] == ["of", "2"]
    assert "here against HEAD, run by run" in done.stdout


def test_an_unknown_revision_is_a_clear_error():
    done = bench("bench/scaling.py", "--populations", "2", "--iterations", "4", "--repeats", "1", "--against",
                 "no-such-revision")
    assert done.returncode != 0
    assert "--against no-such-revision: git archive failed" in done.stderr
    assert "give a commit, branch or tag" in done.stderr


def test_seed_benchmark_puts_another_revision_in_its_rotation():
    done = bench("bench/seed_pbt.py", "--runs", "2", "--against", "HEAD")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--runs 2 --against HEAD)" in done.stdout.splitlines()[0]
    assert any(line.startswith("  the same with HEAD's pbtlab") for line in done.stdout.splitlines())
    paired = [line for line in done.stdout.splitlines() if line.startswith("this tree against HEAD, run by run")]
    assert len(paired) == 1 and " of 2 runs faster here; ratio with HEAD's: " in paired[0]
