"""MedianStoppingRule driven with scripted reports: Ray 2.60's running means and medians by hand, hard and
soft stops, yielding to waiting trials, resume, argument errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from early_stopping_fakes import add_trials, json_round_trip, report, run_script
from pbtlab.errors import ConfigError
from pbtlab.schedulers import Action, MedianStoppingRule


def make_rule(**kwargs) -> MedianStoppingRule:
    settings = dict(time_attr="training_iteration", metric="score", mode="max", grace_period=2,
                    min_samples_required=2)
    settings.update(kwargs)
    rule = MedianStoppingRule(**settings)
    rule.set_rng(np.random.default_rng(0))
    return rule


def test_defaults_are_rays():
    rule = MedianStoppingRule()
    assert (rule.time_attr, rule.metric, rule.mode, rule.grace_period, rule.min_samples_required,
            rule.min_time_slice, rule.hard_stop) == ("time_total_s", None, None, 60.0, 3, 0, True)


def play_first_three(rule, population, t2_scores=(0.0, 1.0)):
    """t0 reports 1, 3, 5 and t1 2, 4, 6 at iterations 1-3 (too few others to judge them); then t2."""
    decisions = [report(rule, population, "t0", t, v) for t, v in ((1, 1.0), (2, 3.0), (3, 5.0))]
    decisions += [report(rule, population, "t1", t, v) for t, v in ((1, 2.0), (2, 4.0), (3, 6.0))]
    assert [d.action for d in decisions] == [Action.CONTINUE] * 6 and not any(d.notes for d in decisions)
    return [report(rule, population, "t2", t, v) for t, v in zip((1, 2), t2_scores)]


def test_stops_a_trial_whose_best_is_below_the_median_of_running_means():
    rule = make_rule()
    population = add_trials(rule, 4)
    at_1, at_2 = play_first_three(rule, population)
    assert at_1.action is Action.CONTINUE  # before grace_period
    # at iteration 2: t0's mean over [2, 2] is 3, t1's is 4 -> median 3.5; t2's best is 1
    assert at_2.action is Action.STOP
    (note,) = at_2.notes
    assert note.kind == "median_stopped"
    assert note.data == {"time_attr": "training_iteration", "time_value": 2.0, "metric": "score", "value": 1.0,
                         "median": 3.5, "num_compared": 2, "action": "stop"}
    assert note.message == ("[MedianStoppingRule] trial t2 stopped at training_iteration=2: its best score=1 is "
                            "lower than the median 3.5 of 2 other trials' running means")
    # t3 at 2: others t0 (3), t1 (4) and t2 (1) -> median 3; 3.6 is not worse
    assert report(rule, population, "t3", 2, 3.6).action is Action.CONTINUE
    assert rule.debug_string() == "Using MedianStoppingRule: num_stopped=1."


def test_running_means_use_reports_from_grace_period_up_to_now():
    rule = make_rule()
    population = add_trials(rule, 2)
    for t, v in ((1, 100.0), (2, 3.0), (3, 5.0), (4, 7.0)):
        report(rule, population, "t0", t, v)
    assert rule.running_mean("t0", 3) == 4.0 and rule.running_mean("t0", 4) == 5.0
    assert np.isnan(rule.running_mean("t1", 4))


def test_min_mode():
    rule = make_rule(mode="min", metric="loss")
    population = add_trials(rule, 3)
    for tid, values in (("t0", (5.0, 3.0)), ("t1", (6.0, 4.0))):
        for t, v in zip((1, 2), values):
            report(rule, population, tid, t, v, metric="loss")
    worse = report(rule, population, "t2", 2, 3.6, metric="loss")  # median of 3 and 4 is 3.5: 3.6 is worse
    assert worse.action is Action.STOP and "is higher than the median 3.5" in worse.notes[0].message


def test_soft_stop_pauses_once_and_never_judges_again():
    rule = make_rule(hard_stop=False)
    population = add_trials(rule, 3)
    _, at_2 = play_first_three(rule, population)
    assert at_2.action is Action.PAUSE and at_2.notes[0].data["action"] == "pause"
    again = report(rule, population, "t2", 3, -100.0)
    assert again.action is Action.CONTINUE and again.notes == []
    assert rule.num_stopped == 1


def test_too_few_samples_yields_to_waiting_trials_after_min_time_slice():
    rule = make_rule(min_samples_required=5, min_time_slice=2)
    population = add_trials(rule, 2)
    population["t1"].waiting = True
    actions = [report(rule, population, "t0", t, 1.0).action for t in (1, 2, 3, 4, 5)]
    # judged from 2 on; yields at 2 (never yielded), then once 2 + min_time_slice is exceeded (5 - 2 = 3 > 2)
    assert actions == [Action.CONTINUE, Action.PAUSE, Action.CONTINUE, Action.CONTINUE, Action.PAUSE]
    population["t1"].waiting = False
    assert report(rule, population, "t0", 9, 1.0).action is Action.CONTINUE  # nobody waits


def test_waiting_trials_that_never_ran_go_first():
    rule = make_rule()
    population = add_trials(rule, 3)
    report(rule, population, "t0", 1, 1.0)
    candidates = [population[t] for t in ("t0", "t1", "t2")]
    assert rule.choose_trials_to_run(candidates, 2) == ["t1", "t2"]
    assert rule.choose_trials_to_run(candidates, 3) == ["t1", "t2", "t0"]


def test_a_completed_trials_last_report_counts_again_as_in_ray():
    rule = make_rule()
    population = add_trials(rule, 1)
    report(rule, population, "t0", 2, 3.0)
    rule.on_trial_complete("t0", population)
    assert rule.state_dict()["results"]["t0"] == [[2.0, 3.0], [2.0, 3.0]]


SCRIPT = [(f"t{i}", t, float((i * 3 + t) % 5) + 0.1 * t) for t in range(1, 8) for i in range(6)]


def test_resume_mid_run_gives_the_same_decisions():
    reference = make_rule(hard_stop=False)
    population = add_trials(reference, 6)
    expected = run_script(reference, population, SCRIPT)
    first = make_rule(hard_stop=False)
    population = add_trials(first, 6)
    head = run_script(first, population, SCRIPT[:20])
    resumed = MedianStoppingRule.from_description(json_round_trip(first.describe()))
    resumed.load_state_dict(json_round_trip(first.state_dict()))
    tail = run_script(resumed, copy.deepcopy(population), SCRIPT[20:])
    assert head + tail == expected
    assert json_round_trip(resumed.state_dict()) == json_round_trip(reference.state_dict())
    assert any(s[2][0] == "pause" for s in expected)


def test_describe_round_trips():
    rule = make_rule(hard_stop=False, min_time_slice=3)
    description = rule.describe()
    assert description == {"type": "MedianStoppingRule",
                           "class": "pbtlab.schedulers.median_stopping:MedianStoppingRule",
                           "time_attr": "training_iteration", "metric": "score", "mode": "max", "grace_period": 2,
                           "min_samples_required": 2, "min_time_slice": 3, "hard_stop": False}
    assert MedianStoppingRule.from_description(description).describe() == description


@pytest.mark.parametrize("kwargs, message", [
    (dict(grace_period=-1), "grace_period must be in [0, inf], got -1"),
    (dict(min_samples_required=0), "min_samples_required must be an int >= 1, got 0 (int)"),
    (dict(min_samples_required=2.0), "min_samples_required must be an int >= 1, got 2.0 (float)"),
    (dict(min_time_slice=float("nan")), "min_time_slice must be a finite number, got nan (float)"),
    (dict(hard_stop="no"), "hard_stop must be True or False, got 'no'"),
    (dict(mode="best"), "mode must be 'min' or 'max', got 'best'"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ConfigError) as info:
        MedianStoppingRule(**kwargs)
    assert str(info.value) == message
