"""The scheduler contract, and the decisions schedulers return as data.

A scheduler never touches trials, threads, files or Ray. The controller (``pbtlab.engine.controller``)
calls the hooks below and carries out what they return. Trials reach a scheduler as read-only
:class:`TrialView` objects (``config`` is the scheduler's own copy) and reports as read-only mappings.

When each hook is called:

- ``set_search_properties(metric, mode)``: once, before trials are added, in a new and a resumed run
  (Ray's contract: returns False if the scheduler already has a different metric or mode).
- ``validate()``: once in a new run, before any trial is added; raise ``ConfigError`` if unusable.
- ``set_rng(rng)``: once; every random choice the scheduler makes must come from this generator.
- ``on_trial_add(trial_id, config, tag)``: once per trial in a new run; returns the trial's config,
  possibly with values filled in.
- ``load_state_dict(state)``: once in a resumed run, after ``set_rng``, instead of ``on_trial_add``.
- ``choose_trials_to_run(candidates, k, allow_any)``: whenever slots are free and trials wait; up to
  ``k`` of the waiting trials to start. ``allow_any=True`` when nothing runs and something must.
  ``selection_epoch`` is read first: the controller asks again about a trial that was not chosen only
  once the epoch changed.
- ``on_trial_result(trial, result, population)``: after each report (unless a stop criterion ended
  the trial); returns a :class:`Decision` for the reporting trial, plus perturbations of any trial.
- ``wants_checkpoint(trial, result)``: before ``on_trial_result``, for trainables that can save on
  request (class trainables) and reports without a checkpoint; True makes the controller ask the trial
  for a checkpoint now, so ``trial.latest_checkpoint`` is current when ``on_trial_result`` runs.
- ``on_trial_complete(trial_id, population)``: a trial terminated (stop criterion, its function
  returned, the scheduler stopped it, or the run ended); may return a Decision (a synchronous
  barrier may now be complete).
- ``on_trial_error(trial_id, population)``: a trial errored for good (no retries left).
- ``referenced_checkpoints()``: before retention deletes checkpoints; those named here are kept.
- ``writes_policy_log``: read when an exploit is applied: also write Ray's ``pbt_policy_*.txt`` files.
- ``describe()``: once, into ``experiment.json`` and the ``experiment_start`` event; ``from_description``
  (a classmethod) rebuilds the scheduler from it when a run is resumed without one. ``describe()``
  records the scheduler's own class, so a subclass resumes as itself.
- ``state_dict()``: at every state save; JSON-friendly.
- ``debug_string()``: once, into the ``experiment_end`` event.

    >>> TrialScheduler().describe()
    {'type': 'TrialScheduler', 'class': 'pbtlab.schedulers.base:TrialScheduler'}
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from pbtlab.rundir.checkpoints import CheckpointRef


class Action(enum.Enum):
    """What happens to the trial that just reported."""

    CONTINUE = "continue"
    PAUSE = "pause"
    STOP = "stop"


@dataclasses.dataclass(frozen=True, slots=True)
class HyperparamChange:
    """One hyperparameter's explore step: ``lr : 0.05 --- (resample) --> 0.017``."""

    param: str
    old: Any
    op: str
    new: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Perturbation:
    """Restart ``target`` from ``checkpoint`` with ``new_config``.

    ``donor`` is the trial whose checkpoint and config were copied (exploit), or None when the
    target only perturbed its own hyperparameters (explore-only).
    """

    target: str
    donor: str | None
    checkpoint: CheckpointRef
    target_iteration: int
    target_score: float | None
    donor_score: float | None
    old_config: dict[str, Any]
    donor_config: dict[str, Any]
    new_config: dict[str, Any]
    changes: tuple[HyperparamChange, ...]
    time_attr: str
    time_value: float


@dataclasses.dataclass(frozen=True, slots=True)
class Note:
    """Something a person should see in the log and the event record (e.g. a skipped exploit)."""

    kind: str
    trial_id: str
    message: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class Decision:
    action: Action = Action.CONTINUE
    perturbations: list[Perturbation] = dataclasses.field(default_factory=list)
    notes: list[Note] = dataclasses.field(default_factory=list)


class TrialView(Protocol):
    """What a scheduler may read about a trial (``pbtlab.engine.trial.TrialView`` implements it)."""

    @property
    def trial_id(self) -> str: ...

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def iteration(self) -> int: ...

    @property
    def is_finished(self) -> bool: ...

    @property
    def is_waiting(self) -> bool: ...

    @property
    def latest_checkpoint(self) -> CheckpointRef | None: ...


class PopulationView(Protocol):
    """Every trial of the run by id, read-only, and how many wait for a slot."""

    def __getitem__(self, trial_id: str) -> TrialView: ...

    def __iter__(self) -> Iterator[str]: ...

    def __len__(self) -> int: ...

    def __contains__(self, trial_id: object) -> bool: ...

    def values(self) -> Any: ...

    @property
    def num_waiting(self) -> int: ...


def class_path(cls: type) -> str:
    """``module:QualName`` of a class, as ``describe()`` records it."""
    return f"{cls.__module__}:{cls.__qualname__}"


class TrialScheduler:
    """Base class with FIFO behaviour; see the module docstring for when each method is called."""

    metric: str | None = None
    mode: str | None = None
    #: True if ``on_trial_result`` itself validates that reports contain the metric.
    checks_metric: bool = False
    #: True to have exploits written to Ray's ``pbt_global.txt`` / ``pbt_policy_<trial>.txt``.
    writes_policy_log: bool = False

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        if self.metric and metric and metric != self.metric:
            return False
        if self.mode and mode and mode != self.mode:
            return False
        if metric:
            self.metric = metric
        if mode:
            self.mode = mode
        return True

    def set_rng(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def validate(self) -> None:
        """Raise ConfigError if the scheduler cannot run as configured (called before any trial starts)."""

    def on_trial_add(self, trial_id: str, config: dict[str, Any], tag: str) -> dict[str, Any]:
        return config

    def on_trial_result(self, trial: TrialView, result: Mapping[str, Any],
                        population: PopulationView) -> Decision:
        return Decision(Action.CONTINUE)

    def wants_checkpoint(self, trial: TrialView, result: Mapping[str, Any]) -> bool:
        """Does this report need a checkpoint of the trial at its current iteration? (default: no)"""
        return False

    def on_trial_complete(self, trial_id: str, population: PopulationView) -> Decision:
        return Decision(Action.CONTINUE)

    def on_trial_error(self, trial_id: str, population: PopulationView) -> Decision:
        return self.on_trial_complete(trial_id, population)

    def choose_trial_to_run(self, candidates: Sequence[TrialView], allow_any: bool = False) -> str | None:
        return candidates[0].trial_id if candidates else None

    def choose_trials_to_run(self, candidates: Sequence[TrialView], k: int, allow_any: bool = False) -> list[str]:
        """Up to ``k`` trials for free slots; by default ``choose_trial_to_run`` asked repeatedly."""
        remaining = list(candidates)
        chosen: list[str] = []
        while remaining and len(chosen) < k:
            trial_id = self.choose_trial_to_run(remaining, allow_any)
            if trial_id is None:
                break
            chosen.append(trial_id)
            remaining = [t for t in remaining if t.trial_id != trial_id]
        return chosen

    @property
    def selection_epoch(self) -> int:
        """Changes whenever a waiting trial that was not chosen may have become choosable."""
        return 0

    def referenced_checkpoints(self) -> set[str]:
        """Checkpoint paths the scheduler may still hand out; retention must not delete them."""
        return set()

    def debug_string(self) -> str:
        return "Using FIFO scheduling algorithm."

    def describe(self) -> dict[str, Any]:
        """The scheduler's class and arguments, JSON-friendly (subclasses add their arguments)."""
        return {"type": type(self).__name__, "class": class_path(type(self))}

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> TrialScheduler:
        """Rebuild from ``describe()`` output, for resuming a run; by default with no arguments."""
        return cls()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass
