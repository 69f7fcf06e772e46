"""The scheduler contract, and the decisions schedulers return as data.

A scheduler never touches trials, threads, files or Ray. The controller (``pbtlab.engine.controller``)
calls the hooks below and carries out the :class:`Decision` they return. Trials reach a scheduler as
read-only :class:`TrialInfo` objects (``config`` is the scheduler's own copy), reports as read-only
mappings, and the whole run as a :class:`PopulationView`.

The hooks an author implements (every one has a default, FIFO's; override only what you need):

- ``on_trial_add(trial_id, config, tag) -> config``: once per trial in a new run, before it starts (not
  in a resumed run: ``load_state_dict`` is called instead). Return the trial's config, possibly with
  values filled in.
- ``on_trial_result(trial, result, population) -> Decision``: after each report of a trial (unless a
  stop criterion ended it). The decision's ``action`` is for the reporting trial; its ``perturbations``
  may restart any trial from a checkpoint with a new config; its ``notes`` are recorded as events; its
  ``stop`` names other trials to end now (HyperBand ends the trials paused at a rung that lost).
- ``on_trial_complete(trial_id, population) -> Decision``: once when a trial ends for good (a stop
  criterion, its function returned, your ``Action.STOP``, or the run ended). ``on_trial_error`` (a trial
  failed with no retries left) calls it by default.
- ``choose_trials_to_run(candidates, k, allow_any) -> [trial_id]``: whenever slots are free and
  trials wait; up to ``k`` of the waiting ``candidates`` to start. A trial you leave out waits.
  ``allow_any=True`` when nothing runs and something must (return at least one then).

Settings and resuming:

- ``validate()``: once in a new run, before any trial is added; raise ``ConfigError`` if unusable.
  ``self.metric`` and ``self.mode`` are set by then (from the scheduler's arguments or ``TuneConfig``).
- ``self.rng``: the run's seeded generator, set before any hook is called; draw every random choice
  from it, so that runs are reproducible. It is a :class:`pbtlab.rng.Stream`: every method of a
  ``numpy.random.Generator`` works on it and gives what numpy's would (``isinstance`` checks do not).
- ``describe()`` / ``from_description(description)``: once, into ``experiment.json``; a resumed run
  rebuilds the scheduler from it (by default ``cls()``). ``describe()`` records the class, so a subclass
  resumes as itself.
- ``state_dict()`` / ``load_state_dict(state)``: at every state save (JSON-friendly) / once when a run
  is resumed, after ``self.rng`` is set.
- ``debug_string()``: the status line, and once into the ``experiment_end`` event.

What the engine reads besides the hooks lives in :class:`EngineSide`, with defaults a scheduler
written from scratch never needs to change (``PopulationBasedTraining`` sets them for its subclasses).

    >>> class StopLosers(TrialScheduler):
    ...     '''Stops a trial whose score is below 0 at its 4th report.'''
    ...     def on_trial_result(self, trial, result, population):
    ...         late_and_bad = result["training_iteration"] == 4 and result[self.metric] < 0
    ...         return Decision(Action.STOP if late_and_bad else Action.CONTINUE)
    >>> from pbtlab import tune
    >>> def train(config):
    ...     for i in range(8):
    ...         tune.report({"score": config["x"] - 0.1 * i})
    >>> results = tune.Tuner(train, param_space={"x": tune.grid_search([0.0, 1.0])},
    ...                      tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=StopLosers()),
    ...                      run_config=tune.RunConfig(storage_path=getfixture("tmp_path"), verbose=0)).fit()
    >>> [(r.config["x"], r.metrics["training_iteration"]) for r in results]
    [(0.0, 4), (1.0, 8)]
    >>> [e["reason"] for e in results.events_of("trial_complete")]
    ['scheduler', 'function_returned']
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from pbtlab import lazy_dataclass
from pbtlab.rundir.checkpoints import CheckpointRef

__all__ = [
    "Action", "class_path", "Decision", "DecisionNote", "EngineSide", "HyperparamChange", "Perturbation",
    "PopulationView", "TrialInfo", "TrialScheduler",
]


class Action(enum.Enum):
    """What happens to the trial that just reported."""

    CONTINUE = "continue"
    PAUSE = "pause"
    STOP = "stop"


@lazy_dataclass.dataclass(frozen=True, slots=True)
class HyperparamChange:
    """One hyperparameter's explore step: ``lr : 0.05 --- (resample) --> 0.017``."""

    param: str
    old: Any
    op: str
    new: Any


@lazy_dataclass.dataclass(frozen=True, slots=True)
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


@lazy_dataclass.dataclass(frozen=True, slots=True)
class DecisionNote:
    """Something a person should see in the log and the event record (e.g. a skipped exploit).

    ``kind`` names the event (a ``pbtlab.rundir.records.EventKind`` whose fields are ``trial_id``, ``message``
    and the keys of ``data``).
    """

    kind: str
    trial_id: str
    message: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


@lazy_dataclass.dataclass(slots=True)
class Decision:
    """What a hook decided: ``action`` for the reporting trial, ``perturbations`` of any trial, ``notes``,
    and ``stop``: other trials to end now (e.g. HyperBand's trials paused at a rung that did not make the cut)."""

    action: Action = Action.CONTINUE
    perturbations: list[Perturbation] = dataclasses.field(default_factory=list)
    notes: list[DecisionNote] = dataclasses.field(default_factory=list)
    stop: list[str] = dataclasses.field(default_factory=list)


class TrialInfo(Protocol):
    """What a scheduler may read about a trial (the engine passes its ``pbtlab.engine.trial.TrialView``)."""

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

    def __getitem__(self, trial_id: str) -> TrialInfo: ...

    def __iter__(self) -> Iterator[str]: ...

    def __len__(self) -> int: ...

    def __contains__(self, trial_id: object) -> bool: ...

    def values(self) -> Any: ...

    @property
    def num_waiting(self) -> int: ...


def class_path(cls: type) -> str:
    """``module:QualName`` of a class, as ``describe()`` records it."""
    return f"{cls.__module__}:{cls.__qualname__}"


class EngineSide:
    """What the engine reads from a scheduler besides its hooks. The defaults fit any scheduler; an author
    does not touch them (``PopulationBasedTraining`` sets them, so its subclasses inherit the right ones).

    - ``set_search_properties(metric, mode)``: once, before trials are added (new and resumed runs): takes
      ``TuneConfig(metric, mode)`` unless the scheduler has its own; False if they differ (Ray's contract).
    - ``set_rng(rng)``: once, before any hook; the generator becomes ``self.rng``.
    - ``checks_metric``: True if ``on_trial_result`` itself checks that reports contain the metric (else
      the engine checks each trial's first report).
    - ``writes_policy_log``: read when an exploit is applied: True also writes Ray's ``pbt_global.txt``
      and ``pbt_policy_<trial>.txt``.
    - ``selection_epoch``: read before ``choose_trials_to_run``. None (the default): every waiting trial
      is a candidate each time. A number: a trial left out is offered again only once the number changed
      (a synchronous scheduler holding trials at a barrier changes it when the barrier opens).
    - ``referenced_checkpoints()``: before retention deletes checkpoints; the paths named are kept
      (checkpoints the scheduler may still hand to a clone).
    - ``wants_checkpoint(trial, result)``: before ``on_trial_result``, for trainables that save on request
      (class trainables) and reports without a checkpoint; True makes the engine save the trial now, so
      ``trial.latest_checkpoint`` is current when ``on_trial_result`` runs (PBT and replay want one at the
      reports they act on).
    """

    metric: str | None = None
    mode: str | None = None
    rng: np.random.Generator
    checks_metric: bool = False
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

    @property
    def selection_epoch(self) -> int | None:
        return None

    def referenced_checkpoints(self) -> set[str]:
        return set()

    def wants_checkpoint(self, trial: TrialInfo, result: Mapping[str, Any]) -> bool:
        return False


class TrialScheduler(EngineSide):
    """Base class with FIFO behaviour; see the module docstring for when each hook is called."""

    def validate(self) -> None:
        """Raise ConfigError if the scheduler cannot run as configured (called before any trial is added)."""

    def on_trial_add(self, trial_id: str, config: dict[str, Any], tag: str) -> dict[str, Any]:
        return config

    def on_trial_result(self, trial: TrialInfo, result: Mapping[str, Any],
                        population: PopulationView) -> Decision:
        return Decision(Action.CONTINUE)

    def on_trial_complete(self, trial_id: str, population: PopulationView) -> Decision:
        return Decision(Action.CONTINUE)

    def on_trial_error(self, trial_id: str, population: PopulationView) -> Decision:
        return self.on_trial_complete(trial_id, population)

    def choose_trials_to_run(self, candidates: Sequence[TrialInfo], k: int, allow_any: bool = False) -> list[str]:
        """Up to ``k`` trials for free slots; by default the first ``k``, in the order trials were added."""
        return [t.trial_id for t in candidates[:k]]

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
