"""How trials run: the executor interface (``base.py``) and its implementations.

``RunConfig(executor=...)`` takes a name ("inprocess", "process", "ray") or an :class:`Executor` object,
such as a :class:`~pbtlab.executors.simulated.SimulatedExecutor`:

    >>> make_executor(None).name, make_executor("process").name
    ('inprocess', 'process')
"""

from __future__ import annotations

from typing import Any

from pbtlab.errors import ConfigError, describe
from pbtlab.executors.base import Executor
from pbtlab.executors.simulated import SimulatedExecutor

__all__ = ["Executor", "SimulatedExecutor", "make_executor"]


def make_executor(executor: Any) -> Executor:
    """Turn ``RunConfig(executor=...)`` (a name or an object) into an executor."""
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
        f"RunConfig(executor=...) must be 'inprocess', 'process', 'ray' or an Executor object, got "
        f"{describe(executor)} (an executor subclasses pbtlab.executors.base.Executor)")
