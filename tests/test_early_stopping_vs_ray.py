"""The same scripted reports through Ray 2.60's own schedulers (from the installed wheel) and pbtlab's: the same
decision for every report, and the same trials stopped. Ray's schedulers get small stand-ins for its trials and
its controller (they only read ``trial_id`` / ``status`` and call ``stop_trial`` / ``get_live_trials``)."""

from __future__ import annotations

import numpy as np
import pytest

from early_stopping_fakes import add_trials, report
from pbtlab.schedulers import Action, AsyncHyperBandScheduler, HyperBandScheduler, MedianStoppingRule

pytestmark = pytest.mark.ray
ray_schedulers = pytest.importorskip("ray.tune.schedulers")


class RayTrial:
    """What Ray's schedulers read of a trial."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id
        self.status = "PENDING"
        self.is_saving = False

    def __repr__(self) -> str:
        return self.trial_id


class RayController:
    """What Ray's schedulers call on the controller."""

    def __init__(self, trials: list[RayTrial], scheduler: object = None) -> None:
        self.trials = trials
        self.scheduler = scheduler
        self.stopped: list[str] = []

    def stop_trial(self, trial: RayTrial) -> None:
        """As Ray's TuneController.stop_trial: a paused or pending trial is removed from the scheduler."""
        waiting = trial.status in ("PAUSED", "PENDING")
        trial.status = "TERMINATED"
        self.stopped.append(trial.trial_id)
        if waiting and self.scheduler is not None:
            self.scheduler.on_trial_remove(self, trial)

    def get_live_trials(self) -> list[RayTrial]:
        return [t for t in self.trials if t.status != "TERMINATED"]


def scores(n: int, steps: int, seed: int) -> np.ndarray:
    """Noisy increasing learning curves, one per trial (rows: trials, columns: time 1..steps)."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.05, 0.5, n)
    noise = rng.normal(0.0, 0.03, (n, steps))
    t = np.arange(1, steps + 1)
    return 1 - np.exp(-np.outer(rates, t)) + noise


def ray_action(value: str) -> str:
    return {"CONTINUE": "continue", "PAUSE": "pause", "STOP": "stop"}[value]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", ["max", "min"])
def test_asha_decides_as_rays_round_robin(seed, mode):
    """12 trials report in turns (one step each, in trial order) up to max_t; a stopped trial reports no more."""
    curves = scores(12, 30, seed) * (1 if mode == "max" else -1)
    ours = AsyncHyperBandScheduler(metric="acc", mode=mode, max_t=27, grace_period=1, reduction_factor=3)
    ours.set_rng(np.random.default_rng(0))
    population = add_trials(ours, 12)
    theirs = ray_schedulers.AsyncHyperBandScheduler(metric="acc", mode=mode, max_t=27, grace_period=1,
                                                    reduction_factor=3)
    trials = [RayTrial(f"t{i}") for i in range(12)]
    for trial in trials:
        theirs.on_trial_add(None, trial)
    ours_log, theirs_log = [], []
    for step in range(1, 31):
        for i, trial in enumerate(trials):
            if trial.status == "TERMINATED":
                continue
            result = {"training_iteration": step, "acc": float(curves[i, step - 1])}
            theirs_log.append((trial.trial_id, step, ray_action(theirs.on_trial_result(None, trial, result))))
            ours_log.append((trial.trial_id, step, report(ours, population, trial.trial_id, step, result["acc"],
                                                         metric="acc").action.value))
            if theirs_log[-1][2] == "stop":
                trial.status = "TERMINATED"
    assert ours_log == theirs_log
    assert sum(1 for *_, action in ours_log if action == "stop") > 3


@pytest.mark.parametrize("seed", [0, 1])
def test_hyperband_decides_as_rays(seed):
    """14 trials over brackets of max_t=9, eta=3; the trial to run next is the scheduler's choice (Ray's
    choose_trial_to_run against ours), one report at a time; paused trials wait, stopped ones end."""
    n = 14
    curves = scores(n, 12, seed)
    ours = HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    ours.set_rng(np.random.default_rng(0))
    population = add_trials(ours, n)
    theirs = ray_schedulers.HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    trials = {f"t{i}": RayTrial(f"t{i}") for i in range(n)}
    controller = RayController(list(trials.values()), theirs)
    for trial in trials.values():
        theirs.on_trial_add(controller, trial)
    steps = {tid: 0 for tid in trials}
    ours_log, theirs_log = [], []
    for _ in range(400):
        pick = theirs.choose_trial_to_run(controller)
        candidates = [population[t] for t in trials if trials[t].status in ("PENDING", "PAUSED")]
        (our_pick,) = ours.choose_trials_to_run(candidates, 1) or [None]
        assert (pick.trial_id if pick else None) == our_pick
        if pick is None:
            break
        # a picked trial runs until the scheduler pauses or stops it
        pick.status = "RUNNING"
        while pick.status == "RUNNING":
            steps[pick.trial_id] += 1
            step = steps[pick.trial_id]
            result = {"training_iteration": step, "acc": float(curves[int(pick.trial_id[1:]), step - 1])}
            action = ray_action(theirs.on_trial_result(controller, pick, result))
            decision = report(ours, population, pick.trial_id, step, result["acc"], metric="acc")
            theirs_log.append((pick.trial_id, step, action))
            ours_log.append((pick.trial_id, step, decision.action.value))
            assert sorted(decision.stop) == sorted(t for t in controller.stopped if t != pick.trial_id)
            controller.stopped.clear()
            if action == "stop":
                pick.status = "TERMINATED"
                theirs.on_trial_complete(controller, pick, result)
                ours.on_trial_complete(pick.trial_id, population)
            elif action == "pause":
                pick.status = "PAUSED"
    assert ours_log == theirs_log
    assert all(t.status == "TERMINATED" for t in trials.values())
    assert {a for *_, a in ours_log} == {"continue", "pause", "stop"}


@pytest.mark.parametrize("hard_stop", [True, False])
def test_median_stopping_rule_decides_as_rays(hard_stop):
    curves = scores(8, 20, 5)
    ours = MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max", grace_period=3,
                              min_samples_required=2, hard_stop=hard_stop)
    ours.set_rng(np.random.default_rng(0))
    population = add_trials(ours, 8)
    theirs = ray_schedulers.MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max",
                                               grace_period=3, min_samples_required=2, hard_stop=hard_stop)
    trials = [RayTrial(f"t{i}") for i in range(8)]
    controller = RayController(trials)
    for trial in trials:
        theirs.on_trial_add(controller, trial)
        trial.status = "RUNNING"  # all 8 run at once: nobody waits, so nobody yields
    ours_log, theirs_log = [], []
    for step in range(1, 21):
        for i, trial in enumerate(trials):
            if trial.status == "TERMINATED":
                continue
            result = {"training_iteration": step, "acc": float(curves[i, step - 1])}
            action = ray_action(theirs.on_trial_result(controller, trial, result))
            theirs_log.append((trial.trial_id, step, action))
            ours_log.append((trial.trial_id, step, report(ours, population, trial.trial_id, step, result["acc"],
                                                         metric="acc").action.value))
            population[trial.trial_id].waiting = False  # paused trials run on (the slots are all free)
            if action == "stop":
                trial.status = "TERMINATED"
    assert ours_log == theirs_log
    assert any(action in ("stop", "pause") for *_, action in ours_log)


def test_the_actions_are_the_same_strings():
    assert {a.value for a in Action} == {ray_action(x) for x in ("CONTINUE", "PAUSE", "STOP")}
