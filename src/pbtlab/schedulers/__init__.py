"""Schedulers: ``FIFOScheduler`` (the default), ``PopulationBasedTraining``, ``PB2`` and
``PopulationBasedTrainingReplay``; the contract is in ``base``."""

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
from pbtlab.schedulers.pb2 import PB2
from pbtlab.schedulers.pbt import PopulationBasedTraining
from pbtlab.schedulers.replay import PopulationBasedTrainingReplay

__all__ = [
    "PB2",
    "Action",
    "CheckpointRef",
    "Decision",
    "FIFOScheduler",
    "HyperparamChange",
    "Note",
    "Perturbation",
    "PopulationBasedTraining",
    "PopulationBasedTrainingReplay",
    "PopulationView",
    "TrialScheduler",
    "TrialView",
    "perturb_config",
]
