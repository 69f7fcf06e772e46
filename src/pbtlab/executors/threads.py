"""A trial's function in a thread, and the two locks that pass control between it and its driver.

Used by the in-process executor (one :class:`ThreadWorker` per trial, in the driver's process) and by
the Ray executor (one per actor, in the actor's process). The driver calls :meth:`ThreadWorker.step`
with a command and gets the trial's next message back; meanwhile the driver is blocked, so exactly
one of the two threads runs at any moment.

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
import threading
from collections.abc import Callable
from typing import Any

from pbtlab.session import Command, CommandKind, StartSpec, WorkerMessage, run_trial

__all__ = ["Exited", "EXITED", "ThreadWorker"]


class Exited(enum.Enum):
    """What :meth:`ThreadWorker.step` returns once the trial's thread has returned (after ``STOP``)."""

    EXITED = "exited"


EXITED = Exited.EXITED


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
        self._thread = threading.Thread(target=self._main, args=(trainable, spec, chdir),
                                        name=f"pbtlab-trial-{spec.trial_id}", daemon=True)
        self._thread.start()

    # worker side ---------------------------------------------------------------------------
    def _main(self, trainable: Callable[..., Any], spec: StartSpec, chdir: bool) -> None:
        self._to_worker.acquire()
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
        self._to_driver.release()
        self._to_worker.acquire()
        assert self._command is not None  # internal invariant: the driver always answers with a command
        return self._command

    # driver side ---------------------------------------------------------------------------
    def step(self, command: Command | None) -> WorkerMessage | Exited:
        """Driver side: hand control to the trial with ``command`` (None at start); return its next message,
        or :data:`EXITED` once its thread has returned."""
        self._command = command
        self._to_worker.release()
        self._to_driver.acquire()
        assert self._message is not None  # internal invariant: set before the worker releases the driver
        return self._message
