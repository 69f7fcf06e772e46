"""Fake trials and populations for driving the early-stopping schedulers (ASHA, HyperBand, median stopping)
directly with scripted reports, and a helper that runs a whole script and returns every decision as data."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from pbtlab.schedulers import Action, Decision, TrialScheduler
from test_pbt import FakeTrial as PbtFakeTrial


@dataclasses.dataclass(eq=False)
class FakeTrial(PbtFakeTrial):
    """A TrialInfo: what a scheduler may read about a trial (plus ``last_result``, as the engine's view has)."""

    last_result: dict[str, Any] | None = None


class FakePopulation(dict):
    """A PopulationView: the trials by id, and how many wait for a slot."""

    @property
    def num_waiting(self) -> int:
        return sum(t.waiting and not t.finished for t in self.values())


def add_trials(scheduler: TrialScheduler, n: int) -> FakePopulation:
    population = FakePopulation()
    for i in range(n):
        tid = f"t{i}"
        population[tid] = FakeTrial(tid, scheduler.on_trial_add(tid, {"x": i}, f"{i}_x={i}"))
    return population


def report(scheduler: TrialScheduler, population: FakePopulation, tid: str, t: float, value: float,
           metric: str = "score", time_attr: str = "training_iteration") -> Decision:
    """Trial ``tid`` reports ``value`` at time ``t``; the population follows the decision (paused trials
    wait, stopped ones finish, and trials the decision stops finish too)."""
    trial = population[tid]
    trial.iteration = int(t)
    result = {time_attr: t, metric: value}
    trial.last_result = result
    trial.waiting = False
    decision = scheduler.on_trial_result(trial, result, population)
    apply(population, tid, decision)
    return decision


def apply(population: FakePopulation, tid: str | None, decision: Decision) -> None:
    if tid is not None:
        if decision.action is Action.STOP:
            population[tid].finished = True
        elif decision.action is Action.PAUSE:
            population[tid].waiting = True
    for other in decision.stop:
        population[other].finished = True


def summary(decision: Decision) -> tuple[str, list[tuple[str, str, dict[str, Any]]], list[str]]:
    """A decision as plain data: (action, [(note kind, trial, data)], stopped others)."""
    return (decision.action.value, [(n.kind, n.trial_id, n.data) for n in decision.notes], list(decision.stop))


def json_round_trip(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state))


def run_script(scheduler: TrialScheduler, population: FakePopulation,
               script: Sequence[tuple[str, float, float]]) -> list[Any]:
    """Every report of ``script`` (trial, time, value) whose trial is still live, as decision summaries."""
    out = []
    for tid, t, value in script:
        if population[tid].finished:
            continue
        out.append((tid, t, summary(report(scheduler, population, tid, t, value))))
    return out
