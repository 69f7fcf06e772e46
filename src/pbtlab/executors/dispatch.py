"""The driver side shared by executors whose trials run concurrently elsewhere (processes, Ray actors).

:class:`DispatchExecutor` implements the executor protocol (``start``, ``send``, ``wait``,
``shutdown``; see :mod:`pbtlab.executors.base`) once: one :class:`WorkerRecord` per trial, each command
numbered as it is dispatched, ``wait`` returning the earliest-dispatched trial whose reply is in, a
worker that dies reported as a ``WorkerDied`` :class:`~pbtlab.session.ErrorMessage`, and a retry
(``RESTART`` to a dead worker) getting a fresh one. A subclass supplies only its transport, five
methods: launch a worker, deliver a command, wait for replies, take one reply, retire a worker.

    class PipeExecutor(DispatchExecutor[PipeWorker]):
        name = "pipe"

        def _launch(self, spec): ...          # start a worker on `spec`; return its record
        def _deliver(self, worker, command): ...  # send CONTINUE/RESTART/SAVE; raise WorkerLost if gone
        def _collect(self, busy): ...         # block until some of `busy` have a reply (or died)
        def _receive(self, worker): ...       # its reply, or raise WorkerLost(how)
        def _retire(self, worker, final): ... # end it: parked, busy or dead
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pbtlab.errors import ExecutorError
from pbtlab.session import Command, CommandKind, ErrorMessage, StartSpec, WorkerMessage


@dataclasses.dataclass(slots=True, eq=False)
class WorkerRecord:
    """The driver's record of one trial's worker; transports subclass it to add their handles.

    ``busy_since`` is the dispatch number of the command (or start) the worker is working on, None
    while its last message is unanswered. ``lost`` says why a worker that could not be sent a command
    is gone, until ``wait`` reports it; ``dead`` is set once its death was reported.
    """

    trial_id: str
    busy_since: int | None = None
    lost: str | None = None
    dead: bool = False


class WorkerLost(Exception):
    """Raised by a transport when a worker is gone; ``how`` completes "the worker of trial X died: ..."."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


def worker_died(trial_id: str, how: str) -> ErrorMessage:
    """The message that reports a dead worker to the controller (retried like any failure).

    >>> worker_died("t3", "process 12 was killed by SIGKILL").message
    'the worker of trial t3 died: process 12 was killed by SIGKILL'
    """
    return ErrorMessage("WorkerDied", f"the worker of trial {trial_id} died: {how}",
                        f"WorkerDied: trial {trial_id}: {how} (without a message to the driver)\n", False)


Worker = TypeVar("Worker", bound=WorkerRecord)


class DispatchExecutor(abc.ABC, Generic[Worker]):
    """The executor protocol over a transport (see the module docstring); one worker per trial."""

    name: str

    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}
        self._dispatch = 0

    # -- protocol ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None: ...

    @abc.abstractmethod
    def default_concurrency(self, num_trials: int) -> int: ...

    def start(self, spec: StartSpec) -> None:
        old = self._workers.pop(spec.trial_id, None)
        if old is not None:
            self._retire(old, final=False)
        worker = self._launch(spec)
        self._workers[spec.trial_id] = worker
        self._mark_busy(worker)

    def send(self, trial_id: str, command: Command) -> None:
        worker = self._workers.get(trial_id)
        if command.kind is CommandKind.STOP:
            if worker is not None:
                del self._workers[trial_id]
                self._retire(worker, final=False)
            return
        if worker is None or worker.dead:
            if command.kind is CommandKind.RESTART and command.spec is not None:
                self.start(command.spec)  # the old worker died: a retry gets a fresh one
                return
            raise ExecutorError(f"{type(self).__name__}.send(): trial {trial_id} has no live worker to "
                                f"{command.kind.value}")
        try:
            self._deliver(worker, command)
        except WorkerLost as lost:
            worker.lost = lost.how  # wait() reports it
        self._mark_busy(worker)

    def wait(self) -> tuple[str, WorkerMessage]:
        busy = sorted((w for w in self._workers.values() if w.busy_since is not None),
                      key=lambda w: w.busy_since or 0)
        if not busy:
            raise ExecutorError(f"{type(self).__name__}.wait() was called while no trial is running: every "
                                "trial's last message was already returned; start() a trial or send() a command first")
        for worker in busy:  # a worker that was gone when a command was sent to it
            if worker.lost is not None:
                return worker.trial_id, self._died(worker, worker.lost)
        ready = self._collect(busy)
        worker = min(ready, key=lambda w: w.busy_since or 0)  # the earliest dispatched (as in-process would)
        try:
            message = self._receive(worker)
        except WorkerLost as lost:
            return worker.trial_id, self._died(worker, lost.how)
        worker.busy_since = None
        return worker.trial_id, message

    def shutdown(self) -> None:
        for trial_id in list(self._workers):
            self._retire(self._workers.pop(trial_id), final=True)

    # -- transport ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def _launch(self, spec: StartSpec) -> Worker:
        """Start a worker that runs ``spec`` to its first message; return its record."""

    @abc.abstractmethod
    def _deliver(self, worker: Worker, command: Command) -> None:
        """Send CONTINUE, RESTART or SAVE to a parked worker; raise :class:`WorkerLost` if it is gone."""

    @abc.abstractmethod
    def _collect(self, busy: list[Worker]) -> list[Worker]:
        """Block until some of ``busy`` (in dispatch order) have a reply or died; return those
        (for a transport that can tell, only those with a reply when there are any)."""

    @abc.abstractmethod
    def _receive(self, worker: Worker) -> WorkerMessage:
        """Take the reply of a worker that :meth:`_collect` returned; raise :class:`WorkerLost` if it died."""

    @abc.abstractmethod
    def _retire(self, worker: Worker, final: bool) -> None:
        """End a worker that left ``_workers`` (stopped, replaced, or at shutdown when ``final``):
        parked, still busy, or dead."""

    # -- helpers -----------------------------------------------------------------------------------
    def _mark_busy(self, worker: Worker) -> None:
        self._dispatch += 1
        worker.busy_since = self._dispatch

    def _died(self, worker: Worker, how: str) -> ErrorMessage:
        worker.dead = True
        worker.busy_since = None
        worker.lost = None
        return worker_died(worker.trial_id, how)
