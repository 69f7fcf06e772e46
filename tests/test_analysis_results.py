"""pbtlab.analysis.results: ResultGrid built from plain values, and the one "best trial" rule."""

from __future__ import annotations

import json
import math
import os

import pytest

import pbtlab
from pbtlab.analysis import Result, ResultGrid, load_results
from pbtlab.analysis.results import finite_number, pick_best
from pbtlab.errors import ConfigError
from pbtlab.rundir.store import RESULT_FILE


def test_public_names_are_importable_from_the_package_and_pbtlab():
    assert (pbtlab.ResultGrid, pbtlab.Result, pbtlab.load_results) == (ResultGrid, Result, load_results)


@pytest.mark.parametrize("value, number", [(1, 1.0), ("2.5", 2.5), (float("nan"), None), (math.inf, None),
                                           (None, None), ("x", None), ({}, None)])
def test_finite_number(value, number):
    assert finite_number(value) == number


def test_pick_best_takes_the_highest_and_the_first_on_ties():
    assert pick_best([("a", 1.0), ("b", 3.0), ("c", 3.0), ("d", None), ("e", math.nan)]) == "b"
    assert pick_best([("a", math.inf), ("b", 1.0)]) == "b"
    assert pick_best([("a", math.inf), ("b", 1.0)], filter_nan_and_inf=False) == "a"
    assert pick_best([("a", None)]) is None


def _write_rows(root: str, trial_id: str, rows: list[dict]) -> None:
    os.makedirs(os.path.join(root, trial_id))
    with open(os.path.join(root, trial_id, RESULT_FILE), "w", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in rows))


def test_a_grid_from_plain_values(tmp_path):
    """What the engine hands over at the end of a run: path, settings, trial records, rows written."""
    root = str(tmp_path)
    _write_rows(root, "t0", [{"training_iteration": 1, "loss": 3.0}, {"training_iteration": 2, "loss": 1.0}])
    _write_rows(root, "t1", [{"training_iteration": 1, "loss": 2.0}, {"training_iteration": 2, "loss": 0.5}])
    records = [{"trial_id": "t0", "config": {"lr": 0.1}, "status": "TERMINATED", "last_result": {"loss": 1.0}},
               {"trial_id": "t1", "config": {"lr": 0.2}, "status": "TERMINATED", "last_result": {"loss": 2.0}}]
    grid = ResultGrid(root, {"metric": "loss", "mode": "min"}, records, rows_written={"t1": 1})
    assert [r.trial_id for r in grid] == ["t0", "t1"]
    assert grid.get_best_result().trial_id == "t0"          # last values 1.0 vs 2.0 (min)
    assert [row["loss"] for row in grid[1].history()] == [2.0]  # rows written when the state was saved
    assert grid.get_best_result(scope="all").trial_id == "t0"
    assert grid.get_best_result("loss", "max").trial_id == "t1"
    with pytest.raises(ConfigError, match=r"no trial reported a usable value of metric 'acc'; the trials reported "
                                          r"\['loss'\]"):
        grid.get_best_result("acc", "max")
