"""Schedulers: ``FIFOScheduler`` (the default), ``PopulationBasedTraining``, ``PB2``,
``PopulationBasedTrainingReplay``, and the early-stopping schedulers PBT is compared with:
``AsyncHyperBandScheduler`` (``ASHAScheduler``), ``HyperBandScheduler`` and ``MedianStoppingRule``.
The contract is in ``base``, PBT's strategy objects in ``strategies``."""

from typing import Any

from pbtlab.schedulers.base import (
    Action,
    CheckpointRef,
    Decision,
    DecisionNote,
    EngineSide,
    HyperparamChange,
    Perturbation,
    PopulationView,
    TrialInfo,
    TrialScheduler,
)
from pbtlab.schedulers.asha import ASHAScheduler, AsyncHyperBandScheduler
from pbtlab.schedulers.explore import perturb_config
from pbtlab.schedulers.fifo import FIFOScheduler
from pbtlab.schedulers.hyperband import HyperBandScheduler
from pbtlab.schedulers.median_stopping import MedianStoppingRule
from pbtlab.schedulers.pbt import PopulationBasedTraining
from pbtlab.schedulers.strategies import (
    BinaryTournament,
    Clip,
    ExploitStrategy,
    ExploreStrategy,
    Perturb,
    PerturbBounds,
    Reflect,
    Resample,
    Standings,
    Truncation,
    TTest,
)


def __getattr__(name: str) -> Any:
    """``PB2`` and ``PopulationBasedTrainingReplay`` are imported when first used (keeps `import pbtlab` light)."""
    if name == "PB2":
        from pbtlab.schedulers.pb2 import PB2

        return PB2
    if name == "PopulationBasedTrainingReplay":
        from pbtlab.schedulers.replay import PopulationBasedTrainingReplay

        return PopulationBasedTrainingReplay
    from pbtlab.tune._mirror import mirrored_name  # Ray Tune's other schedulers: an error saying what to use

    return mirrored_name("tune.schedulers", name, f"pbtlab.schedulers.{name}")


__all__ = [
    "PB2",
    "ASHAScheduler",
    "Action",
    "AsyncHyperBandScheduler",
    "BinaryTournament",
    "CheckpointRef",
    "Clip",
    "Decision",
    "DecisionNote",
    "EngineSide",
    "ExploitStrategy",
    "ExploreStrategy",
    "FIFOScheduler",
    "HyperBandScheduler",
    "HyperparamChange",
    "MedianStoppingRule",
    "Perturb",
    "PerturbBounds",
    "Perturbation",
    "PopulationBasedTraining",
    "PopulationBasedTrainingReplay",
    "PopulationView",
    "Reflect",
    "Resample",
    "Standings",
    "TTest",
    "TrialInfo",
    "TrialScheduler",
    "Truncation",
    "perturb_config",
]
