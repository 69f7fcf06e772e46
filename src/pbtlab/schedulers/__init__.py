"""Schedulers: ``FIFOScheduler`` (the default), ``PopulationBasedTraining``, ``PB2``,
``PopulationBasedTrainingReplay``, and the early-stopping schedulers PBT is compared with:
``AsyncHyperBandScheduler`` (``ASHAScheduler``), ``HyperBandScheduler`` and ``MedianStoppingRule``.
The contract is in ``base``."""

from typing import Any

from pbtlab.schedulers.base import (
    Action,
    CheckpointRef,
    Decision,
    HyperparamChange,
    Note,
    Perturbation,
    PopulationView,
    TrialScheduler,
    TrialView,
)
from pbtlab.schedulers.asha import ASHAScheduler, AsyncHyperBandScheduler
from pbtlab.schedulers.explore import perturb_config
from pbtlab.schedulers.fifo import FIFOScheduler
from pbtlab.schedulers.hyperband import HyperBandScheduler
from pbtlab.schedulers.median_stopping import MedianStoppingRule
from pbtlab.schedulers.pbt import PopulationBasedTraining


def __getattr__(name: str) -> Any:
    """``PB2`` and ``PopulationBasedTrainingReplay`` are imported when first used (keeps `import pbtlab` light)."""
    if name == "PB2":
        from pbtlab.schedulers.pb2 import PB2

        return PB2
    if name == "PopulationBasedTrainingReplay":
        from pbtlab.schedulers.replay import PopulationBasedTrainingReplay

        return PopulationBasedTrainingReplay
    raise AttributeError(f"module 'pbtlab.schedulers' has no attribute {name!r}")


__all__ = [
    "PB2",
    "ASHAScheduler",
    "Action",
    "AsyncHyperBandScheduler",
    "CheckpointRef",
    "Decision",
    "FIFOScheduler",
    "HyperBandScheduler",
    "HyperparamChange",
    "MedianStoppingRule",
    "Note",
    "Perturbation",
    "PopulationBasedTraining",
    "PopulationBasedTrainingReplay",
    "PopulationView",
    "TrialScheduler",
    "TrialView",
    "perturb_config",
]
