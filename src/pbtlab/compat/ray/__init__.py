"""Everything Ray-specific: ``pbtlab run`` (``shim``), ``tune.run`` (``legacy``), Ray's arguments pbtlab refuses
(``arguments``) and the reader of Ray Tune's run directories (``runs``). The Ray *executor*, which runs trials on a
Ray cluster, is in ``pbtlab.executors.ray``: it is an engine, not compatibility.

This module stays light (no Ray, no pandas): it only recognises Ray's objects and directories.

    >>> is_ray_object(object()), is_ray_experiment("/nonexistent")
    (False, False)
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["STATE_GLOB", "fork_warning", "is_ray_experiment", "is_ray_object"]

#: The file that marks a Ray Tune experiment directory.
STATE_GLOB = "experiment_state-*.json"


def is_ray_experiment(path: str | os.PathLike[str]) -> bool:
    """True for a directory Ray Tune wrote (it has ``experiment_state-*.json`` and no pbtlab ``experiment.json``)."""
    import glob  # here: a run only imports this module to check its arguments

    folder = os.fspath(path)
    return (os.path.isdir(folder) and not os.path.exists(os.path.join(folder, "experiment.json"))
            and bool(glob.glob(os.path.join(glob.escape(folder), STATE_GLOB))))


def is_ray_object(value: Any) -> bool:
    """True for Ray's ``ResultGrid`` / ``ExperimentAnalysis`` (checked by class module; never imports ray)."""
    return any(cls.__module__.startswith("ray.") for cls in type(value).__mro__)


def fork_warning() -> str | None:
    """Why forking trial workers now is unsafe, if Ray runs in this process (``ray.init()`` was called and not
    ``ray.shutdown()``); None otherwise. A forked child inherits the locks Ray's threads hold at that moment,
    and one that then needs such a lock hangs. Reads ``sys.modules``; never imports Ray. ``pbtlab run``'s
    stand-in ``ray`` module (pbtlab's own class) starts no threads and gets None
    (``tests/test_executors.py::test_fork_after_ray_init_warns_and_the_run_still_completes``)."""
    ray = sys.modules.get("ray")
    if ray is None or type(ray).__module__.startswith("pbtlab."):
        return None
    is_initialized = getattr(ray, "is_initialized", None)
    try:
        running = callable(is_initialized) and bool(is_initialized())
    except Exception:  # noqa: BLE001 - a half-imported or mocked module: say nothing
        running = False
    if not running:
        return None
    return ("Ray is running in this process (ray.init()), and a forked trial inherits locks that Ray's threads may "
            "hold, so it can hang. Call ray.shutdown() before Tuner.fit(), or use "
            "ProcessExecutor(start_method='forkserver') (the trainable must then be importable) or executor='ray'")
