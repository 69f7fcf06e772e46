"""The executor interface: how trial functions are run and talked to.

An executor owns workers; each worker runs one trial's function through
:func:`pbtlab.session.run_trial`. A new executor subclasses :class:`Executor`: it must implement the six
required methods, and may override the optional capabilities, whose defaults describe an executor that
runs whatever the controller starts and cannot be interrupted. The controller drives it like this.

Required:

- ``setup(trainable, max_concurrent)``: once per run, before the first ``start``.
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
- ``shutdown()``: stop every worker (after the run, whatever ended it).
- ``default_concurrency(num_trials)``: how many trials may run at once when
  ``TuneConfig(max_concurrent_trials)`` is not set (asked once, when the controller is built).

One command outstanding: ``start``, ``CONTINUE``, ``RESTART`` and ``SAVE`` each make the trial send
exactly one message, and until ``wait()``/``poll()`` has returned it the controller sends that trial
nothing else, except ``STOP``, which may be sent at any time (a message not yet returned is then
discarded). So the controller always knows which trials are running. A worker that dies without a
message is reported as an ``ErrorMessage`` with ``error_type="WorkerDied"``.

Optional capabilities (each has a default here; override the ones the executor can do better):

- ``poll(timeout)``: ``wait()``, but return None when no message came within ``timeout`` seconds
  (of ``clock()``). The controller calls it instead of ``wait()`` when the run has a
  ``TuneConfig(time_budget_s)`` or a stopper with ``stop_all()``, so it can end the run while trials are
  still inside an iteration (their workers are stopped, then killed after the executor's grace period).
  Default: ``wait()`` whatever the timeout (trials that cannot be interrupted, as in-process ones; the
  budget and ``stop_all()`` are then checked after each message). The process, Ray and simulated
  executors override it.
- ``clock()``: the run's clock in seconds (monotonic), which ``TuneConfig(time_budget_s)``, ``poll``'s
  timeout and ``state.json``'s ``elapsed_s`` measure. Default: ``time.monotonic()``; the simulated
  executor returns its virtual time.
- ``capacity_error(resources) -> str | None``: asked once per trial that declared resources, after
  ``setup`` and before the first ``start``, with what it asked for (``tune.with_resources``, a
  :class:`~pbtlab.resources.Resources`); a text such as ``"4 CPUs, but the executor has 2"`` when it could
  never run, which the controller raises as a ``ConfigError``. Default: None (anything can run).
- ``fits(trial_id, resources) -> bool``: could the trial start (or resume) now, next to the trials that
  are running? ``resources`` is None for a trial that asked for nothing (the executor's default: one
  CPU). The controller asks before every ``start``, and before the ``CONTINUE``/``RESTART`` that
  resumes a paused trial; a trial that does not fit waits (in the scheduler's order) until running
  trials give resources back. A trial holds its resources from that command until it is released,
  stopped (``STOP``) or its worker died. Default: True (resources never limit the executor).
- ``release(trial_id)``: the trial stopped running for now (paused, or failed and waiting for its
  retry); its resources are free for others. Default: nothing to free.

The process executor implements the resource methods against the declared CPUs and GPU ids, the Ray
executor against the cluster's totals; the in-process executor runs one trial at a time, in the order
they were started or answered, which makes a seeded run deterministic, so resources never limit it.
The simulated executor (``simulated.py``) plays trials from functions on a virtual clock and checks
this protocol.

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

import abc
import importlib
import time
from collections.abc import Callable
from typing import Any

from pbtlab.errors import ConfigError, ExecutorError, describe
from pbtlab.resources import Resources
from pbtlab.session import Command, StartSpec, WorkerMessage

__all__ = ["Executor", "ExecutorError", "make_executor"]


class Executor(abc.ABC):
    """What the controller needs from an executor (the protocol, and when each method is called, is in
    this module's docstring). Subclasses set ``name`` and implement the abstract methods."""

    #: Short name recorded in ``experiment.json`` and the ``experiment_start`` event ("process").
    name: str

    # -- required ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None:
        """Prepare to run ``trainable`` (once, before the first ``start``)."""

    @abc.abstractmethod
    def start(self, spec: StartSpec) -> None:
        """Start a worker for ``spec.trial_id``; it runs to the function's first message."""

    @abc.abstractmethod
    def send(self, trial_id: str, command: Command) -> None:
        """Answer the trial's last message: CONTINUE, RESTART, STOP or SAVE (see the module docstring)."""

    @abc.abstractmethod
    def wait(self) -> tuple[str, WorkerMessage]:
        """The next ``(trial_id, message)``; ``ExecutorError`` when no trial is running."""

    @abc.abstractmethod
    def default_concurrency(self, num_trials: int) -> int:
        """How many trials run at once when ``TuneConfig(max_concurrent_trials)`` is not set."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop every worker."""

    # -- optional capabilities, with the defaults of an executor that cannot do them -----------------
    def poll(self, timeout: float | None) -> tuple[str, WorkerMessage] | None:
        """The next message, or None if none came within ``timeout`` seconds of ``clock()``.

        Default: this executor cannot be interrupted, so it waits for the next message (``wait()``)."""
        return self.wait()

    def clock(self) -> float:
        """The run's clock, in seconds (monotonic). Default: ``time.monotonic()``."""
        return time.monotonic()

    def capacity_error(self, resources: Resources) -> str | None:
        """Why a trial asking for ``resources`` could never run here; None (the default) if it can."""
        return None

    def fits(self, trial_id: str, resources: Resources | None) -> bool:
        """Is there room for the trial now, next to the running trials? Default: always."""
        return True

    def release(self, trial_id: str) -> None:
        """The trial stopped running for now: free what it holds. Default: nothing to free."""


#: ``RunConfig(executor=NAME)``: the executor class each name stands for, imported only when chosen.
EXECUTORS_BY_NAME = {
    "inprocess": "pbtlab.executors.inprocess:InProcessExecutor",
    "greenlets": "pbtlab.executors.inprocess:greenlet_executor",
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
        raise ConfigError(f"RunConfig(executor=...) must be {names} or an Executor object, got {describe(executor)} "
                          "(an executor subclasses pbtlab.executors.base.Executor)")
    module_name, class_name = target.split(":")
    made: Executor = getattr(importlib.import_module(module_name), class_name)()
    return made
