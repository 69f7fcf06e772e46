"""Another tool's run directory (today Ray Tune's), read as a ``ResultGrid``.

    >>> load_foreign_run("/nonexistent") is None
    True
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pbtlab.analysis.results import ResultGrid

__all__ = ["load_foreign_run"]


def load_foreign_run(path: Any) -> ResultGrid | None:
    """Another tool's run (a Ray Tune directory, or its live ``ResultGrid``) as a ``ResultGrid``; None if
    ``path`` is not one."""
    from pbtlab.compat.ray import is_ray_experiment, is_ray_object

    if not (is_ray_object(path) or (isinstance(path, (str, os.PathLike)) and is_ray_experiment(path))):
        return None
    from pbtlab.compat.ray import runs

    return runs.load_ray_results(path)
