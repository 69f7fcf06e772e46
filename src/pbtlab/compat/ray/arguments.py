"""Ray Tune's arguments, trainables and search spaces that pbtlab does not take, each with a clear error.

    >>> from pbtlab import RunConfig
    >>> RunConfig(local_dir="/tmp")
    Traceback (most recent call last):
    ...
    pbtlab.errors.ConfigError: RunConfig(local_dir=...) is deprecated in Ray and not supported: use RunConfig(storage_path=...)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pbtlab.compat.ray import shim_state
from pbtlab.errors import ConfigError, describe

__all__ = ["RAY_ONLY_ARGUMENTS", "foreign_scheduler_advice", "reject_ray_only", "reject_ray_search_space",
           "reject_ray_trainable"]


#: Ray Tune arguments pbtlab does not have, and what to use instead (also the table in docs/ray_compat.md).
RAY_ONLY_ARGUMENTS: dict[str, dict[str, str]] = {
    "TuneConfig": {
        "chdir_to_trial_dir": "is deprecated in Ray and not supported: trials share the working directory "
                              "in-process; use tune.get_context().get_trial_dir() for per-trial files",
    },
    "RunConfig": {
    "storage_filesystem": "(a pyarrow filesystem for cloud storage) is not supported: pbtlab writes to a local "
                          "directory; use RunConfig(storage_path=...) on a local or mounted path",
    "sync_config": "(syncing to cloud storage) is not supported: pbtlab writes straight to storage_path; "
                   "point storage_path at a mounted directory, or copy the run directory afterwards",
    "progress_reporter": "(CLIReporter/JupyterNotebookReporter) is not supported: use RunConfig(verbose=0|1|2) "
                         "and RunConfig(progress_interval_s=...)",
    "local_dir": "is deprecated in Ray and not supported: use RunConfig(storage_path=...)",
    "worker_runtime_env": "(Ray Train's runtime environment) is not supported: pbtlab runs trials in this "
                          "Python environment",
    "logging_config": "(Ray Train's LoggingConfig) is not supported: pbtlab logs through the 'pbtlab' logger; "
                      "use RunConfig(verbose=...)",
    },
}


def reject_ray_only(where: str, config: Any) -> None:
    """A clear error for a Ray-only argument of ``where`` (a config class name) that was set: pbtlab never
    ignores one silently."""
    for name, advice in RAY_ONLY_ARGUMENTS.get(where, {}).items():
        if getattr(config, name) is not None:
            raise ConfigError(f"{where}({name}=...) {advice}")


def foreign_scheduler_advice(scheduler: Any) -> str:
    module = getattr(type(scheduler), "__module__", "") or ""
    name = type(scheduler).__name__
    if not module.startswith("ray."):
        return ""
    if name in ("PopulationBasedTraining", "FIFOScheduler", "PB2", "PopulationBasedTrainingReplay",
                "AsyncHyperBandScheduler", "HyperBandScheduler", "MedianStoppingRule"):
        return f"; this is Ray's {name}: import it from pbtlab.schedulers (or run the script with `pbtlab run`)"
    return (f"; Ray's {name} is not supported: pbtlab has FIFOScheduler, PopulationBasedTraining, PB2, "
            "PopulationBasedTrainingReplay, AsyncHyperBandScheduler, HyperBandScheduler and MedianStoppingRule "
            "(subclass pbtlab.schedulers.TrialScheduler for another schedule)")


def reject_ray_trainable(where: str, trainable: Any) -> None:
    """A clear error for trainables only Ray can run: RLlib algorithms (by name or class), Ray Train
    trainers, and trainables built by Ray's own ``tune`` module (``ray.tune.with_parameters``...)."""
    if isinstance(trainable, str):
        raise ConfigError(
            f"{where}(trainable) got the name {trainable!r}: pbtlab does not look trainables up by name, and RLlib "
            "algorithms (such as 'PPO') are not supported; pass your training function (or Trainable class)")
    kind = trainable if isinstance(trainable, type) else type(trainable)
    modules = [getattr(c, "__module__", "") or "" for c in getattr(kind, "__mro__", (kind,))]
    own_module = getattr(trainable, "__module__", "") or ""
    if any(m.startswith("ray.rllib") for m in modules):
        raise ConfigError(
            f"{where}(trainable) got the RLlib algorithm {kind.__name__}: RLlib is not supported by pbtlab; call "
            "your environment and learner from a function trainable that reports with tune.report(...)")
    if any(m.startswith("ray.train") for m in modules):
        raise ConfigError(
            f"{where}(trainable) got the Ray Train trainer {kind.__name__}: Ray Train (TorchTrainer, "
            "DataParallelTrainer...) is not supported by pbtlab; pass the training loop function itself, "
            "which reports with tune.report(...)")
    if _ray_example_under_pbtlab_run(own_module):
        return  # Ray's example trainables (ray.tune.examples...) run under `pbtlab run` call pbtlab's tune
    if any(m.startswith("ray.") for m in modules[:-1]) or own_module.startswith("ray."):
        made_by = own_module if own_module.startswith("ray.") else next(m for m in modules if m.startswith("ray."))
        raise ConfigError(
            f"{where}(trainable) got {describe(trainable)}, which comes from Ray ({made_by}): import Trainable, "
            "with_parameters and with_resources from pbtlab.tune instead (or run the script with `pbtlab run`)")


def _ray_example_under_pbtlab_run(module: str) -> bool:
    return module.startswith(("ray.tune.examples.", "ray.tune.utils.mock_trainable")) and shim_state.active


def reject_ray_search_space(where: str, space: Any, path: str = "") -> None:
    """Ray's own domain objects and Ray's JSON-style ``{"grid_search": [...]}`` would otherwise reach the
    trainable as plain values: name them and the pbtlab function to use."""
    if isinstance(space, Mapping):
        if list(space) == ["grid_search"]:
            raise ConfigError(f"{where}(param_space=...) has {{'grid_search': ...}} at {path or 'the top'}: write "
                              f"tune.grid_search([...]) (pbtlab reads grids only from tune.grid_search)")
        for key, value in space.items():
            reject_ray_search_space(where, value, f"{path}/{key}" if path else str(key))
    elif isinstance(space, list):
        for index, value in enumerate(space):
            reject_ray_search_space(where, value, f"{path}/{index}")
    elif (getattr(type(space), "__module__", "") or "").startswith("ray."):
        raise ConfigError(f"{where}(param_space=...) has Ray's {type(space).__name__} at {path}: build the search "
                          "space with pbtlab's functions (from pbtlab import tune; tune.uniform(...), ...), or run "
                          "the script with `pbtlab run`")
