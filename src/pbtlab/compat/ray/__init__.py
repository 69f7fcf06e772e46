"""Everything Ray-specific: ``pbtlab run`` (``shim``), ``tune.run`` (``legacy``), Ray's arguments pbtlab refuses
(``arguments``) and the reader of Ray Tune's run directories (``runs``). The Ray *executor*, which runs trials on a
Ray cluster, is in ``pbtlab.executors.ray``: it is an engine, not compatibility.

This module stays light (no Ray, no pandas): it only recognises Ray's objects and directories.

    >>> is_ray_object(object()), is_ray_experiment("/nonexistent")
    (False, False)
"""

from __future__ import annotations

import glob
import os
from typing import Any

__all__ = ["STATE_GLOB", "is_ray_experiment", "is_ray_object"]

#: The file that marks a Ray Tune experiment directory.
STATE_GLOB = "experiment_state-*.json"


def is_ray_experiment(path: str | os.PathLike[str]) -> bool:
    """True for a directory Ray Tune wrote (it has ``experiment_state-*.json`` and no pbtlab ``experiment.json``)."""
    folder = os.fspath(path)
    return (os.path.isdir(folder) and not os.path.exists(os.path.join(folder, "experiment.json"))
            and bool(glob.glob(os.path.join(glob.escape(folder), STATE_GLOB))))


def is_ray_object(value: Any) -> bool:
    """True for Ray's ``ResultGrid`` / ``ExperimentAnalysis`` (checked by class module; never imports ray)."""
    return any(cls.__module__.startswith("ray.") for cls in type(value).__mro__)
