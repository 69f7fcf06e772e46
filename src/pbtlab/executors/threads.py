"""A trial's function in a thread, and the two locks that pass control between it and its driver.

Used by the in-process executor (one :class:`ThreadWorker` per trial, in the driver's process) and by
the Ray executor (one per actor, in the actor's process). The driver calls :meth:`ThreadWorker.step`
with a command and gets the trial's next message back; meanwhile the driver is blocked, so exactly
one of the two threads runs at any moment.

On Linux, the two threads also meet on one CPU (:func:`sleep_beside`): before it wakes the other thread,
a thread moves itself to the CPU the other one sleeps on, and goes to sleep there; once woken, each gives
itself back its own CPU affinity. Waking a thread on another CPU costs 20-50 µs more on a VM (measured:
4.70 s against 4.05 s for 25,600 reports of 256 trials). A thread changes only its own affinity, and only
while it hands over and sleeps, so a trial's function and the threads it starts run with the usual one.
``PBTLAB_SAME_CPU_HANDOFF=0`` turns this off.

    >>> from pbtlab import tune
    >>> from pbtlab.session import CONTINUE, STOP, StartSpec
    >>> def trainable(config):
    ...     for step in range(2):
    ...         tune.report({"step": step})
    >>> worker = ThreadWorker(trainable, StartSpec("t0", {}, str(getfixture("tmp_path")), None, 0))
    >>> worker.step(None).metrics, worker.step(CONTINUE).metrics
    ({'step': 0}, {'step': 1})
    >>> worker.step(STOP) is EXITED
    True
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable
from typing import Any

from pbtlab.session import Command, CommandKind, StartSpec, WorkerMessage, run_trial

__all__ = ["Exited", "EXITED", "restore_affinity", "sleep_beside", "ThreadWorker"]


class Exited(enum.Enum):
    """What :meth:`ThreadWorker.step` returns once the trial's thread has returned (after ``STOP``)."""

    EXITED = "exited"


EXITED = Exited.EXITED

#: Whether handoffs move threads to one CPU (Linux; ``PBTLAB_SAME_CPU_HANDOFF=0`` turns it off).
_same_cpu = hasattr(os, "sched_setaffinity") and os.environ.get("PBTLAB_SAME_CPU_HANDOFF", "1").strip() != "0"
_current_cpu: Callable[[], int] | None = None  # libc's sched_getcpu, once looked up


def _this_cpu() -> int:
    """The CPU this thread runs on (libc's ``sched_getcpu``), or -1 where it cannot be read."""
    global _current_cpu
    if _current_cpu is None:
        try:
            import ctypes

            function = ctypes.CDLL(None).sched_getcpu
            function.restype, function.argtypes = ctypes.c_int, []
            _current_cpu = function
        except (OSError, AttributeError, ImportError):
            _current_cpu = _no_cpu
    return _current_cpu()


def _no_cpu() -> int:
    return -1


def sleep_beside(cpu: int | None) -> tuple[set[int] | None, int | None]:
    """Before this thread wakes another that sleeps on ``cpu`` (None: not known) and goes to sleep itself:
    let this thread run only on that CPU (else on the one it runs on), so that the woken thread starts
    where this one stops. Returns this thread's affinity, for :func:`restore_affinity` once it is woken,
    and the CPU it sleeps on; ``(None, None)`` where nothing changed (not Linux, one CPU allowed, turned off).

        >>> own, cpu = sleep_beside(None)
        >>> restore_affinity(own)
    """
    if not _same_cpu:
        return None, None
    own = os.sched_getaffinity(0)
    if len(own) < 2:
        return None, None
    if cpu is None or cpu not in own:
        cpu = _this_cpu()
        if cpu not in own:
            return None, None
    try:
        os.sched_setaffinity(0, (cpu,))
    except OSError:  # e.g. a cpuset that changed under the process
        return None, None
    return own, cpu


def restore_affinity(own: set[int] | None) -> None:
    """Give this thread back the affinity :func:`sleep_beside` returned (None: nothing to do)."""
    if own is not None:
        try:
            os.sched_setaffinity(0, own)
        except OSError:
            pass


class ThreadWorker:
    """A trial's thread; :meth:`step` hands it control with a command and returns its next message.

    It is the trial's :class:`~pbtlab.session.Channel`: the thread calls :meth:`exchange` from inside
    ``tune.report``. The thread starts parked; the first ``step(None)`` runs it to its first message, and
    a first ``step(STOP)`` ends it without running the function.
    """

    def __init__(self, trainable: Callable[..., Any], spec: StartSpec, chdir: bool = False) -> None:
        self._to_worker = threading.Lock()
        self._to_worker.acquire()
        self._to_driver = threading.Lock()
        self._to_driver.acquire()
        self._command: Command | None = None
        self._message: WorkerMessage | Exited | None = None
        self._driver_cpu: int | None = None  # where each thread sleeps during a handoff (see sleep_beside)
        self._worker_cpu: int | None = None
        # The new thread starts on this thread's CPU and sleeps there until its first turn (it inherits the
        # one-CPU affinity, and gives itself back this thread's own once woken): Thread.start() waits for it
        # to run, and a thread the OS starts or wakes on the other CPU can wait there for milliseconds (right
        # after numpy's import, OpenBLAS's threads spin on it).
        own, self._worker_cpu = sleep_beside(None)
        try:
            self._thread = threading.Thread(target=self._main, args=(trainable, spec, chdir, own),
                                            name=f"pbtlab-trial-{spec.trial_id}", daemon=True)
            self._thread.start()
        finally:
            restore_affinity(own)

    # worker side ---------------------------------------------------------------------------
    def _main(self, trainable: Callable[..., Any], spec: StartSpec, chdir: bool, affinity: set[int] | None) -> None:
        self._to_worker.acquire()
        restore_affinity(affinity)
        try:
            if self._command is not None and self._command.kind is CommandKind.STOP:
                return  # stopped before its first turn: the function never runs
            run_trial(trainable, spec, self, chdir=chdir)
        finally:
            self._message = EXITED
            try:
                self._to_driver.release()
            except RuntimeError:  # the driver was interrupted mid-handoff (Ctrl-C): nobody waits for this
                pass

    def exchange(self, message: WorkerMessage) -> Command:
        """Worker side: hand ``message`` to the driver and block until it answers."""
        self._message = message
        own, self._worker_cpu = sleep_beside(self._driver_cpu)
        self._to_driver.release()
        self._to_worker.acquire()
        restore_affinity(own)
        assert self._command is not None  # internal invariant: the driver always answers with a command
        return self._command

    # driver side ---------------------------------------------------------------------------
    def step(self, command: Command | None) -> WorkerMessage | Exited:
        """Driver side: hand control to the trial with ``command`` (None at start); return its next message,
        or :data:`EXITED` once its thread has returned."""
        self._command = command
        own, self._driver_cpu = sleep_beside(self._worker_cpu)
        try:
            self._to_worker.release()
            self._to_driver.acquire()
        finally:  # also when Ctrl-C interrupts the wait
            restore_affinity(own)
        assert self._message is not None  # internal invariant: set before the worker releases the driver
        return self._message
