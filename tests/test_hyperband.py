"""HyperBandScheduler driven with scripted reports: Ray 2.60's bracket arithmetic, pausing at milestones,
halving by hand, the trials it lets go on and the ones it stops; resume; argument errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from early_stopping_fakes import add_trials, json_round_trip, report, run_script, summary
from pbtlab.errors import ConfigError
from pbtlab.schedulers import Action, HyperBandScheduler


def make_hb(**kwargs) -> HyperBandScheduler:
    settings = dict(metric="score", mode="max", max_t=9, reduction_factor=3)
    settings.update(kwargs)
    hb = HyperBandScheduler(**settings)
    hb.set_rng(np.random.default_rng(0))
    return hb


def test_defaults_are_rays():
    hb = HyperBandScheduler()
    assert (hb.time_attr, hb.metric, hb.mode, hb.max_t, hb.reduction_factor, hb.stop_last_trials) == \
        ("training_iteration", None, None, 81, 3, True)


@pytest.mark.parametrize("max_t, eta, shapes", [
    (81, 3, [(5, 81), (8, 27), (15, 9), (34, 3), (81, 1)]),  # s_max_1 = 5
    (200, 3, [(6, 200), (9, 66), (18, 22), (41, 7), (98, 2), (243, 0)]),  # s_max_1 = round(4.82) + 1 = 6
    (9, 3, [(3, 9), (5, 3), (9, 1)]),
])
def test_bracket_shapes_are_rays(max_t, eta, shapes):
    hb = make_hb(max_t=max_t, reduction_factor=eta)
    assert [hb.bracket_shape(s) for s in range(len(shapes))] == shapes


def test_trials_fill_brackets_in_order_and_skip_empty_ones():
    hb = make_hb(max_t=200)
    add_trials(hb, 6 + 9 + 18 + 41 + 98 + 7)
    state = hb.state_dict()
    sizes = [len(b["all_trials"]) for b in state["brackets"]]
    assert sizes == [6, 9, 18, 41, 98, 6, 1]
    # bracket s=5 would start at int(200 / 3**5) = 0: skipped (None), so the 173rd trial opens a new band
    assert state["bands"] == [[0, 1, 2, 3, 4, None], [5, 6]]
    assert [b["cumul_r"] for b in state["brackets"]] == [200, 66, 22, 7, 2, 200, 66]


def test_one_bracket_pauses_at_its_milestone_then_keeps_the_best_third():
    """max_t=9, eta=3: bracket 0 holds t0-t2 (run to 9), bracket 1 holds t3-t7 (milestone 3, keep
    ceil(5/3) = 2, which run to 9)."""
    hb = make_hb()
    population = add_trials(hb, 8)
    for t in (1, 2):
        for tid in ("t3", "t4", "t5", "t6", "t7"):
            assert report(hb, population, tid, t, 0.0).action is Action.CONTINUE
    paused = [report(hb, population, tid, 3, score) for tid, score in (("t3", 5.0), ("t4", 9.0), ("t5", 1.0),
                                                                        ("t6", 7.0))]
    assert [d.action for d in paused] == [Action.PAUSE] * 4
    assert [(n.kind, n.data["rung"], n.data["milestone"], n.data["num_compared"]) for d in paused for n in d.notes] \
        == [("rung_reached", 0, 3, n) for n in (4, 3, 2, 1)]
    assert hb.choose_trials_to_run([population[t] for t in ("t3", "t4", "t5", "t6")], 4) == []

    last = report(hb, population, "t7", 3, 3.0)
    action, notes, stopped = summary(last)
    assert action == "stop" and stopped == ["t5", "t3"]  # t7 reported: it ends through its own action
    assert [(kind, tid, data.get("reason")) for kind, tid, data in notes] == [
        ("rung_stopped", "t5", "not_top"), ("rung_stopped", "t7", "not_top"), ("rung_stopped", "t3", "not_top"),
        ("rung_promoted", "t6", None), ("rung_promoted", "t4", None)]
    assert {data["cutoff"] for _, _, data in notes} == {7.0}  # the worst score kept
    assert {data["num_compared"] for _, _, data in notes} == {5}
    assert hb.num_stopped == 3
    assert hb.choose_trials_to_run([population["t6"], population["t4"]], 2) == ["t4", "t6"]

    first_at_9 = report(hb, population, "t4", 9, 10.0)
    assert first_at_9.action is Action.PAUSE
    assert [(n.kind, n.data["rung"], n.data["milestone"]) for n in first_at_9.notes] == [("rung_reached", 1, 9)]
    end = report(hb, population, "t6", 9, 8.0)
    assert end.action is Action.STOP and end.stop == ["t4"]
    assert [(n.kind, n.trial_id, n.data["reason"], n.data["milestone"]) for n in end.notes] == [
        ("rung_stopped", "t4", "max_t", 9), ("rung_stopped", "t6", "max_t", 9)]
    assert "stopped: training_iteration=9 reached max_t" in end.notes[1].message


def test_min_mode_keeps_the_lowest():
    hb = make_hb(mode="min", metric="loss")
    population = add_trials(hb, 8)
    for tid, loss in (("t3", 5.0), ("t4", 9.0), ("t5", 1.0), ("t6", 7.0)):
        report(hb, population, tid, 3, loss, metric="loss")
    last = report(hb, population, "t7", 3, 3.0, metric="loss")
    assert last.action is Action.CONTINUE and sorted(last.stop) == ["t3", "t4", "t6"]
    promoted = [n.trial_id for n in last.notes if n.kind == "rung_promoted"]
    assert promoted == ["t7", "t5"] and {n.data["cutoff"] for n in last.notes} == {3.0}


def test_a_trial_leaving_the_bracket_lets_the_paused_ones_be_judged():
    hb = make_hb()
    population = add_trials(hb, 8)
    for tid, score in (("t3", 5.0), ("t4", 9.0), ("t5", 1.0), ("t6", 7.0)):
        report(hb, population, tid, 3, score)
    population["t7"].finished = True
    decision = hb.on_trial_complete("t7", population)  # e.g. it errored: the other four are all at 3
    assert decision.action is Action.CONTINUE and decision.stop == ["t5", "t3"]
    assert [n.trial_id for n in decision.notes if n.kind == "rung_promoted"] == ["t6", "t4"]
    # bracket 0 (no halving): two wait at max_t, the third ends by a stop criterion -> the two stop
    report(hb, population, "t0", 9, 1.0)
    report(hb, population, "t1", 9, 2.0)
    decision = hb.on_trial_complete("t2", population)
    assert decision.stop == ["t0", "t1"] and {n.data["reason"] for n in decision.notes} == {"max_t"}


def test_stop_last_trials_false_never_pauses_the_last_bracket_round():
    hb = make_hb(stop_last_trials=False)
    population = add_trials(hb, 3)
    assert [report(hb, population, t, 9, 1.0).action for t in ("t0", "t1", "t2")] == [Action.CONTINUE] * 3
    assert report(hb, population, "t0", 20, 1.0).action is Action.CONTINUE


def test_missing_metric_is_an_error_naming_it():
    hb = make_hb()
    population = add_trials(hb, 1)
    with pytest.raises(ConfigError, match="HyperBandScheduler needs 'score' in every report; trial t0 reported"):
        hb.on_trial_result(population["t0"], {"training_iteration": 1}, population)


def test_brackets_are_scheduled_least_complete_first():
    hb = make_hb()
    population = add_trials(hb, 8)
    for tid in ("t3", "t4"):
        report(hb, population, tid, 2, 1.0)
    waiting = [population[t] for t in ("t0", "t5", "t6")]
    # bracket 1 has 4 of its 27 units of work done (Ray's total: 5*3 + 2*min(9, 9-3)), bracket 0 none
    assert hb.completion(hb._brackets[1]) == pytest.approx(4 / 27)
    assert hb.choose_trials_to_run(waiting, 3) == ["t0", "t5", "t6"]
    report(hb, population, "t0", 8, 1.0)
    assert hb.choose_trials_to_run(waiting, 3) == ["t5", "t6", "t0"]


SCRIPT = [(f"t{i}", t, float((i * 5 + t * 3) % 7)) for t in (1, 2, 3, 4, 5, 6, 7, 8, 9) for i in range(14)]


def test_resume_mid_run_gives_the_same_decisions():
    reference = make_hb()
    population = add_trials(reference, 14)
    expected = run_script(reference, population, SCRIPT)
    first = make_hb()
    population = add_trials(first, 14)
    head = run_script(first, population, SCRIPT[:40])
    resumed = HyperBandScheduler.from_description(json_round_trip(first.describe()))
    resumed.load_state_dict(json_round_trip(first.state_dict()))
    tail = run_script(resumed, copy.deepcopy(population), SCRIPT[40:])
    assert head + tail == expected
    assert resumed.state_dict() == json_round_trip(reference.state_dict())
    assert resumed.debug_string() == reference.debug_string()
    kinds = {kind for _, _, (_, notes, _) in expected for kind, _, _ in notes}
    assert kinds == {"rung_reached", "rung_promoted", "rung_stopped"}


def test_debug_string():
    hb = make_hb()
    population = add_trials(hb, 4)
    report(hb, population, "t3", 2, 1.0)
    assert hb.debug_string() == (
        "Using HyperBand: num_stopped=0 total_brackets=2\nRound #0:\n"
        "  Bracket(Max Size (n)=3, Milestone (r)=9, completed=0.0%): {live: 3, done: 0}\n"
        "  Bracket(Max Size (n)=5, Milestone (r)=3, completed=7.4%): {live: 1, done: 0}")


def test_describe_round_trips():
    hb = make_hb(stop_last_trials=False, time_attr="time_total_s", max_t=60.5)
    description = hb.describe()
    assert description == {"type": "HyperBandScheduler", "class": "pbtlab.schedulers.hyperband:HyperBandScheduler",
                           "time_attr": "time_total_s", "metric": "score", "mode": "max", "max_t": 60.5,
                           "reduction_factor": 3, "stop_last_trials": False}
    assert HyperBandScheduler.from_description(description).describe() == description


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_t=-1), "max_t must be in (0, inf], got -1"),
    (dict(max_t=None), "max_t must be a finite number, got None (NoneType)"),
    (dict(reduction_factor=0.5), "reduction_factor must be in (1, inf], got 0.5"),
    (dict(mode="up"), "mode must be 'min' or 'max', got 'up'"),
    (dict(time_attr=None), "time_attr must be a result field name (str), got None (NoneType)"),
    (dict(stop_last_trials=1), "stop_last_trials must be True or False, got 1"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ConfigError) as info:
        HyperBandScheduler(**kwargs)
    assert str(info.value) == message


def test_needs_metric_and_mode():
    with pytest.raises(ConfigError, match=r"HyperBandScheduler needs a metric and a mode .* got metric=None"):
        HyperBandScheduler().on_trial_add("t0", {}, "0")
