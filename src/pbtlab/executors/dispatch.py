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
        def _collect(self, busy, timeout): ...  # block until some of `busy` have a reply (or died); [] on timeout
        def _receive(self, worker): ...       # its reply, or raise WorkerLost(how)
        def _retire(self, worker, final): ... # end it: parked, busy or dead

Resources: a subclass that sets ``self._pool`` (a :class:`~pbtlab.executors.pool.ResourcePool`) gets
``fits``/``release``/``capacity_error`` (see :mod:`pbtlab.executors.base`): a trial holds its resources
from its start (or the command that resumes it) until it is released, stopped or its worker died, and
a worker started with GPU ids gets the same ids back whenever its trial runs again.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pbtlab.errors import ExecutorError
from pbtlab.executors.base import Executor
from pbtlab.executors.pool import Allocation, ResourcePool
from pbtlab.resources import Resources
from pbtlab.session import Command, CommandKind, ErrorMessage, StartSpec, WorkerMessage

__all__ = ["DispatchExecutor", "worker_died", "WorkerLost", "WorkerRecord"]


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
    gpu_ids: tuple[str, ...] = ()  # the devices the worker was started with


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


class DispatchExecutor(Executor, Generic[Worker]):
    """The executor protocol over a transport (see the module docstring); one worker per trial."""

    name: str
    #: True when the executor chooses the GPU ids itself (processes); Ray assigns them on its own.
    _assigns_gpus = False
    #: What a trial without ``tune.with_resources`` holds (None: it is not counted).
    _default_resources: Resources | None = Resources()

    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}
        self._dispatch = 0
        self._pool: ResourcePool | None = None  # set by a subclass that schedules resources
        self._resources: dict[str, Resources] = {}  # what each trial asked for, from its StartSpec

    # -- resources -----------------------------------------------------------------------------------
    def capacity_error(self, resources: Resources) -> str | None:
        """Why a trial asking for ``resources`` could never run here (None: it can)."""
        return self._pool.capacity_error(resources) if self._pool is not None else None

    def fits(self, trial_id: str, resources: Resources | None) -> bool:
        """Is there room for the trial now, next to what running trials hold?"""
        resources = resources or self._default_resources
        if self._pool is None or resources is None or trial_id in self._pool.held:
            return True
        return self._pool.fits(resources, self._pinned_gpus(trial_id))

    def release(self, trial_id: str) -> None:
        """The trial does not run for now (paused, or failed and waiting for its retry): free what it holds."""
        if self._pool is not None:
            self._pool.free(trial_id)

    def _pinned_gpus(self, trial_id: str) -> tuple[str, ...] | None:
        worker = self._workers.get(trial_id)
        return worker.gpu_ids if worker is not None and not worker.dead and worker.gpu_ids else None

    def _hold(self, trial_id: str, resources: Resources | None, new_worker: bool) -> Allocation | None:
        """Take the trial's resources in the pool, unless it holds them already (None without a pool)."""
        if self._pool is None:
            return None
        if resources is not None:
            self._resources[trial_id] = resources
        held = self._pool.held.get(trial_id)
        if held is not None and not new_worker:
            return held
        asked = self._resources.get(trial_id) or self._default_resources
        if asked is None:
            return None
        prefer = None if new_worker else self._pinned_gpus(trial_id)
        return self._pool.allocate(trial_id, asked, prefer)

    # -- protocol ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None: ...

    @abc.abstractmethod
    def default_concurrency(self, num_trials: int) -> int: ...

    def start(self, spec: StartSpec) -> None:
        old = self._workers.pop(spec.trial_id, None)
        if old is not None:
            self._retire(old, final=False)
        allocation = self._hold(spec.trial_id, spec.resources, new_worker=True)
        if allocation is not None and self._assigns_gpus:
            spec = dataclasses.replace(spec, gpu_ids=allocation.gpu_ids)
        worker = self._launch(spec)
        worker.gpu_ids = spec.gpu_ids
        self._workers[spec.trial_id] = worker
        self._mark_busy(worker)

    def send(self, trial_id: str, command: Command) -> None:
        worker = self._workers.get(trial_id)
        if command.kind is CommandKind.STOP:
            if self._pool is not None:
                self._pool.free(trial_id)
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
        if command.kind in (CommandKind.CONTINUE, CommandKind.RESTART):
            self._hold(trial_id, command.spec.resources if command.spec is not None else None, new_worker=False)
        if command.kind is CommandKind.RESTART and command.spec is not None and self._assigns_gpus:
            command = Command(CommandKind.RESTART, dataclasses.replace(command.spec, gpu_ids=worker.gpu_ids))
        try:
            self._deliver(worker, command)
        except WorkerLost as lost:
            worker.lost = lost.how  # wait() reports it
        self._mark_busy(worker)

    def wait(self) -> tuple[str, WorkerMessage]:
        while True:  # poll(None) blocks until a message comes
            got = self.poll(None)
            if got is not None:
                return got

    def poll(self, timeout: float | None) -> tuple[str, WorkerMessage] | None:
        """:meth:`wait`, giving up after ``timeout`` seconds (None: never) with None."""
        busy = sorted((w for w in self._workers.values() if w.busy_since is not None),
                      key=lambda w: w.busy_since or 0)
        if not busy:
            raise ExecutorError(f"{type(self).__name__}.wait() was called while no trial is running: every "
                                "trial's last message was already returned; start() a trial or send() a command first")
        for worker in busy:  # a worker that was gone when a command was sent to it
            if worker.lost is not None:
                return worker.trial_id, self._died(worker, worker.lost)
        ready = self._collect(busy, timeout)
        if not ready:
            return None
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
        if self._pool is not None:
            self._pool.held.clear()

    # -- transport ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def _launch(self, spec: StartSpec) -> Worker:
        """Start a worker that runs ``spec`` to its first message; return its record."""

    @abc.abstractmethod
    def _deliver(self, worker: Worker, command: Command) -> None:
        """Send CONTINUE, RESTART or SAVE to a parked worker; raise :class:`WorkerLost` if it is gone."""

    @abc.abstractmethod
    def _collect(self, busy: list[Worker], timeout: float | None) -> list[Worker]:
        """Block until some of ``busy`` (in dispatch order) have a reply or died; return those
        (for a transport that can tell, only those with a reply when there are any), or ``[]`` when
        ``timeout`` seconds passed first (None: wait as long as it takes)."""

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
