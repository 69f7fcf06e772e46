"""pbtlab: Population Based Training you can see, reproduce and trust.

    >>> from pbtlab import tune, Tuner, TuneConfig
    >>> from pbtlab.schedulers import PopulationBasedTraining

The API follows Ray Tune's (``Tuner``, ``TuneConfig``, ``tune.report``...), so Ray Tune code runs
with its import lines changed. ``import pbtlab`` imports numpy only.
"""

import gc as _gc

_collecting = _gc.isenabled()
_gc.disable()  # first, before the import's allocations would start a collection (pbtlab.process_gc.paused)

from typing import TYPE_CHECKING, Any  # noqa: E402

try:
    from pbtlab import process_gc
except BaseException:  # a broken install: collection back as it was, then the error
    if _collecting:
        _gc.enable()
    raise

# importing makes next to no garbage, and what it makes lives as long as the process (pbtlab.process_gc)
with process_gc.paused(promote=True, enabled=_collecting):
    from pbtlab import tune
    from pbtlab.analysis import Result, ResultGrid
    from pbtlab.checkpoint import Checkpoint
    from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
    from pbtlab.errors import ConfigError, ExperimentError, PbtlabError, ReportError, TrialError
    from pbtlab.tuner import Tuner

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pbtlab.analysis import load_results

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


def __getattr__(name: str) -> Any:
    """``load_results`` is imported when first used (``pbtlab.analysis.loading``)."""
    if name == "load_results":
        from pbtlab.analysis import load_results

        globals()["load_results"] = load_results  # asked once
        return load_results
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
