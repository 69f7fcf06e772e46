"""A trial's function in a greenlet: :class:`ThreadWorker`'s contract, with a switch of stacks in place of
a handoff between threads.

``InProcessExecutor(greenlets=True)`` uses it. Every trial runs on the driver's own thread; a report
switches from the trial's greenlet to the driver's and back (under a microsecond, where a round trip between
threads, the OS waking each, costs 7-20 µs on a 2-CPU VM: see :mod:`pbtlab.executors.threads`). Needs the ``greenlet`` package (``pbtlab[fast]``).

What trials then share that threads keep apart: state that C libraries keep per thread, such as
PyTorch's autocast, inference mode and current CUDA device, and ``threading.local`` objects. PyTorch's grad
mode is carried across each switch (a trial that reports inside ``torch.no_grad()`` gets it back, and the
others do not see it), as threads would keep it. pbtlab's own per-trial state (``tune.report``,
``tune.get_context``, ``log_to_file``) lives in context variables, which each greenlet has its own of.

    >>> from pbtlab import tune
    >>> from pbtlab.session import CONTINUE, STOP, StartSpec
    >>> def trainable(config):
    ...     for step in range(2):
    ...         tune.report({"step": step})
    >>> worker = GreenletWorker(trainable, StartSpec("t0", {}, str(getfixture("tmp_path")), None, 0))
    >>> worker.step(None).metrics, worker.step(CONTINUE).metrics
    ({'step': 0}, {'step': 1})
    >>> worker.step(STOP) is EXITED
    True
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from pbtlab._optional import require
from pbtlab.executors.threads import EXITED, Exited
from pbtlab.session import Command, CommandKind, ErrorMessage, StartSpec, WorkerMessage, run_trial

__all__ = ["GreenletWorker"]


class GreenletWorker:
    """A trial's greenlet; :meth:`step` switches to it with a command and returns its next message.

    It is the trial's :class:`~pbtlab.session.Channel`: ``tune.report`` calls :meth:`exchange`, which switches
    back to the driver. Like :class:`~pbtlab.executors.threads.ThreadWorker`, the trial starts parked: the
    first ``step(None)`` runs it to its first message, and a first ``step(STOP)`` ends it unrun.
    """

    def __init__(self, trainable: Callable[..., Any], spec: StartSpec, chdir: bool = False) -> None:
        greenlet = require("greenlet", "fast", "InProcessExecutor(greenlets=True)")
        self._greenlet_module = greenlet
        self._trainable = trainable
        self._spec = spec
        self._chdir = chdir
        self._greenlet = greenlet.greenlet(self._main)
        self._driver: Any = None

    def _main(self, command: Command | None) -> Exited:
        if command is not None and command.kind is CommandKind.STOP:
            return EXITED  # stopped before its first turn: the function never runs
        _set_grad_mode(True)  # as a new thread starts
        run_trial(self._trainable, self._spec, self, chdir=self._chdir)
        return EXITED  # returning switches to the driver (the greenlet's parent) with this value

    def exchange(self, message: WorkerMessage) -> Command:
        """Worker side: hand ``message`` to the driver and wait (parked) for its answer."""
        grad_mode = _grad_mode()
        command = self._driver.switch(message)
        _set_grad_mode(grad_mode)
        if not isinstance(command, Command):  # internal invariant: the driver always answers with a command
            raise RuntimeError(f"a trial's greenlet was resumed with {command!r}, not a command")
        return command

    def step(self, command: Command | None) -> WorkerMessage | Exited:
        """Driver side: switch to the trial with ``command`` (None at start); return its next message, or
        :data:`EXITED` once its function has returned.

        Ctrl-C lands in whatever code the thread runs, here often the trial's: the trial reports it as its
        error, and the driver raises ``KeyboardInterrupt`` again, as it would have received it itself."""
        if self._greenlet.dead:
            return EXITED
        self._driver = self._greenlet_module.getcurrent()
        self._greenlet.parent = self._driver
        grad_mode = _grad_mode()
        message = self._greenlet.switch(command)
        _set_grad_mode(grad_mode)
        if isinstance(message, ErrorMessage) and message.error_type == "KeyboardInterrupt":
            raise KeyboardInterrupt
        return message  # type: ignore[no-any-return]


def _grad_mode() -> bool | None:
    """PyTorch's grad mode on this thread now (None when torch is not imported): per thread in PyTorch, so
    per trial when trials are threads."""
    torch = sys.modules.get("torch")
    is_enabled = getattr(torch, "is_grad_enabled", None)
    return bool(is_enabled()) if is_enabled is not None else None


def _set_grad_mode(enabled: bool | None) -> None:
    torch = sys.modules.get("torch")
    if enabled is not None and torch is not None and hasattr(torch, "set_grad_enabled"):
        torch.set_grad_enabled(enabled)
