"""Executors run trials: ``inprocess`` (the default, deterministic), ``process`` (local worker processes),
``ray`` (Ray actors on a cluster) and ``simulated`` (trials played from functions on a virtual clock), all
behind the interface in :mod:`pbtlab.executors.base`.

``RunConfig(executor=...)`` takes a name ("inprocess", "process", "ray") or an :class:`Executor` object,
such as a :class:`~pbtlab.executors.simulated.SimulatedExecutor`:

    >>> make_executor(None).name, make_executor("process").name
    ('inprocess', 'process')
"""

from __future__ import annotations

from pbtlab.executors.base import Executor, make_executor
from pbtlab.executors.simulated import SimulatedExecutor

__all__ = ["Executor", "SimulatedExecutor", "make_executor"]
