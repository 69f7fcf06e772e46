"""The Ray-Tune-style namespace: ``from pbtlab import tune``.

    >>> from pbtlab import tune
    >>> tune.uniform(0.0, 1.0)
    tune.uniform(0.0, 1.0)

Holds the trainable's API (``report``, ``get_checkpoint``, ``Checkpoint``), the search-space
functions, and the same ``Tuner``/config objects as the top-level package.
"""

from pbtlab.callbacks import Callback
from pbtlab.checkpoint import Checkpoint
from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
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
from pbtlab.trainable import Trainable
from pbtlab.tuner import Stopper, Tuner

__all__ = [
    "Callback",
    "Checkpoint",
    "CheckpointConfig",
    "FailureConfig",
    "RunConfig",
    "Stopper",
    "Trainable",
    "TuneConfig",
    "Tuner",
    "choice",
    "get_checkpoint",
    "get_context",
    "grid_search",
    "lograndint",
    "loguniform",
    "qloguniform",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "randn",
    "report",
    "sample_from",
    "uniform",
]
