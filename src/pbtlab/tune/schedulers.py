"""``pbtlab.tune.schedulers``: the schedulers, where Ray Tune users look for them (``ray.tune.schedulers``).

    >>> from pbtlab.tune.schedulers import PopulationBasedTraining
    >>> PopulationBasedTraining.__module__
    'pbtlab.schedulers.pbt'
"""

from pbtlab.schedulers import (
    ASHAScheduler,
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
    TrialScheduler,
)

__all__ = ["ASHAScheduler", "AsyncHyperBandScheduler", "FIFOScheduler", "HyperBandScheduler", "MedianStoppingRule",
           "PopulationBasedTraining", "TrialScheduler"]
