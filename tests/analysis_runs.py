"""Experiments the analysis and plot-data tests share (run by each test module's fixture)."""

from __future__ import annotations

from pbtlab import RunConfig, TuneConfig, Tuner, tune
from pbtlab.examples.runs import toy_scheduler
from pbtlab.examples.toy import train_func


def run_stale_checkpoints(storage: str, seed: int, iterations: int = 24, population: int = 4):
    """Checkpoints every 3 iterations, decisions every 4: donors are cloned from older checkpoints."""
    tuner = Tuner(train_func,
                  param_space={"lr": tune.qloguniform(5e-3, 1e-1, 5e-4),
                               "h0": tune.grid_search([0.0, 1.0, 0.01, 0.99][:population]),
                               "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
                               "checkpoint_interval": 3},
                  tune_config=TuneConfig(metric="Q", mode="max", seed=seed, scheduler=toy_scheduler(4)),
                  run_config=RunConfig(storage_path=storage, stop={"training_iteration": iterations}, verbose=0,
                                       name=f"stale_{seed}_{iterations}_{population}"))
    return tuner.fit()
