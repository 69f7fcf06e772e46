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

from pbtlab.analysis.results import ResultGrid
from pbtlab.errors import ConfigError, describe


def _is_ray_run(path: Any) -> bool:
    """Ray's ``ResultGrid``/``ExperimentAnalysis`` (by class module, never importing ray), or a directory with
    Ray's ``experiment_state-*.json`` and no pbtlab ``experiment.json``."""
    if any(cls.__module__.startswith("ray.") for cls in type(path).__mro__):
        return True
    if not isinstance(path, (str, os.PathLike)) or not os.path.isdir(path):
        return False
    folder = os.fspath(path)
    return not os.path.exists(os.path.join(folder, "experiment.json")) and any(
        name.startswith("experiment_state-") and name.endswith(".json") for name in os.listdir(folder))


def load_results(path: str | os.PathLike[str] | Any) -> ResultGrid:
    """Load a run into a ``ResultGrid`` (a Ray Tune directory or ResultGrid works too)."""
    if _is_ray_run(path):
        from pbtlab.analysis import ray_runs  # only for Ray's runs: keeps `import pbtlab` light

        return ray_runs.load_ray_results(path)
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"load_results(path) needs an experiment directory path, got {describe(path)}")
    return ResultGrid.from_path(path)
