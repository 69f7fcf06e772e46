"""``load_results``: any run pbtlab can read, as a ``ResultGrid``.

    >>> load_results(42)
    Traceback (most recent call last):
    ...
    pbtlab.errors.ConfigError: load_results(path) needs an experiment directory path, got 42 (int)

A pbtlab run directory, a Ray Tune experiment directory, or a live Ray ``ResultGrid`` /
``ExperimentAnalysis`` (read without importing or unpickling anything of Ray's).
"""

from __future__ import annotations

import os
from typing import Any

from pbtlab.compat.runs import load_foreign_run
from pbtlab.analysis.results import ResultGrid
from pbtlab.errors import ConfigError, describe

__all__ = ["load_results"]


def load_results(path: str | os.PathLike[str] | Any) -> ResultGrid:
    """Load a run into a ``ResultGrid`` (a Ray Tune directory or ResultGrid works too)."""
    foreign = load_foreign_run(path)
    if foreign is not None:
        return foreign
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"load_results(path) needs an experiment directory path, got {describe(path)}")
    return ResultGrid.from_path(path)
