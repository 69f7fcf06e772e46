"""The trainable's side of a trial: ``tune.report`` and ``tune.get_checkpoint``.

A trial's function runs in a worker (a thread of this process, a worker process, or a Ray actor).
Every executor runs it through :func:`run_trial`, which talks to the driver through a
:class:`Channel`: each ``report`` sends one message and blocks until the driver answers with a
:class:`Command` (continue, stop, or restart with a new config and checkpoint). That handshake is
what lets PBT pause, clone and restart a trial at a report boundary without killing its worker.

While a trial waits for a command, the driver may also ask it to ``SAVE``: the trial answers with a
:class:`SavedMessage` (the checkpoint that :attr:`TrialSession.save_hook` made, persisted like a
reported one; none for a plain function) and waits again, for the command that ends the pause.
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import os
import shutil
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pbtlab import lazy_dataclass
from pbtlab.checkpoint import Checkpoint
from pbtlab.rundir.checkpoints import finalizer_mark, made_since, persist_directory
from pbtlab.errors import ReportError, describe
from pbtlab.resources import Resources

__all__ = [
    "Channel", "Command", "CommandKind", "CONTINUE", "current_session", "ErrorMessage", "FinishedMessage",
    "get_checkpoint", "get_context", "log_paths", "redirect_descriptors", "report", "ReportMessage", "run_trial",
    "SAVE", "SavedMessage", "StartSpec", "STOP", "TrialContext", "TrialSession",
]


@lazy_dataclass.dataclass(frozen=True, slots=True)
class StartSpec:
    """Everything a worker needs to (re)start a trial's function. Picklable.

    ``trial_name`` and ``experiment_name`` are what ``tune.get_context()`` reports; ``resources`` what the
    trial asked for (``tune.with_resources``; None: the executor's default) and ``gpu_ids`` the devices the
    executor gave it; ``log_to_file`` the files (relative to ``trial_dir``) its stdout and stderr go to
    (``RunConfig(log_to_file=...)``; None: not redirected).
    """

    trial_id: str
    config: dict[str, Any]
    trial_dir: str
    checkpoint_path: str | None
    next_checkpoint_index: int
    trial_name: str = ""
    experiment_name: str = ""
    resources: Resources | None = None
    gpu_ids: tuple[str, ...] = ()
    log_to_file: tuple[str | None, str | None] = (None, None)


@lazy_dataclass.dataclass(frozen=True, slots=True)
class ReportMessage:
    """A ``tune.report``: its metrics, the checkpoint it persisted (directory and index) if any, and the
    seconds since the trial's previous report."""

    metrics: dict[str, Any]
    checkpoint_path: str | None
    checkpoint_index: int | None
    time_this_iter_s: float


@lazy_dataclass.dataclass(frozen=True, slots=True)
class SavedMessage:
    """The answer to ``SAVE``: the checkpoint saved now, or None (no save hook, or it had nothing to save).

    ``checkpoint_path`` is the persisted directory (``<trial_dir>/checkpoint_<index:06d>``), numbered in
    the same sequence as reported checkpoints; ``checkpoint_index`` is that index.
    """

    checkpoint_path: str | None
    checkpoint_index: int | None


@lazy_dataclass.dataclass(frozen=True, slots=True)
class FinishedMessage:
    """The function returned."""


@lazy_dataclass.dataclass(frozen=True, slots=True)
class ErrorMessage:
    """The function raised: the exception's type name, message and formatted traceback."""

    error_type: str
    message: str
    traceback: str
    usage_error: bool  # a ReportError: retrying cannot help


WorkerMessage = ReportMessage | SavedMessage | FinishedMessage | ErrorMessage


class CommandKind(enum.Enum):
    """The driver's answer to a trial's message (see ``pbtlab.executors.base`` for the protocol)."""

    CONTINUE = "continue"  # run to the next report
    STOP = "stop"  # unwind the function and end the worker
    RESTART = "restart"  # unwind the function and call it again with Command.spec
    SAVE = "save"  # save a checkpoint now, answer with a SavedMessage, and wait for the next command


@lazy_dataclass.dataclass(frozen=True, slots=True)
class Command:
    """The driver's answer to a message; ``spec`` is the new start of a ``RESTART``."""

    kind: CommandKind
    spec: StartSpec | None = None


CONTINUE = Command(CommandKind.CONTINUE)
STOP = Command(CommandKind.STOP)
SAVE = Command(CommandKind.SAVE)

#: What ``TrialSession.save_hook`` holds: no arguments, returns the checkpoint of the trial's state now.
SaveHook = Callable[[], Checkpoint | None]


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
    """What ``tune.get_context()`` returns inside a trial (Ray's ``TuneContext`` getters).

        >>> def train(config):
        ...     context = tune.get_context()
        ...     with open(os.path.join(context.get_trial_dir(), "notes.txt"), "w") as notes:
        ...         notes.write(f"{context.get_trial_name()} of {context.get_experiment_name()}")
    """

    def __init__(self, session: TrialSession) -> None:
        self._session = session

    def get_trial_id(self) -> str:
        """The trial's id (``a1b2c_00000``)."""
        return self._session.spec.trial_id

    def get_trial_name(self) -> str:
        """The trial's name: ``<trainable>_<trial_id>``, or what ``TuneConfig(trial_name_creator)`` returned."""
        return self._session.spec.trial_name or self._session.spec.trial_id

    def get_trial_dir(self) -> str:
        """The trial's own directory (absolute). Write files here: in-process trials share one working
        directory, so a relative path is not per trial there."""
        return self._session.spec.trial_dir

    def get_trial_resources(self) -> Resources:
        """What the trial asked for (``tune.with_resources``; else one CPU), as a :class:`~pbtlab.resources.Resources`
        (``.cpu``, ``.gpu``, and Ray's ``.required_resources``)."""
        return self._session.spec.resources or Resources()

    def get_trial_gpu_ids(self) -> list[str]:
        """The GPU ids the executor gave the trial (the process executor also sets ``CUDA_VISIBLE_DEVICES``)."""
        return list(self._session.spec.gpu_ids)

    def get_experiment_name(self) -> str:
        """The experiment's name (its folder under ``storage_path``)."""
        return self._session.spec.experiment_name


class TrialSession:
    """State of one run of a trial's function; reached through ``tune.report`` and friends.

    ``save_hook`` (None by default) is how a wrapper that owns the trial's state answers ``SAVE``: a
    function with no arguments that returns a :class:`~pbtlab.checkpoint.Checkpoint` of the state now, or
    None. The session persists that checkpoint like a reported one. Set it from inside the trial::

        session = current_session()
        session.save_hook = lambda: Checkpoint.from_directory(trainable.save(tmp_dir))

    With ``save_hook_scratch = True`` the directory the hook returns is scratch space the hook made for
    this save: it is moved into the trial directory, so nothing is left behind (class trainables).

    A reported checkpoint's folder is copied into the trial directory, except one that a
    ``tempfile.TemporaryDirectory`` made during this step (after the previous ``report`` returned, not
    before the first) and that it will delete: that folder is moved, and is gone when ``report`` returns.
    This is the tutorial's (and Ray's documented) pattern; set ``PBTLAB_CHECKPOINT_MOVE=0`` to copy always.
    """

    def __init__(self, spec: StartSpec, channel: Channel) -> None:
        self.spec = spec
        self.channel = channel
        self.checkpoint = Checkpoint(spec.checkpoint_path) if spec.checkpoint_path else None
        self.next_checkpoint_index = spec.next_checkpoint_index
        self.save_hook: SaveHook | None = None
        self.save_hook_scratch = False
        self.mark = time.perf_counter()
        self.step_mark: int | None = None  # weakref.finalize's counter when report last returned
        self.move_scratch = os.environ.get("PBTLAB_CHECKPOINT_MOVE", "1") != "0"

    def report(self, metrics: Any, checkpoint: Checkpoint | None = None, adopt: bool = False) -> None:
        """``tune.report``. ``adopt``: the checkpoint's folder is scratch space of the caller's, which it will
        not use again (a class trainable's save folder): it is moved into the trial directory, not copied."""
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
            move = adopt or (self.move_scratch and made_since(checkpoint.path, self.step_mark))
            saved_path, index = self._persist(checkpoint, move=move)
        command = self.exchange(ReportMessage(dict(metrics), saved_path, index, elapsed))
        self.mark = time.perf_counter()
        if self.move_scratch:
            self.step_mark = finalizer_mark()
        if command.kind is CommandKind.CONTINUE:
            return
        if command.kind is CommandKind.RESTART:
            assert command.spec is not None  # internal invariant, not user input
            raise _RestartTrial(command.spec)
        raise _StopTrial()

    def exchange(self, message: WorkerMessage) -> Command:
        """Send ``message``; answer every ``SAVE`` that comes back; return the first other command.

        A save hook that raises propagates: inside ``tune.report`` it fails the trial like any error.
        """
        command = self.channel.exchange(message)
        while command.kind is CommandKind.SAVE:
            command = self.channel.exchange(self.save())
        return command

    def save(self) -> SavedMessage:
        """Checkpoint the trial now through :attr:`save_hook` (nothing to save without one)."""
        if self.save_hook is None:
            return SavedMessage(None, None)
        checkpoint = self.save_hook()
        if checkpoint is None:
            return SavedMessage(None, None)
        if not isinstance(checkpoint, Checkpoint):
            raise ReportError(
                f"the trial's save hook must return a tune.Checkpoint or None, got {describe(checkpoint)}")
        if not os.path.isdir(checkpoint.path):
            raise ReportError(f"the trial's save hook returned a checkpoint whose directory {checkpoint.path!r} "
                              "does not exist")
        try:
            return SavedMessage(*self._persist(checkpoint, move=self.save_hook_scratch))
        finally:
            if self.save_hook_scratch and os.path.isdir(checkpoint.path):  # the move failed part way
                shutil.rmtree(checkpoint.path, ignore_errors=True)

    def _persist(self, checkpoint: Checkpoint, move: bool = False) -> tuple[str, int]:
        """Copy (``move``: move) ``checkpoint`` into the trial directory as the next ``checkpoint_<index:06d>``
        (atomically)."""
        index = self.next_checkpoint_index
        saved_path = persist_directory(checkpoint.path, self.spec.trial_dir, f"checkpoint_{index:06d}", move=move)
        self.next_checkpoint_index += 1
        self.checkpoint = Checkpoint(saved_path)
        return saved_path, index


#: The session of the trial running in this thread (or greenlet: each has its own context, so trials that
#: share a thread through greenlets each see their own).
_current: contextvars.ContextVar[TrialSession | None] = contextvars.ContextVar("pbtlab_trial_session", default=None)


def current_session() -> TrialSession | None:
    return _current.get()


def _require_session(what: str) -> TrialSession:
    session = current_session()
    if session is None:
        raise ReportError(f"{what} was called outside a trial; call it from the function you pass to Tuner")
    return session


def report(metrics: Mapping[str, Any], *, checkpoint: Checkpoint | None = None) -> None:
    """Report one training iteration's metrics (and optionally a checkpoint) to the tuner.

    The checkpoint directory is persisted into the experiment at once, so a temporary directory is fine.
    A ``tempfile.TemporaryDirectory`` made since the previous report is moved rather than copied (it is
    gone when this returns); any other folder is copied (see :class:`TrialSession`).
    """
    _require_session("tune.report()").report(metrics, checkpoint)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint to resume from: the trial's own latest one, or a donor's after a PBT exploit."""
    return _require_session("tune.get_checkpoint()").checkpoint


def get_context() -> TrialContext:
    """The running trial's id, name, directory and resources, and the experiment's name."""
    return TrialContext(_require_session("tune.get_context()"))


def run_trial(fn: Callable[..., Any], spec: StartSpec, channel: Channel, chdir: bool = False) -> None:
    """Run a trial's function until the driver says stop; restart it in place when told to.

    After the function returned or raised, the trial still answers ``SAVE`` (through the hook it set, if
    any) until the driver restarts or stops it; a hook that raises then is answered with an ErrorMessage.
    With ``chdir`` (a worker of its own: process or Ray actor) the function runs inside the trial's
    directory, so relative paths are per trial; the working directory is restored when the trial ends.
    """
    previous_cwd = os.getcwd() if chdir else None
    try:
        _run_trial(fn, spec, channel, chdir)
    finally:
        if previous_cwd is not None:
            os.chdir(previous_cwd)


def _run_trial(fn: Callable[..., Any], spec: StartSpec, channel: Channel, chdir: bool) -> None:
    while True:
        session = TrialSession(spec, channel)
        _current.set(session)
        try:
            if chdir:
                os.makedirs(spec.trial_dir, exist_ok=True)
                os.chdir(spec.trial_dir)
            fn(spec.config)
            message: WorkerMessage = FinishedMessage()
        except _RestartTrial as restart:
            spec = restart.spec
            continue
        except _StopTrial:
            return
        except BaseException as error:  # noqa: BLE001 - a trial's failure is data for the driver
            message = _error_message(error)
        finally:
            _current.set(None)
        command = channel.exchange(message)
        while command.kind is CommandKind.SAVE:
            _current.set(session)  # the hook may use tune.get_context() as it could during the run
            try:
                answer: WorkerMessage = session.save()
            except BaseException as error:  # noqa: BLE001 - as above
                answer = _error_message(error)
            finally:
                _current.set(None)
            command = channel.exchange(answer)
        if command.kind is not CommandKind.RESTART or command.spec is None:
            return
        spec = command.spec


def log_paths(spec: StartSpec) -> tuple[str | None, str | None]:
    """Absolute paths of the trial's stdout and stderr files (``RunConfig(log_to_file=...)``), or None each."""
    out, err = spec.log_to_file
    return (os.path.join(spec.trial_dir, out) if out else None, os.path.join(spec.trial_dir, err) if err else None)


def redirect_descriptors(spec: StartSpec) -> None:
    """In a worker process of its own: send file descriptors 1 and 2 (so C code's output too) to the trial's
    log files, appending, and point ``sys.stdout``/``sys.stderr`` at them (line-buffered), whatever
    stream objects they were (a test runner's capture, Ray's)."""
    import sys

    paths = log_paths(spec)
    opened: dict[str, int] = {}
    for fd, path, name in ((1, paths[0], "stdout"), (2, paths[1], "stderr")):
        if path is None:
            continue
        stream = getattr(sys, name)
        if stream is not None:
            stream.flush()
        if path not in opened:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            opened[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(opened[path], fd)
        setattr(sys, name, open(fd, "w", buffering=1, encoding="utf-8", closefd=False))  # noqa: SIM115
    for descriptor in opened.values():
        os.close(descriptor)


def _error_message(error: BaseException) -> ErrorMessage:
    import traceback  # only when a trial fails (about 0.4 ms of import pbtlab otherwise)

    return ErrorMessage(type(error).__name__, str(error), traceback.format_exc(), isinstance(error, ReportError))
