"""The tutorial's experiments as functions (used by ``pbtlab toy``, ``pbtlab demo`` and benchmarks).

    >>> results = run_toy_pbt(population=2, seed=0, storage_path=getfixture("tmp_path"), verbose=0)
    >>> [round(float(r.metrics["Q"]), 2) for r in results]
    [1.2, 1.2]
"""

from __future__ import annotations

from typing import Any

from pbtlab import tune
from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from pbtlab.examples.toy import train_func
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.tuner import Tuner

__all__ = ["initial_h0", "run_toy_grid", "run_toy_pbt", "toy_scheduler", "TUTORIAL_H0"]

#: The tutorial's initial h0 values for populations of 2 and 4 (h1 = 1 - h0).
TUTORIAL_H0 = {2: [0.0, 1.0], 4: [0.0, 1.0, 0.01, 0.99]}


def initial_h0(population: int) -> list[float]:
    """The tutorial's h0 grid for 2 or 4 trials; evenly spaced values in [0, 1] otherwise."""
    if population in TUTORIAL_H0:
        return TUTORIAL_H0[population]
    if population == 1:
        return [0.5]
    return [i / (population - 1) for i in range(population)]


def toy_scheduler(perturbation_interval: int = 4, synch: bool = True, **overrides: Any) -> PopulationBasedTraining:
    """The tutorial's PBT scheduler (``overrides`` may set e.g. explore=False for ablations)."""
    settings: dict[str, Any] = dict(
        time_attr="training_iteration", perturbation_interval=perturbation_interval, quantile_fraction=0.5,
        resample_probability=0.5,
        hyperparam_mutations={"lr": tune.qloguniform(5e-3, 1e-1, 5e-4), "h0": tune.uniform(0.0, 1.0),
                              "h1": tune.uniform(0.0, 1.0)},
        synch=synch)
    settings.update(overrides)
    return PopulationBasedTraining(**settings)


def run_toy_pbt(population: int = 2, seed: int | None = 0, iterations: int = 100, perturbation_interval: int = 4,
                synch: bool = True, storage_path: Any = None, name: str | None = None, executor: Any = None,
                verbose: int = 0, lr: Any = None, scheduler: PopulationBasedTraining | None = None,
                checkpoint_config: CheckpointConfig | None = None) -> Any:
    """The tutorial's PBT experiment: 2 trials start at h=[0,1] and h=[1,0] with lr=0.05; 4 trials
    add h=[0.01,0.99] and h=[0.99,0.01] with lr sampled from qloguniform(5e-3, 1e-1, 5e-4).
    ``checkpoint_config``: e.g. ``CheckpointConfig(num_to_keep=4)`` (the tutorial keeps every checkpoint)."""
    if lr is None:
        lr = 0.05 if population == 2 else tune.qloguniform(5e-3, 1e-1, 5e-4)
    tuner = Tuner(
        train_func,
        param_space={
            "lr": lr,
            "h0": tune.grid_search(initial_h0(population)),
            "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
            "num_training_iterations": iterations,
            "checkpoint_interval": perturbation_interval,
        },
        tune_config=TuneConfig(num_samples=1, metric="Q", mode="max", seed=seed,
                               scheduler=scheduler or toy_scheduler(perturbation_interval, synch)),
        run_config=RunConfig(name=name, storage_path=storage_path, stop={"training_iteration": iterations},
                             failure_config=FailureConfig(max_failures=3), verbose=verbose, executor=executor,
                             checkpoint_config=checkpoint_config),
    )
    return tuner.fit()


def run_toy_grid(population: int = 2, seed: int | None = 0, iterations: int = 100, storage_path: Any = None,
                 name: str | None = None, verbose: int = 0) -> Any:
    """The tutorial's grid-search baseline: the same trials with fixed hyperparameters (no scheduler)."""
    tuner = Tuner(
        train_func,
        param_space={
            "lr": tune.qloguniform(1e-2, 1e-1, 5e-3),
            "h0": tune.grid_search(initial_h0(population)),
            "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
        },
        tune_config=TuneConfig(num_samples=1, metric="Q", mode="max", seed=seed),
        run_config=RunConfig(name=name, storage_path=storage_path, stop={"training_iteration": iterations},
                             failure_config=FailureConfig(max_failures=3), verbose=verbose),
    )
    return tuner.fit()
