"""pbtlab.analysis.events: the one event formatter, used by ``pbtlab events`` and the HTML report."""

from __future__ import annotations

import pytest

from pbtlab.analysis.events import describe_event, format_event, format_field

EXPLOIT = {"seq": 7, "event": "exploit", "time": 1.5, "trial_id": "t1", "donor": "t0", "target_iteration": 8,
           "target_tag": "1", "donor_tag": "0", "donor_iteration": 6, "checkpoint": "t0/checkpoint_000002",
           "target_score": 0.123456789, "donor_score": 0.9, "old_config": {"lr": 0.1}, "donor_config": {"lr": 0.01},
           "time_attr": "training_iteration", "time_value": 8}
EXPLORE = {"seq": 8, "event": "explore", "time": 1.6, "trial_id": "t1", "donor": "t0", "iteration": 6,
           "target_iteration": 8, "new_config": {"lr": 0.012, "act": "relu"},
           "changes": [{"param": "lr", "old": 0.01, "op": "* 1.2", "new": 0.012000000000000002},
                       {"param": "act", "old": "tanh", "op": "resample", "new": "relu"}]}


def test_exploit_line_names_both_trials_scores_and_the_checkpoint():
    assert format_event(EXPLOIT) == ("#7 exploit: t1 (score 0.123457, iteration 8) clones t0 (score 0.9, "
                                     "checkpoint of iteration 6: t0/checkpoint_000002)")


def test_exploit_with_unrankable_scores_still_formats():
    assert describe_event({**EXPLOIT, "target_score": None, "donor_score": float("nan")}) == (
        "t1 (score , iteration 8) clones t0 (score nan, checkpoint of iteration 6: t0/checkpoint_000002)")


def test_explore_line_lists_each_change():
    assert format_event(EXPLORE) == "#8 explore: t1: lr: 0.01 --(* 1.2)--> 0.012; act: tanh --(resample)--> relu"
    only = {**EXPLORE, "donor": None, "changes": []}
    assert describe_event(only) == "t1 (explore only: own weights): no change"


def test_other_kinds_are_key_value_lines_without_long_fields():
    error = {"seq": 3, "event": "trial_error", "time": 2.0, "trial_id": "t0", "iteration": 4, "error_type": "KeyError",
             "message": "'x'", "traceback": "Traceback ...", "num_failures": 1, "will_retry": True}
    assert format_event(error) == ("#3 trial_error: trial_id=t0, iteration=4, error_type=KeyError, message='x', "
                                   "num_failures=1, will_retry=True")
    end = {"seq": 9, "event": "experiment_end", "time": 3.0, "scheduler": "PBT", "statuses": {"t0": "TERMINATED"}}
    assert format_event(end) == '#9 experiment_end: scheduler=PBT, statuses={"t0": "TERMINATED"}'


def test_an_exploit_record_missing_fields_falls_back_to_key_value():
    partial = {"seq": 7, "event": "exploit", "trial_id": "t1", "donor": "t0"}
    assert format_event(partial) == "#7 exploit: trial_id=t1, donor=t0"


@pytest.mark.parametrize("value, shown", [(0.0, "0"), (1 / 3, "0.333333"), (float("inf"), "inf"), (None, ""),
                                          ([1, "a"], '[1, "a"]'), ("text", "text"), (3, "3")])
def test_values(value, shown):
    assert format_field(value) == shown
