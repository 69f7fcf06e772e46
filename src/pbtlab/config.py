"""Configuration objects with Ray Tune's names and defaults, validated when made.

    >>> TuneConfig(metric="Q", mode="max", num_samples=2).num_samples
    2
    >>> RunConfig(stop={"training_iteration": 100}).stop
    {'training_iteration': 100}
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from pbtlab import compat
from pbtlab import lazy_dataclass
from pbtlab.callbacks import check_callbacks
from pbtlab.errors import ConfigError, describe

__all__ = [
    "check_tuner_arguments", "CheckpointConfig", "config_from_stored", "DEFAULT_EXECUTOR", "FailureConfig",
    "log_file_names", "NOT_STORED_FIELDS", "overridden", "RunConfig", "stored_config", "TuneConfig",
]


def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = f"an int >= {minimum}" + (" or None" if allow_none else "")
        raise ConfigError(f"{name} must be {kind}, got {describe(value)}")


@lazy_dataclass.dataclass
class TuneConfig:
    """How to search: metric and mode, scheduler, number of samples, seed and concurrency.

    ``seed`` fixes every random choice (sampling and the scheduler's decisions); with None a seed is
    drawn and written to ``experiment.json``, so any run can be repeated.
    ``trial_name_creator(trial) -> str`` names trials (default ``<trainable>_<trial_id>``);
    ``trial_dirname_creator(trial) -> str`` names their directories (default the trial id).
    """

    metric: str | None = None
    mode: str | None = None
    scheduler: Any = None
    num_samples: int = 1
    seed: int | None = None
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None
    search_alg: Any = None
    reuse_actors: bool | None = None  # class trainables: reset_config() instead of a new object at exploits
    trial_name_creator: Callable[[Any], str] | None = None
    trial_dirname_creator: Callable[[Any], str] | None = None
    # Ray-only arguments: accepted by name so that each gives a clear error (see _RAY_ONLY_TUNE).
    chdir_to_trial_dir: Any = None

    def __post_init__(self) -> None:
        for name in ("trial_name_creator", "trial_dirname_creator"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ConfigError(f"TuneConfig({name}=...) must be a function (trial) -> str, got {describe(value)}")
        if self.metric is not None and (not isinstance(self.metric, str) or not self.metric):
            raise ConfigError(f"TuneConfig(metric=...) must be a non-empty str, got {describe(self.metric)}")
        if self.mode is not None and self.mode not in ("min", "max"):
            raise ConfigError(f"TuneConfig(mode=...) must be 'min' or 'max', got {self.mode!r}")
        _check_int("TuneConfig(num_samples=...)", self.num_samples, 1)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"TuneConfig(seed=...) must be an int >= 0 or None, got {describe(self.seed)}")
        _check_int("TuneConfig(max_concurrent_trials=...)", self.max_concurrent_trials, 1, allow_none=True)
        if self.time_budget_s is not None and (isinstance(self.time_budget_s, bool) or not isinstance(
                self.time_budget_s, (int, float)) or not math.isfinite(self.time_budget_s) or self.time_budget_s <= 0):
            raise ConfigError(f"TuneConfig(time_budget_s=...) must be a number > 0 or None, got {describe(self.time_budget_s)}")
        if self.search_alg is not None:
            from pbtlab.search import check_search_alg

            check_search_alg(self.search_alg)
            limit = self.search_alg.max_concurrent  # BasicVariantGenerator(max_concurrent): the smaller limit wins
            if limit and (self.max_concurrent_trials is None or limit < self.max_concurrent_trials):
                self.max_concurrent_trials = limit
        if self.scheduler is not None:
            from pbtlab.schedulers.base import TrialScheduler

            if not isinstance(self.scheduler, TrialScheduler):
                raise ConfigError(
                    f"TuneConfig(scheduler=...) must be a pbtlab scheduler such as PopulationBasedTraining(...), "
                    f"got {describe(self.scheduler)}{compat.scheduler_advice(self.scheduler)}")
        _reject_foreign_only("TuneConfig", self)


@lazy_dataclass.dataclass
class FailureConfig:
    """How often a failing trial is restarted (from its latest checkpoint). -1: forever."""

    max_failures: int = 0
    fail_fast: bool = False

    def __post_init__(self) -> None:
        _check_int("FailureConfig(max_failures=...)", self.max_failures, -1)
        if not isinstance(self.fail_fast, bool):
            raise ConfigError(f"FailureConfig(fail_fast=...) must be True or False, got {describe(self.fail_fast)}")


@lazy_dataclass.dataclass
class CheckpointConfig:
    """Which checkpoints to keep, and when class trainables save them (Ray's ``CheckpointConfig``).

    ``num_to_keep``: how many of each trial's checkpoints to keep (None keeps all): the most recent
    ones, or the best by ``checkpoint_score_attribute`` (a reported metric) in
    ``checkpoint_score_order`` ("max" or "min"). A checkpoint a PBT clone still needs, and the trial's
    latest, are kept whatever this says.
    ``checkpoint_frequency``: a class trainable saves every N iterations (0: never by itself);
    ``checkpoint_at_end``: it saves when it ends. Function trainables decide for themselves.
    """

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None

    def __post_init__(self) -> None:
        _check_int("CheckpointConfig(num_to_keep=...)", self.num_to_keep, 1, allow_none=True)
        if self.checkpoint_score_attribute is not None and (
                not isinstance(self.checkpoint_score_attribute, str) or not self.checkpoint_score_attribute):
            raise ConfigError("CheckpointConfig(checkpoint_score_attribute=...) must be a metric name or None, got "
                              f"{describe(self.checkpoint_score_attribute)}")
        if self.checkpoint_score_order not in ("max", "min"):
            raise ConfigError(f"CheckpointConfig(checkpoint_score_order=...) must be 'max' or 'min', got "
                              f"{describe(self.checkpoint_score_order)}")
        _check_int("CheckpointConfig(checkpoint_frequency=...)", self.checkpoint_frequency, 0)
        if self.checkpoint_at_end is not None and not isinstance(self.checkpoint_at_end, bool):
            raise ConfigError(f"CheckpointConfig(checkpoint_at_end=...) must be True, False or None, got "
                              f"{describe(self.checkpoint_at_end)}")


#: What ``RunConfig(executor=None)`` means; ``pbtlab run --executor process`` sets it for the script it runs.
DEFAULT_EXECUTOR: str | None = None

StopCriteria = Mapping[str, float] | Callable[[str, dict[str, Any]], bool] | None


@lazy_dataclass.dataclass
class RunConfig:
    """Where and how to run: name, storage, stop criteria, failures, checkpoints, verbosity, executor.

    ``stop`` is a dict (stop when ``result[key] >= value`` for any key), a function
    ``(trial_id, result) -> bool``, or an object with ``__call__`` and ``stop_all()`` (Ray's Stopper).
    ``verbose``: 0 silent, 1 final table only, 2 decisions and status table (default).
    ``executor``: "inprocess" (default), "greenlets" (in-process, trials as greenlets: ``pbtlab[fast]``),
    "process", "ray", or an Executor object.
    ``state_save_period_s``: when the run's state is saved. It is saved when a trial's recovery point
    advances (a checkpoint, a trial's end, a decision) and always at the end. None (the default): each
    at once, as long as saving takes at most 5% of the run; 0: each at once; a number: at most that often.
    ``callbacks``: ``tune.Callback`` objects whose hooks are called as the run progresses (``pbtlab.callbacks``).
    ``log_to_file`` (Ray's): False (default) leaves each trial's output where it goes; True writes its stdout
    and stderr to ``stdout`` and ``stderr`` in the trial's directory; a file name writes both into that file;
    a tuple ``(stdout_name, stderr_name)`` names each (names are relative to the trial directory).
    """

    name: str | None = None
    storage_path: str | os.PathLike[str] | None = None
    stop: Any = None
    failure_config: FailureConfig | None = None
    checkpoint_config: CheckpointConfig | None = None
    verbose: int | None = None
    executor: Any = None
    progress_interval_s: float = 5.0
    state_save_period_s: float | None = None
    callbacks: list[Any] | None = None
    log_to_file: bool | str | tuple[str, str] | list[str] = False
    # Ray-only arguments: accepted by name so that each gives a clear error (see _RAY_ONLY_RUN).
    storage_filesystem: Any = None
    sync_config: Any = None
    progress_reporter: Any = None
    local_dir: Any = None
    worker_runtime_env: Any = None
    logging_config: Any = None

    def __post_init__(self) -> None:
        self.callbacks = check_callbacks(self.callbacks)
        log_file_names(self.log_to_file)  # raises a clear ConfigError for anything else
        if self.name is not None and (not isinstance(self.name, str) or not self.name or os.sep in self.name
                                      or self.name in (".", "..")):
            raise ConfigError(f"RunConfig(name=...) must be a folder name without '{os.sep}', got {describe(self.name)}")
        if self.storage_path is not None and not isinstance(self.storage_path, (str, os.PathLike)):
            raise ConfigError(f"RunConfig(storage_path=...) must be a path, got {describe(self.storage_path)}")
        if isinstance(self.stop, (list, tuple)):  # as in Ray: a list of Stoppers acts as one CombinedStopper
            from pbtlab.stopper import CombinedStopper, Stopper

            if not self.stop or not all(isinstance(s, Stopper) for s in self.stop):
                raise ConfigError(f"RunConfig(stop=[...]) must be a non-empty list of Stopper objects "
                                  f"(combined with 'or'), got {describe(self.stop)}")
            self.stop = CombinedStopper(*self.stop)
        if self.stop is not None and not isinstance(self.stop, Mapping) and not callable(self.stop):
            raise ConfigError(
                f"RunConfig(stop=...) must be a dict like {{'training_iteration': 100}}, a function "
                f"(trial_id, result) -> bool, or a Stopper, got {describe(self.stop)}")
        if isinstance(self.stop, Mapping):
            for key, value in self.stop.items():
                # bools are allowed as in Ray: stop={"done": True} stops a trial once it reports done=True
                if not isinstance(key, str) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ConfigError(
                        f"RunConfig(stop=...) needs metric names mapped to numbers, got {key!r}: {describe(value)}")
        if self.failure_config is None:
            self.failure_config = FailureConfig()
        elif not isinstance(self.failure_config, FailureConfig):
            raise ConfigError(f"RunConfig(failure_config=...) must be a FailureConfig, got {describe(self.failure_config)}")
        if self.checkpoint_config is None:
            self.checkpoint_config = CheckpointConfig()
        elif not isinstance(self.checkpoint_config, CheckpointConfig):
            raise ConfigError(
                f"RunConfig(checkpoint_config=...) must be a CheckpointConfig, got {describe(self.checkpoint_config)}")
        if isinstance(self.verbose, bool):  # Ray scripts pass verbose=False (silent) or True
            self.verbose = int(self.verbose)
        if self.verbose is not None and self.verbose not in (0, 1, 2, 3):
            raise ConfigError(f"RunConfig(verbose=...) must be 0, 1, 2 or 3, got {describe(self.verbose)}")
        if self.executor is None:
            self.executor = DEFAULT_EXECUTOR
        if isinstance(self.executor, str) and self.executor not in ("inprocess", "greenlets", "process", "ray"):
            raise ConfigError(f"RunConfig(executor=...) must be 'inprocess', 'greenlets', 'process', 'ray' or an "
                              f"Executor, got {self.executor!r}")
        if isinstance(self.progress_interval_s, bool) or not isinstance(self.progress_interval_s, (int, float)) \
                or not math.isfinite(self.progress_interval_s) or self.progress_interval_s <= 0:
            raise ConfigError(f"RunConfig(progress_interval_s=...) must be a number > 0, got {describe(self.progress_interval_s)}")
        if self.state_save_period_s is not None and (
                isinstance(self.state_save_period_s, bool) or not isinstance(self.state_save_period_s, (int, float))
                or not math.isfinite(self.state_save_period_s) or self.state_save_period_s < 0):
            raise ConfigError(f"RunConfig(state_save_period_s=...) must be None (automatic) or a number >= 0, "
                              f"got {describe(self.state_save_period_s)}")
        _reject_foreign_only("RunConfig", self)


def log_file_names(log_to_file: Any) -> tuple[str | None, str | None]:
    """``RunConfig(log_to_file=...)`` as (stdout file, stderr file) names in the trial directory.

    >>> log_file_names(True), log_file_names("out.log"), log_file_names(False)
    (('stdout', 'stderr'), ('out.log', 'out.log'), (None, None))
    """
    if log_to_file is None or log_to_file is False:
        return None, None
    if log_to_file is True:
        return "stdout", "stderr"
    names = [log_to_file, log_to_file] if isinstance(log_to_file, str) else log_to_file
    if isinstance(names, (tuple, list)) and len(names) == 2 and all(isinstance(n, str) and n.strip() for n in names):
        return str(names[0]), str(names[1])
    raise ConfigError(f"RunConfig(log_to_file=...) must be False, True, a file name or a tuple (stdout_name, "
                      f"stderr_name), got {describe(log_to_file)}")


def check_tuner_arguments(where: str, trainable: Any, param_space: Any, tune_config: Any, run_config: Any) -> None:
    """The checks ``Tuner(...)`` and ``Tuner.restore(...)`` share; ``where`` names the call in messages."""
    compat.check_trainable(where, trainable)
    if isinstance(trainable, type) and not any(c.__name__ == "Trainable" and c.__module__ == "pbtlab.trainable"
                                               for c in trainable.__mro__):
        raise ConfigError(
            f"{where}(trainable) got the class {trainable.__qualname__}, which is not a tune.Trainable: subclass "
            "pbtlab.tune.Trainable (setup/step/save_checkpoint/load_checkpoint), or pass a function "
            "trainable(config) that calls tune.report(...)")
    if not callable(trainable):
        raise ConfigError(f"{where}(trainable) needs a function trainable(config), got {describe(trainable)}")
    if param_space is not None and not isinstance(param_space, Mapping):
        raise ConfigError(f"{where}(param_space=...) must be a dict, got {describe(param_space)}")
    if param_space is not None:
        compat.check_search_space(where, param_space)
    if tune_config is not None and not isinstance(tune_config, TuneConfig):
        raise ConfigError(f"{where}(tune_config=...) must be a TuneConfig, got {describe(tune_config)}")
    if run_config is not None and not isinstance(run_config, RunConfig):
        raise ConfigError(f"{where}(run_config=...) must be a RunConfig, got {describe(run_config)}")


# -- storing the configs in experiment.json (what a resume rebuilds) --------------------------------------

#: The fields each config class accepts only to refuse them with advice: another tool's arguments (Ray Tune's),
#: which pbtlab.compat knows. Set to anything but None, they make the config ask it for the error.
FOREIGN_ONLY_FIELDS: dict[str, tuple[str, ...]] = {
    "TuneConfig": ("chdir_to_trial_dir",),
    "RunConfig": ("storage_filesystem", "sync_config", "progress_reporter", "local_dir", "worker_runtime_env",
                  "logging_config"),
}


def _reject_foreign_only(where: str, config: Any) -> None:
    """The error for a foreign-only field of ``config`` (a ``where``) that was set (the compatibility layer is
    imported only then)."""
    if any(getattr(config, name) is not None for name in FOREIGN_ONLY_FIELDS[where]):
        compat.reject_unsupported_arguments(where, config)


#: Fields experiment.json does not keep as values, and why. Every other field of the four config classes
#: is stored as JSON when its value is JSON (a dict ``stop``, a name ``executor``...) and rebuilt on resume;
#: a value that is not JSON (a function, a callback, an Executor object) is named in ``not_stored`` instead,
#: and a resume says how to pass it again. ``tests/test_resume_config.py`` walks ``dataclasses.fields`` of each
#: class against this table, so a field added later is either stored or listed here.
NOT_STORED_FIELDS: dict[str, str] = {
    "TuneConfig.scheduler": "stored as the scheduler's description (experiment.json 'scheduler')",
    "TuneConfig.search_alg": "used once, to sample the trials, which are stored",
    "TuneConfig.trial_name_creator": "used once, when the trials were made; their names are stored",
    "TuneConfig.trial_dirname_creator": "used once, when the trials were made; their folders are stored",
    "RunConfig.name": "the run directory's name",
    "RunConfig.storage_path": "the folder that holds the run directory",
    **{f"{kind}.{name}": "accepted only to be refused with advice (pbtlab.compat): always None"
       for kind, names in FOREIGN_ONLY_FIELDS.items() for name in names},
}

_JSON_SCALARS = (bool, int, float, str, type(None))


def _as_json(value: Any) -> tuple[bool, Any]:
    """(True, the value as JSON) when it is JSON data (tuples become lists, numpy scalars numbers), else
    (False, None).

        >>> import numpy as np
        >>> _as_json({"training_iteration": np.int64(5)}), _as_json(print)
        ((True, {'training_iteration': 5}), (False, None))
    """
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        value = value.item()  # a numpy scalar
    if isinstance(value, _JSON_SCALARS):
        return (not isinstance(value, float) or math.isfinite(value)), value
    if isinstance(value, (list, tuple)):
        items = [_as_json(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, Mapping):
        entries = {k: _as_json(v) for k, v in value.items()}
        return (all(isinstance(k, str) for k in value) and all(ok for ok, _ in entries.values()),
                {k: v for k, (_, v) in entries.items()})
    return False, None


def stored_config(config: Any, not_stored: dict[str, str] | None = None) -> dict[str, Any]:
    """The fields of a config (``TuneConfig``, ``RunConfig``, ``CheckpointConfig``, ``FailureConfig``) that
    experiment.json keeps: JSON values, nested configs as dicts. A value that cannot be stored is named in
    ``not_stored`` (``"RunConfig.callbacks" -> its description``) when it is not a default.

        >>> stored_config(CheckpointConfig(num_to_keep=2))["num_to_keep"]
        2
        >>> missing = {}
        >>> "stop" in stored_config(RunConfig(stop=lambda trial_id, result: False), missing), sorted(missing)
        (False, ['RunConfig.stop'])
    """
    kind = type(config).__name__
    stored: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        name = f"{kind}.{field.name}"
        if name in NOT_STORED_FIELDS:
            continue
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            stored[field.name] = stored_config(value, not_stored)
            continue
        ok, as_json = _as_json(value)
        if ok:
            stored[field.name] = as_json
        elif not_stored is not None:
            not_stored[name] = describe(value)
    return stored


_NESTED: dict[str, type] = {"failure_config": FailureConfig, "checkpoint_config": CheckpointConfig}


def config_from_stored(cls: type[Any], stored: Mapping[str, Any], **fixed: Any) -> Any:
    """Rebuild a config from :func:`stored_config` output (fields a newer pbtlab wrote are ignored).

        >>> config_from_stored(RunConfig, stored_config(RunConfig(stop={"training_iteration": 3}))).stop
        {'training_iteration': 3}
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, value in stored.items():
        if name not in names:
            continue
        nested = _NESTED.get(name) if cls is RunConfig else None
        values[name] = config_from_stored(nested, value) if nested and isinstance(value, Mapping) else value
    values.update(fixed)
    return cls(**values)


def overridden(base: Any, given: Any) -> Any:
    """``base`` with every field of ``given`` that is not at its default (nested configs field by field):
    how ``Tuner.restore(path, trainable, run_config=RunConfig(callbacks=[...]))`` adds to the stored settings.

        >>> base = RunConfig(stop={"training_iteration": 9}, checkpoint_config=CheckpointConfig(num_to_keep=2))
        >>> merged = overridden(base, RunConfig(verbose=0))
        >>> merged.stop, merged.verbose, merged.checkpoint_config.num_to_keep
        ({'training_iteration': 9}, 0, 2)
    """
    defaults = type(base)()  # as __post_init__ leaves them (RunConfig(callbacks=None) holds [])
    values: dict[str, Any] = {}
    for field in dataclasses.fields(base):
        mine, theirs = getattr(base, field.name), getattr(given, field.name)
        default = getattr(defaults, field.name)
        if field.name in _NESTED and isinstance(base, RunConfig):
            values[field.name] = overridden(mine, theirs)
        elif theirs is not default and theirs != default:
            values[field.name] = theirs
        else:
            values[field.name] = mine
    return type(base)(**values)
