"""``pbtlab.tune.stopper``: Ray Tune's stoppers (implemented in :mod:`pbtlab.stopper`).

    >>> from pbtlab.tune.stopper import MaximumIterationStopper
    >>> MaximumIterationStopper(max_iter=10)
    MaximumIterationStopper(max_iter=10)
"""

from pbtlab.stopper import (
    CombinedStopper,
    ExperimentPlateauStopper,
    FunctionStopper,
    MaximumIterationStopper,
    NoopStopper,
    Stopper,
    TimeoutStopper,
    TrialPlateauStopper,
)

__all__ = [
    "CombinedStopper", "ExperimentPlateauStopper", "FunctionStopper", "MaximumIterationStopper", "NoopStopper",
    "Stopper", "TimeoutStopper", "TrialPlateauStopper",
]
