"""What to use instead of each part of Ray pbtlab does not provide, and the error that says so.

    >>> advice_for("ray.tune.CLIReporter")
    'use RunConfig(verbose=0|1|2) and RunConfig(progress_interval_s=...)'
"""

from __future__ import annotations

from pbtlab.errors import PbtlabError

__all__ = ["RayFeatureError", "advice_for"]


class RayFeatureError(PbtlabError, ImportError):
    """A Ray feature pbtlab does not provide was imported or used under ``pbtlab run``."""


_TASKS = ("pbtlab runs the trials itself, without Ray tasks or actors: call the function directly inside your "
          "trainable")
#: What to use instead, by name prefix, most specific first.
_ADVICE: list[tuple[str, str]] = [
    ("ray.tune.schedulers.", "pbtlab has FIFOScheduler, PopulationBasedTraining, PB2, "
                             "PopulationBasedTrainingReplay, AsyncHyperBandScheduler (ASHAScheduler), "
                             "HyperBandScheduler and MedianStoppingRule: use one of those, or a stopper "
                             "(ray.tune.stopper, pbtlab.tune.stopper) for early stopping"),
    ("ray.tune.search.ConcurrencyLimiter", "use TuneConfig(max_concurrent_trials=...) or "
                                           "BasicVariantGenerator(max_concurrent=...)"),
    ("ray.tune.search.Repeater", "list the config once per repeat in BasicVariantGenerator(points_to_evaluate=...)"),
    ("ray.tune.logger.", "pbtlab writes result.json, progress.csv and TensorBoard files by default; for your own "
                         "output subclass ray.tune.logger.LoggerCallback or tune.Callback"),
    ("ray.tune.integration.pytorch_lightning.", "use TuneReportCheckpointCallback or TuneReportCallback"),
    ("ray.tune.integration.", "call tune.report(...) (and tune.get_checkpoint()) from your framework's own "
                              "callback; pbtlab ships Lightning's (ray.tune.integration.pytorch_lightning)"),
    ("ray.tune.utils.", "of Ray's tune utilities pbtlab has validate_save_restore only"),
    ("ray.tune.ResumeConfig", "use Tuner.restore(path, trainable, resume_unfinished=..., resume_errored=..., "
                              "restart_errored=...)"),
    ("ray.tune.PlacementGroupFactory", "use tune.with_resources(trainable, {'cpu': n, 'gpu': m})"),
    ("ray.tune.Experiment", "pass the trainable and its settings to Tuner (or tune.run)"),
    ("ray.tune.run_experiments", "use Tuner(...).fit() or tune.run(...)"),
    ("ray.tune.create_scheduler", "build the scheduler itself (PopulationBasedTraining(...), PB2(...))"),
    ("ray.tune.create_searcher", "use BasicVariantGenerator (random and grid search over param_space)"),
    ("ray.tune.ProgressReporter", "use RunConfig(verbose=0|1|2) and RunConfig(progress_interval_s=...)"),
    ("ray.tune.search.", "pbtlab searches with BasicVariantGenerator only (random and grid search over "
                         "param_space); Optuna, HyperOpt, Ax, BayesOpt and the other searchers are not available"),
    ("ray.tune.CLIReporter", "use RunConfig(verbose=0|1|2) and RunConfig(progress_interval_s=...)"),
    ("ray.tune.JupyterNotebookReporter", "use RunConfig(verbose=0|1|2) and RunConfig(progress_interval_s=...)"),
    ("ray.tune.SyncConfig", "pbtlab writes straight to RunConfig(storage_path=...); no syncing is needed"),
    ("ray.tune.register_trainable", "pass the trainable itself to Tuner (pbtlab does not look trainables up by name)"),
    ("ray.tune.register_env", "RLlib environments are not available: create the environment inside the trainable"),
    ("ray.tune.", "this part of Ray Tune has no pbtlab counterpart (docs/ray_compat.md lists what is supported)"),
    ("ray.train.", "Ray Train (TorchTrainer, ScalingConfig, distributed training) is not available: pass your "
                   "training loop to Tuner as a function trainable"),
    ("ray.air.", "only RunConfig, CheckpointConfig, FailureConfig and Result come from ray.air"),
    ("ray.rllib", "RLlib is not available: write a function trainable that trains your agent and reports with "
                  "tune.report(...)"),
    ("ray.data", "Ray Data is not available: load the data inside the trainable"),
    ("ray.serve", "Ray Serve is not available"),
    ("ray.util", "ray.util is not available"),
    ("ray.remote", _TASKS), ("ray.get", _TASKS), ("ray.put", _TASKS), ("ray.wait", _TASKS), ("ray.kill", _TASKS),
    ("ray.actor", _TASKS), ("ray.get_actor", _TASKS), ("ray.cancel", _TASKS),
    ("ray.", "pbtlab provides ray.tune, the configs from ray.train and ray.air, and ray.init/shutdown/is_initialized "
             "(which do nothing)"),
]


def advice_for(name: str) -> str:
    """What to use instead of Ray's ``name`` (a dotted path)."""
    return next(text for prefix, text in _ADVICE if name.startswith(prefix) or name == prefix.rstrip("."))
