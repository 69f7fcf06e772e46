"""The executor interface: how trial functions are run and talked to.

An executor owns workers; each worker runs one trial's function through
:func:`pbtlab.session.run_trial`. The controller drives it with these calls:

- ``setup(trainable, max_concurrent)``: once, before the first ``start``.
- ``start(spec)``: start a worker for a trial; it runs until the function's first message.
- ``send(trial_id, command)``: answer the trial's last message (its one unanswered message):

  - ``CONTINUE``: run to the next message (a report, or the end of the function).
  - ``RESTART`` (with ``Command.spec``): unwind the function and call it again with the spec's config
    and checkpoint, in the same worker; if the worker died, a new one is started.
  - ``STOP``: unwind the function and end the worker; no message follows.
  - ``SAVE``: checkpoint the trial now. The trial answers with a
    :class:`~pbtlab.session.SavedMessage` ``(checkpoint_path, checkpoint_index)`` and then waits for
    the next command, exactly as before the ``SAVE``. A plain function has nothing to save
    (``checkpoint_path=None``); a trial whose session has a ``save_hook`` calls it and persists the
    checkpoint it returns like a reported one (``checkpoint_<index:06d>`` in the trial directory,
    the next index of the trial's sequence). If the hook raises, the answer is an
    :class:`~pbtlab.session.ErrorMessage` instead (at a report: the trial failed there). ``SAVE``
    may be sent after any message, including ``FinishedMessage`` and ``ErrorMessage``.

- ``wait()``: block until some trial has a message; return ``(trial_id, message)``. Of the trials
  whose messages are in, the one that was started or answered first. Raises
  :class:`~pbtlab.errors.ExecutorError` when no trial is running, i.e. every trial's last message
  was already returned and not answered since (waiting would block forever).
- ``poll(timeout)`` (optional): ``wait()``, but return None when no message came within ``timeout``
  seconds. With it the controller ends a run at ``TuneConfig(time_budget_s)`` or a stopper's
  ``stop_all()`` while trials are still inside an iteration (their workers are stopped, then killed after
  the executor's grace period); without it (the in-process executor, whose trials cannot be interrupted)
  those are checked after each message. The process and Ray executors have it.
- ``shutdown()``: stop every worker.
- ``default_concurrency(num_trials)``: how many trials may run at once when
  ``TuneConfig(max_concurrent_trials)`` is not set.

Resources (optional; an executor without these methods runs whatever the controller starts):

- ``capacity_error(resources) -> str | None``: asked once per trial before the run, with what the trial
  asked for (``tune.with_resources``, a :class:`~pbtlab.resources.Resources`); a text such as
  ``"4 CPUs, but the executor has 2"`` when it could never run, which the controller raises as a
  ``ConfigError``.
- ``fits(trial_id, resources) -> bool``: could the trial start (or resume) now, next to the trials that
  are running? ``resources`` is None for a trial that asked for nothing (the executor's default: one
  CPU). The controller asks before every ``start``, and before the ``CONTINUE``/``RESTART`` that
  resumes a paused trial; a trial that does not fit waits (in the scheduler's order) until running
  trials give resources back. A trial holds its resources from that command until it is released,
  stopped (``STOP``) or its worker died.
- ``release(trial_id)``: the trial stopped running for now (paused, or failed and waiting for its
  retry); its resources are free for others.

The process executor implements them against the declared CPUs and GPU ids, the Ray executor against
the cluster's totals; the in-process executor runs one trial at a time, so resources never limit it.

A trial sends exactly one message per ``start``/``CONTINUE``/``RESTART``/``SAVE`` and then waits, so
the controller always knows which trials are running. A worker that dies without a message is
reported as an ``ErrorMessage`` with ``error_type="WorkerDied"``. The in-process executor runs one
trial at a time, in the order they were started or answered, which makes a seeded run deterministic.

    >>> from pbtlab import tune
    >>> from pbtlab.session import CONTINUE, SAVE, STOP, StartSpec
    >>> def trainable(config):
    ...     while True:
    ...         tune.report({"x": config["x"]})
    >>> executor = make_executor("inprocess")
    >>> executor.setup(trainable, max_concurrent=1)
    >>> executor.start(StartSpec("t0", {"x": 1}, str(getfixture("tmp_path")), None, 0))
    >>> executor.wait()
    ('t0', ReportMessage(metrics={'x': 1}, checkpoint_path=None, checkpoint_index=None, time_this_iter_s=...))
    >>> executor.send("t0", SAVE)
    >>> executor.wait()
    ('t0', SavedMessage(checkpoint_path=None, checkpoint_index=None))
    >>> executor.send("t0", STOP)
    >>> executor.shutdown()
"""

from __future__ import annotations

import importlib

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pbtlab.errors import ConfigError, ExecutorError, describe
from pbtlab.session import Command, StartSpec, WorkerMessage

__all__ = ["Executor", "ExecutorError", "make_executor"]


@runtime_checkable
class Executor(Protocol):
    """What the controller needs from an executor (the protocol is in this module's docstring)."""

    name: str

    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None:
        """Prepare to run ``trainable`` (once, before the first ``start``)."""

    def start(self, spec: StartSpec) -> None:
        """Start a worker for ``spec.trial_id``; it runs to the function's first message."""

    def send(self, trial_id: str, command: Command) -> None:
        """Answer the trial's last message: CONTINUE, RESTART, STOP or SAVE (see the module docstring)."""

    def wait(self) -> tuple[str, WorkerMessage]:
        """The next ``(trial_id, message)``; ``ExecutorError`` when no trial is running."""

    def default_concurrency(self, num_trials: int) -> int:
        """How many trials run at once when ``TuneConfig(max_concurrent_trials)`` is not set."""

    def shutdown(self) -> None:
        """Stop every worker."""


#: ``RunConfig(executor=NAME)``: the executor class each name stands for, imported only when chosen.
EXECUTORS_BY_NAME = {
    "inprocess": "pbtlab.executors.inprocess:InProcessExecutor",
    "process": "pbtlab.executors.process:ProcessExecutor",
    "ray": "pbtlab.executors.ray:RayExecutor",
}


def make_executor(executor: Any) -> Executor:
    """Turn ``RunConfig(executor=...)`` (a name or an object) into an executor."""
    if isinstance(executor, Executor):
        return executor
    target = EXECUTORS_BY_NAME.get("inprocess" if executor is None else executor) \
        if executor is None or isinstance(executor, str) else None
    if target is None:
        names = ", ".join(repr(name) for name in EXECUTORS_BY_NAME)
        raise ConfigError(f"RunConfig(executor=...) must be {names} or an Executor object, got {describe(executor)}")
    module_name, class_name = target.split(":")
    made: Executor = getattr(importlib.import_module(module_name), class_name)()
    return made
