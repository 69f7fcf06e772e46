"""The executor interface: how trial functions are run and talked to.

An executor owns workers; each worker runs one trial's function through
:func:`pbtlab.session.run_trial`. The controller drives it with four calls:

- ``start(spec)``: start a worker for a trial; it runs until the function's first message.
- ``send(trial_id, command)``: answer the trial's last message. ``CONTINUE`` and ``RESTART``
  let it run to its next message; ``STOP`` ends the worker.
- ``wait()``: block until some trial has a message; return ``(trial_id, message)``.
- ``shutdown()``: stop every worker.

A trial sends exactly one message per ``start``/``CONTINUE``/``RESTART`` and then waits, so the
controller always knows which trials are running. The in-process executor runs one trial at a time,
in the order they were started or answered, which makes a seeded run deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pbtlab.session import Command, StartSpec, WorkerMessage


@runtime_checkable
class Executor(Protocol):
    name: str

    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None: ...

    def start(self, spec: StartSpec) -> None: ...

    def send(self, trial_id: str, command: Command) -> None: ...

    def wait(self) -> tuple[str, WorkerMessage]: ...

    def default_concurrency(self, num_trials: int) -> int: ...

    def shutdown(self) -> None: ...


def make_executor(executor: Any) -> Executor:
    """Turn ``RunConfig(executor=...)`` (a name or an object) into an executor."""
    from pbtlab.errors import ConfigError, describe

    if executor is None or executor == "inprocess":
        from pbtlab.executors.inprocess import InProcessExecutor

        return InProcessExecutor()
    if executor == "process":
        from pbtlab.executors.process import ProcessExecutor

        return ProcessExecutor()
    if executor == "ray":
        from pbtlab.executors.ray import RayExecutor

        return RayExecutor()
    if isinstance(executor, Executor):
        return executor
    raise ConfigError(
        f"RunConfig(executor=...) must be 'inprocess', 'process', 'ray' or an Executor object, "
        f"got {describe(executor)}")
