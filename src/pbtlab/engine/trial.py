"""The controller's record of a trial, and the read-only view of it that schedulers get.

    >>> trial = Trial("a1b2c_00000", 0, {"lr": 0.1}, "0_lr=0.1000")
    >>> trial.status, trial.is_waiting
    (<TrialStatus.PENDING: 'PENDING'>, True)
    >>> view = TrialView(trial)
    >>> view.config["lr"] = 5.0  # a scheduler gets a copy: the trial is not changed
    >>> trial.config["lr"]
    0.1
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pbtlab import lazy_dataclass
from pbtlab.checkpoint import Checkpoint
from pbtlab.nested import copy_tree
from pbtlab.rundir.checkpoints import CheckpointRef

__all__ = ["PendingRestart", "Population", "RESTART_REASONS", "Trial", "TrialStatus", "TrialView", "TrialViews"]


class TrialStatus(str, enum.Enum):
    """A trial's state; compares equal to Ray's status strings (``trial.status == "RUNNING"``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"

    def __str__(self) -> str:  # Ray's statuses are plain strings: f"{trial.status}" prints RUNNING
        return self.value


#: Why a trial restarts: an exploit or explore decision, a retried failure, or a resumed run.
RESTART_REASONS = ("exploit", "explore", "failure", "resume")


@lazy_dataclass.dataclass(frozen=True, slots=True)
class PendingRestart:
    """A restart that was decided and not yet carried out: load ``checkpoint`` (None: from scratch)."""

    checkpoint: CheckpointRef | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint.to_dict() if self.checkpoint else None, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingRestart:
        checkpoint = data.get("checkpoint")
        return cls(CheckpointRef.from_dict(checkpoint) if checkpoint else None, str(data["reason"]))

    @property
    def is_decision(self) -> bool:
        """Decided by the scheduler (exploit/explore), so a resumed run must still carry it out."""
        return self.reason in ("exploit", "explore")


@lazy_dataclass.dataclass(eq=False)
class Trial:
    """One trial: its config, progress, checkpoints, and what happens at its next start."""

    trial_id: str
    index: int
    config: dict[str, Any]
    tag: str
    status: TrialStatus = TrialStatus.PENDING
    iteration: int = 0
    time_total_s: float = 0.0
    iterations_since_restore: int = 0
    time_since_restore: float = 0.0
    last_result: dict[str, Any] | None = None
    checkpoints: list[CheckpointRef] = dataclasses.field(default_factory=list)
    latest: CheckpointRef | None = None  # own newest checkpoint, or the one it was restored from
    restart: PendingRestart | None = None  # carried out at the next launch
    restored_from: dict[str, Any] | None = None  # written into the next result row
    num_failures: int = 0
    error: dict[str, Any] | None = None
    next_checkpoint_index: int = 0
    has_worker: bool = False
    dirty: bool = False  # reported since its latest checkpoint
    name: str = ""  # Ray's trial name: ``<trainable>_<trial_id>``, or what trial_name_creator returned
    path: str | None = None  # the trial's directory (set by the engine; not saved)
    trainable_name: str = ""  # the trainable's name (set by the engine; not saved)
    evaluated_params: dict[str, Any] = dataclasses.field(default_factory=dict)  # sampled values, "a/b" keys

    @property
    def is_finished(self) -> bool:
        return self.status in (TrialStatus.TERMINATED, TrialStatus.ERROR)

    @property
    def is_waiting(self) -> bool:
        return self.status in (TrialStatus.PENDING, TrialStatus.PAUSED)

    @property
    def latest_checkpoint(self) -> CheckpointRef | None:
        return self.latest

    @property
    def orig_tag(self) -> str:
        """The tag the trial was added with (Ray's ``orig_tag``), without ``@perturbed[...]``."""
        return self.tag.split("@perturbed", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id, "index": self.index, "config": self.config, "tag": self.tag,
            "status": self.status.value, "iteration": self.iteration, "time_total_s": self.time_total_s,
            "last_result": self.last_result,
            "checkpoints": [c.to_dict() for c in self.checkpoints],
            "latest": self.latest.to_dict() if self.latest else None,
            "restart": self.restart.to_dict() if self.restart else None,
            "num_failures": self.num_failures, "error": self.error,
            "next_checkpoint_index": self.next_checkpoint_index, "name": self.name,
            "evaluated_params": self.evaluated_params,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        ref = CheckpointRef.from_dict
        restart = PendingRestart.from_dict(data["restart"]) if data.get("restart") else None
        if restart is None and data.get("pending_restart"):  # state.json written before PendingRestart
            old = data.get("restore")
            restart = PendingRestart(ref(old) if old else None, str(data.get("restore_reason") or "exploit"))
        return cls(
            trial_id=data["trial_id"], index=int(data["index"]), config=data["config"], tag=data["tag"],
            status=TrialStatus(data["status"]), iteration=int(data["iteration"]),
            time_total_s=float(data["time_total_s"]), last_result=data.get("last_result"),
            checkpoints=[ref(c) for c in data.get("checkpoints", [])],
            latest=ref(data["latest"]) if data.get("latest") else None, restart=restart,
            num_failures=int(data.get("num_failures", 0)), error=data.get("error"),
            next_checkpoint_index=int(data.get("next_checkpoint_index", 0)), name=str(data.get("name", "")),
            evaluated_params=dict(data.get("evaluated_params") or {}),
        )


class TrialView:
    """What a scheduler or a callback may read about a trial: read-only; ``config`` is the reader's own copy.

    ``str(view)`` is the trial's name (``<trainable>_<trial_id>`` unless ``trial_name_creator`` set one).
    Ray's public ``Trial`` attributes that callbacks and loggers read are here: ``trial_id``, ``trainable_name``,
    ``config``, ``evaluated_params``, ``experiment_tag``, ``status``, ``last_result``, ``path`` (also
    ``local_path`` and ``logdir``), ``checkpoint``, ``num_failures``, ``error_msg``, ``custom_trial_name``,
    ``custom_dirname``, ``experiment_dir_name``, ``local_experiment_path``, ``has_checkpoint()``,
    ``has_reported_at_least_once``.

        >>> view = TrialView(Trial("t0", 0, {"lr": 0.1}, "0_lr=0.1000", name="train_t0", trainable_name="train",
        ...                        evaluated_params={"lr": 0.1}))
        >>> view.trainable_name, view.evaluated_params, view.has_checkpoint(), view.last_result
        ('train', {'lr': 0.1}, False, {})
    """

    __slots__ = ("_trial",)

    def __init__(self, trial: Trial) -> None:
        self._trial = trial

    def __str__(self) -> str:
        return self._trial.name or self._trial.trial_id

    @property
    def trial_name(self) -> str:
        return str(self)

    @property
    def trainable_name(self) -> str:
        """The trainable's name (Ray: ``trial.trainable_name``), e.g. ``train_func``."""
        return self._trial.trainable_name or self._trial.name.rsplit(f"_{self._trial.trial_id}", 1)[0]

    @property
    def custom_trial_name(self) -> str | None:
        """The name ``trial_name_creator`` gave (None without one), as Ray keeps it."""
        default = f"{self.trainable_name}_{self._trial.trial_id}"
        return self._trial.name if self._trial.name and self._trial.name != default else None

    @property
    def custom_dirname(self) -> str | None:
        """The folder ``trial_dirname_creator`` gave (None without one)."""
        if self._trial.path is None:
            return None
        folder = os.path.basename(self._trial.path)
        return folder if folder != self._trial.trial_id else None

    @property
    def experiment_tag(self) -> str:
        return self._trial.tag

    @property
    def evaluated_params(self) -> dict[str, Any]:
        """The values sampled for this trial from ``param_space``, by ``a/b`` path (as Ray's)."""
        return copy.deepcopy(self._trial.evaluated_params)

    @property
    def path(self) -> str | None:
        """The trial's directory (Ray's ``trial.path``; also ``local_path`` and ``logdir``)."""
        return self._trial.path

    local_path = path
    logdir = path

    @property
    def local_experiment_path(self) -> str | None:
        """The experiment directory the trial's folder is in."""
        return os.path.dirname(self._trial.path) if self._trial.path else None

    @property
    def experiment_dir_name(self) -> str | None:
        """The experiment directory's name (``RunConfig(name)``)."""
        path = self.local_experiment_path
        return os.path.basename(path) if path else None

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The trial's latest checkpoint as a ``tune.Checkpoint`` (None before its first)."""
        latest = self._trial.latest
        if latest is None or self._trial.path is None:
            return None
        return Checkpoint(os.path.join(os.path.dirname(self._trial.path), latest.path))

    def has_checkpoint(self) -> bool:
        """Has the trial a checkpoint (its own, or the one it was restored from)?"""
        return self._trial.latest is not None

    @property
    def trial_id(self) -> str:
        return self._trial.trial_id

    @property
    def config(self) -> dict[str, Any]:
        return copy_tree(self._trial.config)

    @property
    def iteration(self) -> int:
        return self._trial.iteration

    @property
    def status(self) -> TrialStatus:
        return self._trial.status

    @property
    def num_failures(self) -> int:
        return self._trial.num_failures

    @property
    def error_msg(self) -> str | None:
        """The error that ended the trial (``ErrorType: message``), None if it did not error."""
        error = self._trial.error
        return f"{error['error_type']}: {error['message']}" if error else None

    @property
    def is_finished(self) -> bool:
        return self._trial.is_finished

    @property
    def is_waiting(self) -> bool:
        return self._trial.is_waiting

    @property
    def latest_checkpoint(self) -> CheckpointRef | None:
        return self._trial.latest

    @property
    def last_result(self) -> Mapping[str, Any]:
        """The trial's latest result row (``{}`` before its first report, as in Ray)."""
        result = self._trial.last_result
        return copy.deepcopy(result) if result is not None else {}

    @property
    def has_reported_at_least_once(self) -> bool:
        return self._trial.last_result is not None

    def __repr__(self) -> str:
        return f"TrialView({self.trial_id}, {self.status.value}, iteration={self.iteration})"


class TrialViews(Sequence[TrialView]):
    """Every trial, as read-only views made on access (callbacks' ``trials``; no copy per call)."""

    def __init__(self, trials: list[Trial]) -> None:
        self._trials = trials

    def __getitem__(self, index: int) -> TrialView:  # type: ignore[override]
        return TrialView(self._trials[index])

    def __len__(self) -> int:
        return len(self._trials)


class Population(Mapping[str, TrialView]):
    """The trials by id, as schedulers see them (read-only views), and how many wait for a slot."""

    def __init__(self, trials: Mapping[str, Trial], waiting: Mapping[str, Trial]) -> None:
        self._trials = trials
        self._waiting = waiting

    def __getitem__(self, trial_id: str) -> TrialView:
        return TrialView(self._trials[trial_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self._trials)

    def __len__(self) -> int:
        return len(self._trials)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)
