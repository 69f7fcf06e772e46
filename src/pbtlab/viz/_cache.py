"""Results computed once per ``RunData`` and shared by every figure drawn from it (a run's data never changes:
a newer state of the files is a new ``RunData``).

    >>> from pbtlab.analysis.lineage import RunData
    >>> run = RunData("p", {}, (), ())
    >>> per_run(run, "answer", lambda: 42), per_run(run, "answer", lambda: 0)
    (42, 42)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["per_run", "T"]

T = TypeVar("T")


def per_run(run: Any, key: Hashable, build: Callable[[], T]) -> T:
    """``build()`` the first time ``key`` is asked of ``run``, the same object afterwards."""
    store: dict[Hashable, Any] = run.__dict__.setdefault("_viz_cache", {})
    if key not in store:
        store[key] = build()
    return store[key]  # type: ignore[no-any-return]
