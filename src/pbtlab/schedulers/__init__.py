"""Schedulers: ``FIFOScheduler`` (the default), ``PopulationBasedTraining``, ``PB2``,
``PopulationBasedTrainingReplay``, and the early-stopping schedulers PBT is compared with:
``AsyncHyperBandScheduler`` (``ASHAScheduler``), ``HyperBandScheduler`` and ``MedianStoppingRule``.
The contract is in ``base``, PBT's strategy objects in ``strategies``."""

import importlib
from typing import TYPE_CHECKING, Any

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
from pbtlab.schedulers.explore import perturb_config
from pbtlab.schedulers.fifo import FIFOScheduler
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


if TYPE_CHECKING:
    from pbtlab.schedulers.asha import ASHAScheduler, AsyncHyperBandScheduler
    from pbtlab.schedulers.hyperband import HyperBandScheduler
    from pbtlab.schedulers.median_stopping import MedianStoppingRule
    from pbtlab.schedulers.pb2 import PB2
    from pbtlab.schedulers.replay import PopulationBasedTrainingReplay

#: Schedulers imported when first used (a PBT run needs none of them; ``import pbtlab`` stays light).
LAZY = {"ASHAScheduler": "asha", "AsyncHyperBandScheduler": "asha", "HyperBandScheduler": "hyperband",
        "MedianStoppingRule": "median_stopping", "PB2": "pb2", "PopulationBasedTrainingReplay": "replay"}


def __getattr__(name: str) -> Any:
    """The schedulers in :data:`LAZY`, imported when first used; Ray Tune's other names: an error saying what
    to use instead."""
    if name in LAZY:
        return getattr(importlib.import_module(f"pbtlab.schedulers.{LAZY[name]}"), name)
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
