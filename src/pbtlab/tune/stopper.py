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


def __getattr__(name: str) -> object:
    """Ray Tune's other names here import, and raise an error saying what to use instead when used."""
    from pbtlab.tune._mirror import mirrored_name

    return mirrored_name("tune.stopper", name, f"pbtlab.tune.stopper.{name}")
