"""The Ray-Tune-style namespace: ``from pbtlab import tune``.

    >>> from pbtlab import tune
    >>> tune.uniform(0.0, 1.0)
    tune.uniform(0.0, 1.0)

Holds the trainable's API (``report``, ``get_checkpoint``, ``Checkpoint``), the search-space
functions, the same ``Tuner``/config objects as the top-level package, and Ray's submodules
``tune.stopper``, ``tune.search`` and ``tune.schedulers`` (imported when first used), ``tune.run`` for older
scripts, and ``tune.with_parameters`` / ``tune.with_resources``.
"""

import importlib

from pbtlab.analysis import Result, ResultGrid
from pbtlab.callbacks import Callback
from pbtlab.checkpoint import Checkpoint
from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from pbtlab.errors import ExperimentError as TuneError
from pbtlab.resources import with_parameters, with_resources
from pbtlab.session import get_checkpoint, get_context, report
from pbtlab.space import (
    choice,
    grid_search,
    lograndint,
    loguniform,
    qloguniform,
    qrandint,
    qrandn,
    quniform,
    randint,
    randn,
    sample_from,
    uniform,
)
from pbtlab.stopper import Stopper
from pbtlab.trainable import Trainable
from pbtlab.tuner import Tuner

__all__ = [
    "Callback", "Checkpoint", "CheckpointConfig", "ExperimentAnalysis", "FailureConfig", "Result", "ResultGrid",
    "RunConfig", "Stopper", "Trainable", "TuneConfig", "TuneError", "Tuner", "choice", "get_checkpoint",
    "get_context", "grid_search", "loguniform", "lograndint", "qloguniform", "qrandint", "qrandn", "quniform",
    "randint", "randn", "report", "run", "sample_from", "schedulers", "search", "stopper", "uniform",
    "with_parameters", "with_resources",
]


#: Ray's submodules, imported when first used (a script that names none of them does not pay for them)
_SUBMODULES = ("schedulers", "search", "stopper")


def __getattr__(name: str) -> object:
    """``tune.schedulers``, ``tune.search`` and ``tune.stopper``, and ``tune.run`` and ``ExperimentAnalysis``
    (older scripts) are imported when first used. Ray Tune's other names import too, and raise an error saying
    what to use instead when used (``tune.CLIReporter(...)``)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"pbtlab.tune.{name}")  # the import also sets it here: asked once
    if name in ("run", "ExperimentAnalysis"):
        from pbtlab.compat import legacy

        return getattr(legacy, name)
    from pbtlab.tune._mirror import mirrored_name

    return mirrored_name("tune", name, f"pbtlab.tune.{name}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
