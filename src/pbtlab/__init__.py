"""pbtlab: Population Based Training you can see, reproduce and trust.

    >>> from pbtlab import tune, Tuner, TuneConfig
    >>> from pbtlab.schedulers import PopulationBasedTraining

The API follows Ray Tune's (``Tuner``, ``TuneConfig``, ``tune.report``...), so Ray Tune code runs
with its import lines changed. ``import pbtlab`` imports numpy only.
"""

from pbtlab import process_gc

# importing makes next to no garbage, and what it makes lives as long as the process (pbtlab.process_gc)
with process_gc.paused(promote=True):
    from pbtlab import tune
    from pbtlab.analysis import Result, ResultGrid, load_results
    from pbtlab.checkpoint import Checkpoint
    from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
    from pbtlab.errors import ConfigError, ExperimentError, PbtlabError, ReportError, TrialError
    from pbtlab.tuner import Tuner

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "CheckpointConfig",
    "ConfigError",
    "ExperimentError",
    "FailureConfig",
    "PbtlabError",
    "ReportError",
    "Result",
    "ResultGrid",
    "RunConfig",
    "TrialError",
    "TuneConfig",
    "Tuner",
    "__version__",
    "load_results",
    "tune",
]
