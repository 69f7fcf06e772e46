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

from pbtlab.checkpoint import Checkpoint
from pbtlab.rundir.checkpoints import CheckpointRef


class TrialStatus(str, enum.Enum):
    """A trial's state; compares equal to Ray's status strings (``trial.status == "RUNNING"``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"


#: Why a trial restarts: an exploit or explore decision, a retried failure, or a resumed run.
RESTART_REASONS = ("exploit", "explore", "failure", "resume")


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(eq=False)
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
        )


class TrialView:
    """What a scheduler or a callback may read about a trial: read-only; ``config`` is the reader's own copy.

    ``str(view)`` is the trial's name (``<trainable>_<trial_id>`` unless ``trial_name_creator`` set one).
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
    def experiment_tag(self) -> str:
        return self._trial.tag

    @property
    def path(self) -> str | None:
        """The trial's directory (Ray's ``trial.path``; also ``local_path`` and ``logdir``)."""
        return self._trial.path

    local_path = path
    logdir = path

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The trial's latest checkpoint as a ``tune.Checkpoint`` (None before its first)."""
        latest = self._trial.latest
        if latest is None or self._trial.path is None:
            return None
        return Checkpoint(os.path.join(os.path.dirname(self._trial.path), latest.path))

    @property
    def trial_id(self) -> str:
        return self._trial.trial_id

    @property
    def config(self) -> dict[str, Any]:
        return copy.deepcopy(self._trial.config)

    @property
    def iteration(self) -> int:
        return self._trial.iteration

    @property
    def status(self) -> TrialStatus:
        return self._trial.status

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
    def last_result(self) -> Mapping[str, Any] | None:
        result = self._trial.last_result
        return copy.deepcopy(result) if result is not None else None

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
