"""Replay a PBT winner's hyperparameter schedule on one trial, from a pbtlab run or a Ray policy file.

PBT finds a schedule of configs, not one config. ``PopulationBasedTrainingReplay`` trains a single trial
with the schedule's first config and switches to each next config at the iteration where the winner's
ancestry switched (the donor checkpoint's iteration), as Ray's scheduler of that name does:

    >>> import json, os, tempfile
    >>> policy = os.path.join(tempfile.mkdtemp(), "pbt_policy_t.txt")
    >>> with open(policy, "w") as f:
    ...     print(json.dumps(["1_b", "0_a", 4, 4, {"lr": 0.1}, {"lr": 0.05}]), file=f)
    >>> replay = PopulationBasedTrainingReplay(policy)
    >>> replay.initial_config, replay.schedule
    ({'lr': 0.1}, [(4, {'lr': 0.05})])

Sources:

- a Ray ``pbt_policy_<trial>.txt`` (one JSON array per line: ``[target_tag, donor_tag, target_iteration,
  donor_iteration, donor_config, new_config]``): the chain of exploits that ends in the file's trial is
  followed backwards, as Ray reads it (pbtlab writes these files too, with ``log_config=True``);
- a pbtlab run directory (or any directory ``pbtlab.analysis.load_results`` reads): the winner's ancestry
  from the event log and result rows (``pbtlab.analysis.lineage.ancestry``), by default the best trial's.

How a switch happens: at the first report at or past the switch iteration, the trial restarts from its
own latest checkpoint with the new config (a ``Perturbation`` with ``donor=None``, recorded as an
``explore`` event whose ops say ``replay``). The replay is exact when the trainable checkpoints at the
switch iterations, as the PBT run's donors did (class trainables are asked to save there); otherwise the
restart is from the latest earlier checkpoint, as Ray's replay does, and the op says so.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pbtlab.errors import ConfigError, ExperimentError, describe
from pbtlab.schedulers.base import (
    Action,
    Decision,
    HyperparamChange,
    Perturbation,
    PopulationView,
    TrialScheduler,
    TrialInfo,
    class_path,
)

__all__ = ["PopulationBasedTrainingReplay", "read_policy_file", "schedule_from_run"]

logger = logging.getLogger(__name__)

#: (iteration of the switch, the config trained with after it)
ScheduleStep = tuple[int, dict[str, Any]]


def read_policy_file(path: str) -> tuple[dict[str, Any] | None, list[ScheduleStep]]:
    """(initial config, schedule) from Ray's ``pbt_policy_<trial>.txt``: the exploits chained back from the
    last line (each row's target must be the donor of the row after it)."""
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ConfigError(f"PBT policy file {path}, line {number}: not JSON ({error})") from None
            if not isinstance(row, list) or len(row) != 6 or not isinstance(row[4], dict) \
                    or not isinstance(row[5], dict):
                raise ConfigError(f"PBT policy file {path}, line {number}: expected [target_tag, donor_tag, "
                                  f"target_iteration, donor_iteration, donor_config, new_config], got {line.strip()}")
            rows.append(row)
    schedule: list[ScheduleStep] = []
    initial: dict[str, Any] | None = None
    expected_target: str | None = None
    for target_tag, donor_tag, _, donor_iteration, donor_config, new_config in reversed(rows):
        if expected_target is not None and target_tag != expected_target:
            break  # an exploit of another lineage: the chain ends here
        expected_target = donor_tag
        initial = donor_config
        schedule.append((int(donor_iteration), new_config))
    schedule.reverse()
    return initial, schedule


def schedule_from_run(path: str, trial: str | int | None = None) -> tuple[dict[str, Any], list[ScheduleStep]]:
    """(initial config, schedule) of a trial's ancestry in a run directory (the best trial by default)."""
    from pbtlab.analysis.lineage import ancestry, resolve_trial, run_data  # a reader: only when asked

    run = run_data(path)
    record = resolve_trial(run, trial)
    schedule: list[ScheduleStep] = []
    initial: dict[str, Any] | None = None
    for span in ancestry(run, record.trial_id):
        rows = run.trial(span.trial_id).rows[span.first_row:span.last_row + 1]
        if not rows:
            continue
        config = dict(rows[0].get("config") or {})
        if initial is None:
            initial = config
        elif config != (schedule[-1][1] if schedule else initial):
            schedule.append((span.start_iteration, config))
    if initial is None:
        raise ConfigError(f"trial {record.trial_id} of {path} reported nothing: there is no schedule to replay")
    return initial, schedule


class PopulationBasedTrainingReplay(TrialScheduler):
    """Train one trial with a PBT winner's schedule (Ray's ``PopulationBasedTrainingReplay``).

    Args:
        policy_file: Ray's ``pbt_policy_<trial>.txt``, or a pbtlab (or Ray) run directory.
        trial: with a run directory, the trial whose schedule to replay (id or index; None: the best).
    """

    def __init__(self, policy_file: str | os.PathLike[str], *, trial: str | int | None = None) -> None:
        if not isinstance(policy_file, (str, os.PathLike)):
            raise ConfigError(f"policy_file must be a path to a pbt_policy_*.txt file or a run directory, "
                              f"got {describe(policy_file)}")
        path = os.path.abspath(os.path.expanduser(os.fspath(policy_file)))
        if os.path.isfile(path):
            if trial is not None:
                raise ConfigError(f"trial={trial!r} applies to a run directory; {path} is a policy file of one trial")
            initial, schedule = read_policy_file(path)
        elif os.path.isdir(path):
            initial, schedule = schedule_from_run(path, trial)
        else:
            raise ConfigError(f"policy_file {path} does not exist: give a pbt_policy_*.txt file or a run directory")
        self._setup(path, trial, initial, schedule)

    def _setup(self, source: str, trial: str | int | None, initial: dict[str, Any] | None,
               schedule: Sequence[ScheduleStep]) -> None:
        self.source = source
        self.trial = trial
        self.initial_config = initial
        self.schedule = [(int(step), dict(config)) for step, config in schedule]
        self._trial_id: str | None = None
        self._next = 0
        self._current_step = 0
        self._num_perturbations = 0

    def on_trial_add(self, trial_id: str, config: dict[str, Any], tag: str) -> dict[str, Any]:
        if self._trial_id is not None:
            raise ConfigError(
                "PopulationBasedTrainingReplay trains one trial (the schedule would be trained twice): set "
                "TuneConfig(num_samples=1) and a param_space without grid_search")
        self._trial_id = trial_id
        if self.initial_config is None:
            if not config:
                raise ConfigError(f"the replay source {self.source} has no schedule and the trial has no config: "
                                  "pass param_space=... or replay another trial")
            self.initial_config = dict(config)
            return config
        if config and config != self.initial_config:
            logger.warning("[pbtlab] PopulationBasedTrainingReplay: the trial's config from param_space is replaced "
                           "by the schedule's first config %s", self.initial_config)
        return copy.deepcopy(self.initial_config)

    def _due(self, result: Mapping[str, Any]) -> bool:
        if self._next >= len(self.schedule) or "training_iteration" not in result:
            return False
        return int(result["training_iteration"]) >= self.schedule[self._next][0]

    def wants_checkpoint(self, trial: TrialInfo, result: Mapping[str, Any]) -> bool:
        """A switch is due: class trainables save now, so the restart continues from exactly this iteration."""
        latest = trial.latest_checkpoint
        return self._due(result) and (latest is None or latest.iteration < trial.iteration)

    def on_trial_result(self, trial: TrialInfo, result: Mapping[str, Any],
                        population: PopulationView) -> Decision:
        if "training_iteration" in result:
            self._current_step = int(result["training_iteration"])
        if not self._due(result):
            return Decision(Action.CONTINUE)
        switch_at, new_config = self.schedule[self._next]
        checkpoint = trial.latest_checkpoint
        if checkpoint is None:
            raise ExperimentError(
                f"PopulationBasedTrainingReplay switches the config at iteration {switch_at}, but trial "
                f"{trial.trial_id} has no checkpoint to continue from: checkpoint at the switch iterations "
                f"{[step for step, _ in self.schedule]} (as the PBT run did)")
        where = "replay" if checkpoint.iteration == switch_at else \
            f"replay (switch at {switch_at}; from the checkpoint of iteration {checkpoint.iteration})"
        changes = tuple(HyperparamChange(name, old, where, new)
                        for name, old, new in _changed(trial.config, new_config))
        self._next += 1
        self._num_perturbations += 1
        return Decision(Action.PAUSE, perturbations=[Perturbation(
            target=trial.trial_id, donor=None, checkpoint=checkpoint, target_iteration=trial.iteration,
            target_score=None, donor_score=None, old_config=trial.config, donor_config=trial.config,
            new_config=copy.deepcopy(new_config), changes=changes, time_attr="training_iteration",
            time_value=float(self._current_step))])

    def debug_string(self) -> str:
        return f"PopulationBasedTraining replay: Step {self._current_step}, perturb {self._num_perturbations}"

    def describe(self) -> dict[str, Any]:
        """The source and the schedule itself, so that a resumed run does not need the source any more."""
        return {"type": type(self).__name__, "class": class_path(type(self)), "source": self.source,
                "trial": self.trial, "initial_config": self.initial_config,
                "schedule": [[step, config] for step, config in self.schedule]}

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> PopulationBasedTrainingReplay:
        replay = cls.__new__(cls)
        replay._setup(description["source"], description.get("trial"), description.get("initial_config"),
                      [(step, config) for step, config in description["schedule"]])
        return replay

    def state_dict(self) -> dict[str, Any]:
        return {"trial_id": self._trial_id, "next": self._next, "current_step": self._current_step,
                "num_perturbations": self._num_perturbations}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._trial_id = state["trial_id"]
        self._next = int(state["next"])
        self._current_step = int(state["current_step"])
        self._num_perturbations = int(state["num_perturbations"])


def _changed(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(_changed(a, b, f"{prefix}{key}/"))
        elif a != b:
            out.append((f"{prefix}{key}", a, b))
    return out
