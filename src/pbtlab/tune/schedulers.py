"""``pbtlab.tune.schedulers``: the schedulers, where Ray Tune users look for them (``ray.tune.schedulers``).

    >>> from pbtlab.tune.schedulers import PopulationBasedTraining
    >>> PopulationBasedTraining.__module__
    'pbtlab.schedulers.pbt'
"""

from typing import TYPE_CHECKING

from pbtlab.schedulers import LAZY, FIFOScheduler, PopulationBasedTraining, TrialScheduler

if TYPE_CHECKING:
    from pbtlab.schedulers import (
        PB2,
        ASHAScheduler,
        AsyncHyperBandScheduler,
        HyperBandScheduler,
        MedianStoppingRule,
        PopulationBasedTrainingReplay,
    )

__all__ = ["PB2", "ASHAScheduler", "AsyncHyperBandScheduler", "FIFOScheduler", "HyperBandScheduler",
           "MedianStoppingRule", "PopulationBasedTraining", "PopulationBasedTrainingReplay", "TrialScheduler"]


def __getattr__(name: str) -> object:
    """The schedulers ``pbtlab.schedulers.LAZY`` names (imported when first used); Ray Tune's other names here
    import, and raise an error saying what to use instead when used."""
    if name in LAZY:
        import pbtlab.schedulers

        return getattr(pbtlab.schedulers, name)
    from pbtlab.tune._mirror import mirrored_name

    return mirrored_name("tune.schedulers", name, f"pbtlab.tune.schedulers.{name}")
