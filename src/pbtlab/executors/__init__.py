"""Executors run trials: ``inprocess`` (the default, deterministic), ``process`` (local worker processes),
``ray`` (Ray actors on a cluster) and ``simulated`` (trials played from functions on a virtual clock), all
behind the interface in :mod:`pbtlab.executors.base`.

``RunConfig(executor=...)`` takes a name ("inprocess", "greenlets", "process", "ray") or an :class:`Executor` object,
such as a :class:`~pbtlab.executors.simulated.SimulatedExecutor`:

    >>> make_executor(None).name, make_executor("process").name
    ('inprocess', 'process')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pbtlab.executors.base import Executor, make_executor

if TYPE_CHECKING:
    from pbtlab.executors.simulated import SimulatedExecutor

__all__ = ["Executor", "SimulatedExecutor", "make_executor"]


def __getattr__(name: str) -> Any:
    """``SimulatedExecutor`` is imported when first asked for: a run on a real executor never needs it."""
    if name == "SimulatedExecutor":
        from pbtlab.executors.simulated import SimulatedExecutor

        return SimulatedExecutor
    raise AttributeError(f"module 'pbtlab.executors' has no attribute {name!r}")
