"""Schedulers: ``FIFOScheduler`` (the default) and ``PopulationBasedTraining``; the contract is in ``base``."""

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
from pbtlab.schedulers.explore import perturb_config
from pbtlab.schedulers.fifo import FIFOScheduler
from pbtlab.schedulers.pbt import PopulationBasedTraining

__all__ = [
    "Action",
    "CheckpointRef",
    "Decision",
    "FIFOScheduler",
    "HyperparamChange",
    "Note",
    "Perturbation",
    "PopulationBasedTraining",
    "PopulationView",
    "TrialScheduler",
    "TrialView",
    "perturb_config",
]
