"""Schedulers: ``FIFOScheduler`` (the default) and ``PopulationBasedTraining``."""

from pbtlab.schedulers.base import (
    Action,
    CheckpointRef,
    Decision,
    FIFOScheduler,
    HyperparamChange,
    Note,
    Perturbation,
    TrialScheduler,
)
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
    "TrialScheduler",
]
