"""AsyncHyperBandScheduler / ASHAScheduler driven with scripted reports: Ray 2.60's rungs, cutoffs and
decisions, computed by hand; the events they record; seeded bracket choice; resume; argument errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from early_stopping_fakes import FakePopulation, add_trials, json_round_trip, report, run_script
from pbtlab.errors import ConfigError
from pbtlab.rundir.records import EventKind, event_from_dict
from pbtlab.schedulers import Action, ASHAScheduler, AsyncHyperBandScheduler


def make_asha(seed: int = 0, **kwargs) -> AsyncHyperBandScheduler:
    settings = dict(metric="score", mode="max", max_t=27, grace_period=1, reduction_factor=3)
    settings.update(kwargs)
    asha = AsyncHyperBandScheduler(**settings)
    asha.set_rng(np.random.default_rng(seed))
    return asha


def test_ashascheduler_is_the_alias_and_the_defaults_are_rays():
    assert ASHAScheduler is AsyncHyperBandScheduler
    asha = ASHAScheduler()
    assert (asha.time_attr, asha.metric, asha.mode, asha.max_t, asha.grace_period, asha.reduction_factor,
            asha.num_brackets, asha.stop_last_trials) == ("training_iteration", None, None, 100, 1, 4, 1, True)


@pytest.mark.parametrize("kwargs, milestones", [
    (dict(max_t=100, grace_period=1, reduction_factor=4), [[1, 4, 16, 64]]),  # int(log(100)/log(4) + 1) = 4
    (dict(max_t=100, grace_period=1, reduction_factor=4, brackets=2), [[1, 4, 16, 64], [4, 16, 64]]),
    (dict(max_t=27, grace_period=1, reduction_factor=3), [[1, 3, 9, 27]]),
    (dict(max_t=10, grace_period=5, reduction_factor=2), [[5, 10]]),
    (dict(max_t=5, grace_period=5, reduction_factor=2), [[5]]),
])
def test_rungs_are_rays(kwargs, milestones):
    asha = make_asha(**kwargs)
    assert [asha.milestones(b) for b in range(asha.num_brackets)] == milestones


def test_cutoffs_and_decisions_at_one_rung_by_hand():
    """reduction_factor 3: a trial goes on if its score is at least the 66.7th percentile (numpy's linear
    interpolation) of the scores recorded at the rung before it."""
    asha = make_asha()
    population = add_trials(asha, 6)
    first = report(asha, population, "t0", 1, 10.0)
    assert first.action is Action.CONTINUE
    (note,) = first.notes
    assert note.kind == "rung_promoted" and note.data["cutoff"] is None and note.data["num_compared"] == 0
    # recorded [10]: cutoff 10 -> 20 goes on; recorded [10, 20]: cutoff 10 + 2/3 * 10 -> 30 goes on
    assert report(asha, population, "t1", 1, 20.0).notes[0].data["cutoff"] == pytest.approx(10.0)
    assert report(asha, population, "t2", 1, 30.0).notes[0].data["cutoff"] == pytest.approx(10 + 2 / 3 * 10)
    # recorded [10, 20, 30]: cutoff at index 2/3 * 2 = 1.333 -> 20 + 1/3 * 10 = 23.333; 23 is below it
    stopped = report(asha, population, "t3", 1, 23.0)
    assert stopped.action is Action.STOP
    (note,) = stopped.notes
    assert note.kind == "rung_stopped"
    assert note.data == {"scheduler": "AsyncHyperBand", "bracket": 0, "rung": 0, "milestone": 1,
                         "time_attr": "training_iteration", "time_value": 1.0, "metric": "score", "value": 23.0,
                         "cutoff": pytest.approx(23 + 1 / 3), "num_compared": 3, "reason": "below_cutoff"}
    assert "stopped at rung 0 (training_iteration=1) of bracket 0: score=23 worse than cutoff 23.3333" in note.message
    # a stopped trial's score is recorded too (as Ray): [10, 20, 30, 23] -> index 2.0 -> 23; 24 goes on
    promoted = report(asha, population, "t4", 1, 24.0)
    assert promoted.action is Action.CONTINUE and promoted.notes[0].data["cutoff"] == pytest.approx(23.0)
    assert asha.num_stopped == 1


def test_min_mode_compares_sign_adjusted_and_reports_the_cutoff_in_metric_units():
    asha = make_asha(mode="min", metric="loss")
    population = add_trials(asha, 4)
    for tid, loss in (("t0", 10.0), ("t1", 20.0), ("t2", 30.0)):
        report(asha, population, tid, 1, loss, metric="loss")
    # sign-adjusted [-10, -20, -30]: 66.7th percentile -20 + 1/3 * 10 = -16.667, i.e. a loss of 16.667
    worse = report(asha, population, "t3", 1, 17.0, metric="loss")
    assert worse.action is Action.STOP and worse.notes[0].data["cutoff"] == pytest.approx(16 + 2 / 3)
    asha2 = make_asha(mode="min", metric="loss")
    population2 = add_trials(asha2, 4)
    for tid, loss in (("t0", 10.0), ("t1", 20.0), ("t2", 30.0)):
        report(asha2, population2, tid, 1, loss, metric="loss")
    assert report(asha2, population2, "t3", 1, 16.0, metric="loss").action is Action.CONTINUE


def test_a_trial_is_judged_once_per_rung_highest_rung_first():
    asha = make_asha()
    population = add_trials(asha, 2)
    assert report(asha, population, "t0", 1, 5.0).notes[0].data["rung"] == 0
    assert report(asha, population, "t0", 2, 6.0).notes == []  # between rungs: nothing to decide
    jumped = report(asha, population, "t0", 10, 7.0)  # past rungs 1 (3) and 2 (9) at once: judged at 9 only
    assert [(n.data["rung"], n.data["milestone"]) for n in jumped.notes] == [(2, 9)]
    # Ray's loop, kept: the rung it jumped over (3) is judged at the next report, with that report's score
    assert [(n.data["rung"], n.data["value"]) for n in report(asha, population, "t0", 11, 8.0).notes] == [(1, 8.0)]
    assert report(asha, population, "t0", 12, 9.0).notes == []
    assert asha.state_dict()["brackets"][0] == [[["t0", 5.0]], [["t0", 8.0]], [["t0", 7.0]], []]


def test_max_t_stops_without_recording_and_stop_last_trials_false_runs_on():
    asha = make_asha()
    population = add_trials(asha, 1)
    end = report(asha, population, "t0", 27, 1.0)
    assert end.action is Action.STOP
    assert end.notes[0].data["reason"] == "max_t" and end.notes[0].data["rung"] is None
    assert end.notes[0].data["milestone"] == 27
    assert asha.state_dict()["brackets"][0][3] == []
    free = make_asha(stop_last_trials=False)
    population = add_trials(free, 2)
    assert report(free, population, "t0", 27, 1.0).action is Action.CONTINUE  # recorded at rung 27
    assert report(free, population, "t0", 30, 0.5).action is Action.CONTINUE  # already recorded: not judged again
    assert report(free, population, "t1", 27, 0.1).action is Action.STOP  # below the cutoff at the top rung


def test_reports_without_the_metric_or_time_attr_are_skipped():
    asha = make_asha()
    population = add_trials(asha, 1)
    trial = population["t0"]
    decision = asha.on_trial_result(trial, {"training_iteration": 1}, population)
    assert decision.action is Action.CONTINUE and decision.notes == []
    with pytest.raises(ConfigError, match="'score' to be a number in every report; trial t0 reported score='x'"):
        asha.on_trial_result(trial, {"training_iteration": 1, "score": "x"}, population)


def test_a_completed_trials_last_report_sets_later_cutoffs():
    """As Ray's on_trial_complete: a trial ended by a stop criterion at a rung is recorded there."""
    asha = make_asha()
    population = add_trials(asha, 2)
    population["t0"].last_result = {"training_iteration": 3, "score": 50.0}
    asha.on_trial_complete("t0", population)
    assert asha.state_dict()["brackets"][0][1] == [["t0", 50.0]]
    assert report(asha, population, "t1", 3, 40.0).action is Action.STOP


def test_brackets_are_drawn_from_the_seeded_generator_with_rays_softmax():
    def assignment(seed):
        asha = make_asha(seed, max_t=81, brackets=3)
        add_trials(asha, 40)
        return asha.state_dict()["bracket_of"]

    assert assignment(3) == assignment(3)
    assert assignment(3) != assignment(4)
    counts = np.bincount(list(assignment(3).values()), minlength=3)
    # rungs per bracket 5, 4, 3: probabilities e^0, e^-1, e^-2 normalized = 0.665, 0.245, 0.090
    assert counts[0] > counts[1] > counts[2]


def test_events_parse_as_typed_records():
    asha = make_asha()
    population = add_trials(asha, 2)
    report(asha, population, "t0", 1, 3.0)
    note = report(asha, population, "t1", 1, 1.0).notes[0]
    record = event_from_dict({"seq": 4, "event": note.kind, "time": 0.0, "trial_id": note.trial_id,
                              "message": note.message, **note.data})
    assert record.kind is EventKind.RUNG_STOPPED and record.reason == "below_cutoff" and record.cutoff == 3.0


SCRIPT = [(f"t{i}", t, float((i * 7 + t * 3) % 11) + t) for t in (1, 2, 3, 5, 9, 12, 27) for i in range(9)]


def test_resume_mid_run_gives_the_same_decisions():
    reference = make_asha(seed=5, brackets=2)
    population = add_trials(reference, 9)
    expected = run_script(reference, population, SCRIPT)

    first = make_asha(seed=5, brackets=2)
    population = add_trials(first, 9)
    head = run_script(first, population, SCRIPT[:30])
    state = json_round_trip(first.state_dict())
    resumed = AsyncHyperBandScheduler.from_description(json_round_trip(first.describe()))
    resumed.set_rng(np.random.default_rng(99))  # the saved generator state replaces it
    resumed.load_state_dict(state)
    tail = run_script(resumed, copy.deepcopy(population), SCRIPT[30:])
    assert head + tail == expected
    assert resumed.state_dict() == reference.state_dict()
    assert resumed.debug_string() == reference.debug_string()
    assert any(s[2][0] == "stop" for s in expected) and any(s[2][0] == "continue" for s in expected)


def test_describe_round_trips():
    asha = make_asha(brackets=2, stop_last_trials=False, time_attr="time_total_s", grace_period=2.5)
    description = asha.describe()
    assert description == {"type": "AsyncHyperBandScheduler", "class": "pbtlab.schedulers.asha:AsyncHyperBandScheduler",
                           "time_attr": "time_total_s", "metric": "score", "mode": "max", "max_t": 27,
                           "grace_period": 2.5, "reduction_factor": 3, "brackets": 2, "stop_last_trials": False}
    assert AsyncHyperBandScheduler.from_description(description).describe() == description


def test_debug_string_lists_each_rungs_cutoff():
    asha = make_asha()
    population = add_trials(asha, 2)
    report(asha, population, "t0", 1, 3.0)
    report(asha, population, "t1", 1, 1.0)
    assert asha.debug_string() == ("Using AsyncHyperBand: num_stopped=1\nBracket: Iter 27.000: None | "
                                   "Iter 9.000: None | Iter 3.000: None | Iter 1.000: 2.33333")


def test_metric_and_mode_come_from_tune_config_or_are_required():
    asha = AsyncHyperBandScheduler()
    with pytest.raises(ConfigError, match="AsyncHyperBandScheduler needs a metric and a mode"):
        asha.on_trial_add("t0", {}, "0")
    assert asha.set_search_properties("acc", "max") and (asha.metric, asha.mode) == ("acc", "max")
    assert not asha.set_search_properties("loss", None)
    only_mode = AsyncHyperBandScheduler(mode="min")
    only_mode.set_search_properties(None, None)
    assert only_mode.metric == "_metric"


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_t=0), "max_t must be in (0, inf], got 0"),
    (dict(max_t="10"), "max_t must be a finite number, got '10' (str)"),
    (dict(grace_period=0), "grace_period must be in (0, inf], got 0"),
    (dict(grace_period=200), "grace_period must be <= max_t (100), got 200"),
    (dict(reduction_factor=1), "reduction_factor must be in (1, inf], got 1"),
    (dict(brackets=0), "brackets must be an int >= 1, got 0 (int)"),
    (dict(brackets=1.5), "brackets must be an int >= 1, got 1.5 (float)"),
    (dict(mode="maximize"), "mode must be 'min' or 'max', got 'maximize'"),
    (dict(metric=3), "metric must be a result field name (str) or None, got 3 (int)"),
    (dict(time_attr=""), "time_attr must be a result field name (str), got '' (str)"),
    (dict(stop_last_trials="yes"), "stop_last_trials must be True or False, got 'yes'"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ConfigError) as info:
        AsyncHyperBandScheduler(**kwargs)
    assert str(info.value) == message


def test_population_fakes_follow_decisions():
    asha = make_asha()
    population: FakePopulation = add_trials(asha, 2)
    report(asha, population, "t0", 1, 3.0)
    report(asha, population, "t1", 1, 1.0)
    assert population["t1"].finished and not population["t0"].finished


def test_a_nan_score_goes_on_and_is_recorded_but_not_counted_in_cutoffs():
    """As Ray: NaN is never below a cutoff, it is recorded at the rung (so the trial is not judged there again),
    and numpy's nanpercentile leaves it out of later cutoffs."""
    asha = make_asha()
    population = add_trials(asha, 3)
    report(asha, population, "t0", 1, 10.0)
    assert report(asha, population, "t1", 1, float("nan")).action is Action.CONTINUE
    assert report(asha, population, "t1", 2, 0.0).notes == []  # rung 1 already has t1
    assert report(asha, population, "t2", 1, 9.0).notes[0].data["cutoff"] == pytest.approx(10.0)
