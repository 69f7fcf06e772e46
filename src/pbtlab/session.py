"""The trainable's side of a trial: ``tune.report`` and ``tune.get_checkpoint``.

A trial's function runs in a worker (a thread of this process, a worker process, or a Ray actor).
Every executor runs it through :func:`run_trial`, which talks to the driver through a
:class:`Channel`: each ``report`` sends one message and blocks until the driver answers with a
:class:`Command` (continue, stop, or restart with a new config and checkpoint). That handshake is
what lets PBT pause, clone and restart a trial at a report boundary without killing its worker.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pbtlab.checkpoint import Checkpoint, persist_directory
from pbtlab.errors import ReportError, describe


@dataclasses.dataclass(frozen=True, slots=True)
class StartSpec:
    """Everything a worker needs to (re)start a trial's function. Picklable."""

    trial_id: str
    config: dict[str, Any]
    trial_dir: str
    checkpoint_path: str | None
    next_checkpoint_index: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReportMessage:
    metrics: dict[str, Any]
    checkpoint_path: str | None
    checkpoint_index: int | None
    time_this_iter_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class FinishedMessage:
    """The function returned."""


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorMessage:
    error_type: str
    message: str
    traceback: str
    usage_error: bool  # a ReportError: retrying cannot help


WorkerMessage = ReportMessage | FinishedMessage | ErrorMessage


class CommandKind(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"
    RESTART = "restart"


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    kind: CommandKind
    spec: StartSpec | None = None


CONTINUE = Command(CommandKind.CONTINUE)
STOP = Command(CommandKind.STOP)


class Channel(Protocol):
    """Worker side of the driver link: send one message, block for the driver's command."""

    def exchange(self, message: WorkerMessage) -> Command: ...


class _StopTrial(BaseException):
    """Raised inside the trial's function to unwind it (BaseException: user `except Exception` won't eat it)."""


class _RestartTrial(BaseException):
    def __init__(self, spec: StartSpec) -> None:
        super().__init__(spec.trial_id)
        self.spec = spec


class TrialContext:
    """What ``tune.get_context()`` returns inside a trial."""

    def __init__(self, session: TrialSession) -> None:
        self._session = session

    def get_trial_id(self) -> str:
        return self._session.spec.trial_id

    def get_trial_dir(self) -> str:
        return self._session.spec.trial_dir


class TrialSession:
    """State of one run of a trial's function; reached through ``tune.report`` and friends."""

    def __init__(self, spec: StartSpec, channel: Channel) -> None:
        self.spec = spec
        self.channel = channel
        self.checkpoint = Checkpoint(spec.checkpoint_path) if spec.checkpoint_path else None
        self.next_checkpoint_index = spec.next_checkpoint_index
        self.mark = time.perf_counter()

    def report(self, metrics: Any, checkpoint: Checkpoint | None = None) -> None:
        elapsed = time.perf_counter() - self.mark
        if not isinstance(metrics, Mapping):
            raise ReportError(f"tune.report(metrics) needs a dict of metrics, got {describe(metrics)}")
        for key in metrics:
            if not isinstance(key, str):
                raise ReportError(f"tune.report(metrics): metric names must be str, got key {describe(key)}")
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            raise ReportError(
                f"tune.report(checkpoint=...) needs a tune.Checkpoint or None, got {describe(checkpoint)}")
        saved_path = None
        index = None
        if checkpoint is not None:
            if not os.path.isdir(checkpoint.path):
                raise ReportError(f"tune.report(checkpoint=...): directory {checkpoint.path!r} does not exist")
            index = self.next_checkpoint_index
            saved_path = persist_directory(checkpoint.path, self.spec.trial_dir, f"checkpoint_{index:06d}")
            self.next_checkpoint_index += 1
            self.checkpoint = Checkpoint(saved_path)
        command = self.channel.exchange(ReportMessage(dict(metrics), saved_path, index, elapsed))
        self.mark = time.perf_counter()
        if command.kind is CommandKind.CONTINUE:
            return
        if command.kind is CommandKind.RESTART:
            assert command.spec is not None  # internal invariant, not user input
            raise _RestartTrial(command.spec)
        raise _StopTrial()


_local = threading.local()


def current_session() -> TrialSession | None:
    return getattr(_local, "session", None)


def _require_session(what: str) -> TrialSession:
    session = current_session()
    if session is None:
        raise ReportError(f"{what} was called outside a trial; call it from the function you pass to Tuner")
    return session


def report(metrics: Mapping[str, Any], *, checkpoint: Checkpoint | None = None) -> None:
    """Report one training iteration's metrics (and optionally a checkpoint) to the tuner.

    The checkpoint directory is copied into the experiment at once, so a temporary directory is fine.
    """
    _require_session("tune.report()").report(metrics, checkpoint)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint to resume from: the trial's own latest one, or a donor's after a PBT exploit."""
    return _require_session("tune.get_checkpoint()").checkpoint


def get_context() -> TrialContext:
    """The running trial's id and directory."""
    return TrialContext(_require_session("tune.get_context()"))


def run_trial(fn: Callable[..., Any], spec: StartSpec, channel: Channel) -> None:
    """Run a trial's function until the driver says stop; restart it in place when told to."""
    while True:
        session = TrialSession(spec, channel)
        _local.session = session
        try:
            fn(spec.config)
            message: WorkerMessage = FinishedMessage()
        except _RestartTrial as restart:
            spec = restart.spec
            continue
        except _StopTrial:
            return
        except BaseException as error:  # noqa: BLE001 - a trial's failure is data for the driver
            message = ErrorMessage(type(error).__name__, str(error), traceback.format_exc(),
                                   isinstance(error, ReportError))
        finally:
            _local.session = None
        command = channel.exchange(message)
        if command.kind is not CommandKind.RESTART or command.spec is None:
            return
        spec = command.spec
