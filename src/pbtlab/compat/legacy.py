"""Older entry points of another tool that ``pbtlab.tune`` offers: ``tune.run`` and ``ExperimentAnalysis``,
imported when first used.

    >>> import pbtlab.compat.legacy as legacy
    >>> legacy.run.__name__
    'run'
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExperimentAnalysis", "run"]


def __getattr__(name: str) -> Any:
    """``tune.run`` and ``ExperimentAnalysis`` for older scripts, imported when first used."""
    if name in ("run", "ExperimentAnalysis"):
        from pbtlab.compat.ray import legacy

        return getattr(legacy, name)
    raise AttributeError(f"module 'pbtlab.compat.legacy' has no attribute {name!r}")
