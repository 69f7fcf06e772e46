"""``tune.run(...)``, the entry point older Ray Tune scripts use, mapped onto :class:`pbtlab.Tuner`.

    >>> from pbtlab import tune
    >>> def trainable(config):
    ...     tune.report({"score": config["x"]})
    >>> analysis = tune.run(trainable, config={"x": tune.grid_search([1, 3, 2])}, metric="score", mode="max",
    ...                     storage_path=getfixture("tmp_path"), verbose=0)
    >>> analysis.best_config, analysis.best_result["score"], len(analysis.trials)
    ({'x': 3}, 3, 3)

It returns an :class:`ExperimentAnalysis` (Ray's name) built on the ``ResultGrid`` the Tuner returns.
Every argument is either honoured or refused with a clear error; none is ignored.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import inspect
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pbtlab.analysis import Result, ResultGrid
from pbtlab.checkpoint import Checkpoint
from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from pbtlab.errors import ConfigError, ExperimentError, describe
from pbtlab.metrics import metric_value
from pbtlab.tuner import Tuner

__all__ = ["AnalysisTrial", "ExperimentAnalysis", "run"]

logger = logging.getLogger("pbtlab")

_NOT_SUPPORTED = {
    "export_formats": "export_formats is not supported: a trial's checkpoint is whatever its trainable saves",
    "restore": "restore=<checkpoint> is not supported: load the checkpoint inside the trainable, or continue "
               "a whole experiment with resume=True (same name and storage_path)",
    "resume_config": "resume_config is not supported by tune.run here: use resume=True, 'AUTO', 'AUTO+ERRORED'..., "
                     "or Tuner.restore(path, trainable, ...)",
    "_remote": "_remote (Ray Client) is not supported: pbtlab runs on this machine",
}
_SCOPES = ("all", "last", "avg", "last-5-avg", "last-10-avg")


@dataclasses.dataclass(frozen=True)
class AnalysisTrial:
    """A trial as ``ExperimentAnalysis.trials`` lists it (Ray's ``Trial`` fields that old scripts read)."""

    trial_id: str
    config: dict[str, Any]
    last_result: dict[str, Any]
    status: str
    path: str
    checkpoint: Checkpoint | None
    error_message: str | None

    @property
    def logdir(self) -> str:
        return self.path

    @property
    def local_path(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.trial_id


class ExperimentAnalysis:
    """Ray's ``ExperimentAnalysis`` over a pbtlab ``ResultGrid`` (``.result_grid``).

    ``best_*`` use the ``metric``/``mode`` given to ``tune.run``; ``get_best_trial(metric, mode, scope)``
    takes them explicitly (scope: "last", "all", "avg", "last-5-avg", "last-10-avg").
    """

    def __init__(self, result_grid: ResultGrid, default_metric: str | None = None,
                 default_mode: str | None = None) -> None:
        self.result_grid = result_grid
        self.default_metric = default_metric
        self.default_mode = default_mode
        self._by_id: dict[str, Result] = {r.trial_id: r for r in result_grid}
        self.trials = [AnalysisTrial(r.trial_id, r.config, dict(r.metrics), r.status, r.path, r.checkpoint,
                                     str(r.error) if r.error else None) for r in result_grid]

    @property
    def experiment_path(self) -> str:
        return self.result_grid.experiment_path

    # -- best by the defaults ---------------------------------------------------------------------
    def _defaults(self, what: str) -> tuple[str, str]:
        if not self.default_metric or not self.default_mode:
            raise ConfigError(f"ExperimentAnalysis.{what} needs metric and mode: pass them to tune.run(...), or "
                              f"call get_best_trial(metric, mode)")
        return self.default_metric, self.default_mode

    @property
    def best_trial(self) -> AnalysisTrial | None:
        return self.get_best_trial(*self._defaults("best_trial"))

    @property
    def best_config(self) -> dict[str, Any] | None:
        return self.get_best_config(*self._defaults("best_config"))

    @property
    def best_result(self) -> dict[str, Any]:
        trial = self.get_best_trial(*self._defaults("best_result"))
        if trial is None:
            raise ConfigError(f"no trial reported a usable {self.default_metric!r}, so there is no best result")
        return trial.last_result

    @property
    def best_checkpoint(self) -> Checkpoint | None:
        metric, mode = self._defaults("best_checkpoint")
        trial = self.get_best_trial(metric, mode)
        return self.get_best_checkpoint(trial, metric, mode) if trial is not None else None

    @property
    def best_logdir(self) -> str | None:
        trial = self.get_best_trial(*self._defaults("best_logdir"))
        return trial.path if trial is not None else None

    @property
    def best_dataframe(self) -> Any:
        trial = self.get_best_trial(*self._defaults("best_dataframe"))
        if trial is None:
            raise ConfigError(f"no trial reported a usable {self.default_metric!r}, so there is no best trial")
        return self._by_id[trial.trial_id].metrics_dataframe

    @property
    def best_result_df(self) -> Any:
        return self._frame([self.best_result])

    # -- all trials -------------------------------------------------------------------------------
    @property
    def results(self) -> dict[str, dict[str, Any]]:
        """Each trial's last result, by trial id."""
        return {t.trial_id: t.last_result for t in self.trials}

    @property
    def results_df(self) -> Any:
        """Each trial's last result as a pandas DataFrame indexed by trial id (nested keys as ``a/b``)."""
        return self._frame([{**t.last_result, "trial_id": t.trial_id} for t in self.trials])

    @property
    def trial_dataframes(self) -> dict[str, Any]:
        """Every trial's reported rows, as a pandas DataFrame per trial id."""
        return {trial_id: result.metrics_dataframe for trial_id, result in self._by_id.items()}

    def get_all_configs(self, prefix: bool = False) -> dict[str, dict[str, Any]]:
        """Each trial's config by trial directory (with ``prefix``, keys are ``config/<name>``)."""
        return {t.path: ({f"config/{k}": v for k, v in t.config.items()} if prefix else t.config)
                for t in self.trials}

    def dataframe(self, metric: str | None = None, mode: str | None = None) -> Any:
        """One row per trial: its best-ever row by ``metric``/``mode``, or its last row without them."""
        if mode is not None and mode not in ("min", "max"):
            raise ConfigError(f"ExperimentAnalysis.dataframe(mode=...) must be 'min', 'max' or None, got {mode!r}")
        if mode and not metric:
            raise ConfigError("ExperimentAnalysis.dataframe(mode=...) also needs metric=...")
        if metric and mode:
            return self.result_grid.get_dataframe(filter_metric=metric, filter_mode=mode)
        return self.result_grid.get_dataframe()

    # -- best by explicit metric ------------------------------------------------------------------
    def get_best_trial(self, metric: str | None = None, mode: str | None = None, scope: str = "last",
                       filter_nan_and_inf: bool = True) -> AnalysisTrial | None:
        """The best trial by ``metric`` under ``scope``; None (with a warning) when no trial has a usable value."""
        if len(self.trials) == 1:
            return self.trials[0]  # as in Ray
        metric = metric or self.default_metric
        mode = mode or self.default_mode
        if not metric:
            raise ConfigError("get_best_trial needs metric=... (none was passed to tune.run either)")
        if mode not in ("min", "max"):
            raise ConfigError(f"get_best_trial needs mode='min' or 'max', got {mode!r}")
        if scope not in _SCOPES:
            raise ConfigError(f"get_best_trial(scope=...) must be one of {list(_SCOPES)}, got {scope!r}")
        try:
            best = self.result_grid.get_best_result(metric, mode, scope=scope, filter_nan_and_inf=filter_nan_and_inf)
        except ConfigError as error:
            logger.warning(f"[pbtlab] could not find a best trial: {error}")
            return None
        return next(t for t in self.trials if t.trial_id == best.trial_id)

    def get_best_config(self, metric: str | None = None, mode: str | None = None,
                        scope: str = "last") -> dict[str, Any] | None:
        trial = self.get_best_trial(metric, mode, scope)
        return trial.config if trial is not None else None

    def get_best_checkpoint(self, trial: AnalysisTrial | str, metric: str | None = None,
                            mode: str | None = None) -> Checkpoint | None:
        """Of the trial's kept checkpoints, the one whose report had the best ``metric``."""
        metric = metric or self.default_metric or "training_iteration"
        mode = mode or self.default_mode or "max"
        result = self._by_id[trial if isinstance(trial, str) else trial.trial_id]
        reported = {row.get("checkpoint_dir_name"): row for row in result.history() if row.get("checkpoint_dir_name")}
        best: Checkpoint | None = None
        best_value = -math.inf
        sign = 1.0 if mode == "max" else -1.0
        for checkpoint, _ in result.best_checkpoints:
            row = reported.get(os.path.basename(checkpoint.path), {})
            value = metric_value(row, metric)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            if best is None or sign * value > best_value:
                best, best_value = checkpoint, sign * value
        return best

    def get_last_checkpoint(self, trial: AnalysisTrial | str | None = None, metric: str = "training_iteration",
                            mode: str = "max") -> Checkpoint | None:
        trial = trial or self.get_best_trial(metric, mode)
        return self.get_best_checkpoint(trial, "training_iteration", "max") if trial is not None else None

    @staticmethod
    def _frame(rows: list[dict[str, Any]]) -> Any:
        from pbtlab.analysis.results import _pandas

        frame = _pandas().json_normalize(rows, sep="/")
        return frame.set_index("trial_id") if "trial_id" in frame.columns else frame

    def __repr__(self) -> str:
        return f"ExperimentAnalysis({len(self.trials)} trials at {self.experiment_path!r})"


def _optional_field(owner: type, field: str, argument: str, value: Any, into: dict[str, Any]) -> None:
    """Pass ``value`` as ``owner(field=value)`` if this pbtlab's config has that field, else refuse it."""
    if field in {f.name for f in dataclasses.fields(owner)}:
        into[field] = value
        return
    raise ConfigError(f"tune.run({argument}=...) is not supported by this version of pbtlab "
                      f"({owner.__name__} has no {field!r}); got {describe(value)}")


def _checkpoint_config(checkpoint_config: Any, keep_checkpoints_num: Any, checkpoint_score_attr: Any,
                       checkpoint_freq: Any, checkpoint_at_end: Any) -> CheckpointConfig | None:
    legacy = {"keep_checkpoints_num": keep_checkpoints_num, "checkpoint_score_attr": checkpoint_score_attr,
              "checkpoint_freq": checkpoint_freq or None, "checkpoint_at_end": checkpoint_at_end or None}
    given = {k: v for k, v in legacy.items() if v is not None}
    if checkpoint_config is not None and given:
        raise ConfigError(f"tune.run got checkpoint_config and {sorted(given)}; set them all in checkpoint_config")
    if checkpoint_config is not None:
        if not isinstance(checkpoint_config, CheckpointConfig):
            raise ConfigError(f"tune.run(checkpoint_config=...) must be a CheckpointConfig, "
                              f"got {describe(checkpoint_config)}")
        return checkpoint_config
    if not given:
        return None
    kwargs: dict[str, Any] = {}
    if keep_checkpoints_num is not None:
        kwargs["num_to_keep"] = keep_checkpoints_num
    if checkpoint_score_attr is not None:
        attribute, order = str(checkpoint_score_attr), "max"
        if attribute.startswith("min-"):  # Ray's old convention: "min-loss" keeps the lowest loss
            attribute, order = attribute[len("min-"):], "min"
        _optional_field(CheckpointConfig, "checkpoint_score_attribute", "checkpoint_score_attr", attribute, kwargs)
        _optional_field(CheckpointConfig, "checkpoint_score_order", "checkpoint_score_attr", order, kwargs)
    if checkpoint_freq:
        _optional_field(CheckpointConfig, "checkpoint_frequency", "checkpoint_freq", checkpoint_freq, kwargs)
    if checkpoint_at_end:
        _optional_field(CheckpointConfig, "checkpoint_at_end", "checkpoint_at_end", checkpoint_at_end, kwargs)
    return CheckpointConfig(**kwargs)


def _parse_resume(resume: Any) -> tuple[str, bool, bool] | None:
    """(mode, errored, restart_errored) for Ray's ``resume=True | "AUTO" | "AUTO+ERRORED"...``; None: no resume."""
    if resume is None or resume is False:
        return None
    if resume is True:
        return ("AUTO", False, False)
    if not isinstance(resume, str):
        raise ConfigError(f"tune.run(resume=...) must be True, False, 'AUTO' or 'AUTO+ERRORED' (etc.), "
                          f"got {describe(resume)}")
    head, *suffixes = resume.split("+")
    if head not in ("AUTO", "LOCAL"):
        raise ConfigError(f"tune.run(resume={resume!r}): {head!r} is not supported (deprecated in Ray too); "
                          "use True or 'AUTO', optionally with '+ERRORED' or '+RESTART_ERRORED'")
    errored = restart = False
    for suffix in suffixes:
        if suffix == "ERRORED":
            errored = True
        elif suffix == "RESTART_ERRORED":
            restart = True
        else:
            raise ConfigError(f"tune.run(resume={resume!r}): the suffix {suffix!r} is not supported; use '+ERRORED' "
                              "(continue errored trials from their latest checkpoint) or '+RESTART_ERRORED'")
    return (head, errored, restart)


def _restore_options(errored: bool, restart: bool) -> dict[str, Any]:
    accepted = inspect.signature(Tuner.restore).parameters
    if "resume_errored" in accepted:  # Ray's split: resume from the latest checkpoint vs restart from scratch
        return {"resume_errored": errored, "restart_errored": restart}
    if restart:
        raise ConfigError("tune.run(resume='...+RESTART_ERRORED') (errored trials from scratch) is not supported by "
                          "this version of pbtlab; use '+ERRORED' (from their latest checkpoint)")
    return {"restart_errored": errored}  # pbtlab's restart_errored continues from the latest checkpoint


def run(run_or_experiment: Callable[..., Any] | type, *, name: str | None = None, metric: str | None = None,
        mode: str | None = None, stop: Any = None, time_budget_s: float | datetime.timedelta | None = None,
        config: Mapping[str, Any] | None = None, resources_per_trial: Mapping[str, Any] | None = None,
        num_samples: int = 1, storage_path: str | os.PathLike[str] | None = None, storage_filesystem: Any = None,
        search_alg: Any = None, scheduler: Any = None, checkpoint_config: CheckpointConfig | None = None,
        verbose: int | None = None, progress_reporter: Any = None, log_to_file: Any = False,
        trial_name_creator: Callable[..., str] | None = None, trial_dirname_creator: Callable[..., str] | None = None,
        sync_config: Any = None, export_formats: Sequence[str] | None = None, max_failures: int = 0,
        fail_fast: bool = False, restore: str | None = None, resume: bool | str | None = None,
        resume_config: Any = None, reuse_actors: bool = False, raise_on_failed_trial: bool = True,
        callbacks: Sequence[Any] | None = None, max_concurrent_trials: int | None = None,
        keep_checkpoints_num: int | None = None, checkpoint_score_attr: str | None = None, checkpoint_freq: int = 0,
        checkpoint_at_end: bool = False, chdir_to_trial_dir: Any = "DEPRECATED", local_dir: str | None = None,
        _remote: bool | None = None, **unknown: Any) -> ExperimentAnalysis:
    """Ray's ``tune.run``: builds ``Tuner(trainable, param_space=config, tune_config=..., run_config=...)``, fits
    it (or continues it with ``resume=True``) and returns an :class:`ExperimentAnalysis`.

    Raises ``ExperimentError`` when trials errored and ``raise_on_failed_trial`` (as Ray's TuneError).
    """
    if unknown:
        raise ConfigError(f"tune.run got arguments it does not know: {sorted(unknown)}")
    for argument, value in (("export_formats", export_formats), ("restore", restore),
                            ("resume_config", resume_config), ("_remote", _remote)):
        if value:
            raise ConfigError(f"tune.run({argument}=...): {_NOT_SUPPORTED[argument]}")
    if isinstance(run_or_experiment, str) or not callable(run_or_experiment):
        # Ray also takes registered names and Experiment objects; Tuner explains what pbtlab takes.
        Tuner(run_or_experiment)  # type: ignore[arg-type]  # raises the clear ConfigError
    if local_dir is not None:
        if storage_path is not None:
            raise ConfigError("tune.run got both local_dir and storage_path; local_dir is Ray's old name, "
                              "keep storage_path")
        storage_path = local_dir
    if isinstance(time_budget_s, datetime.timedelta):
        time_budget_s = time_budget_s.total_seconds()
    trainable = run_or_experiment
    if resources_per_trial is not None:
        # Looked up on the tune namespace at call time (this module is part of it, so no import here).
        with_resources = getattr(importlib.import_module("pbtlab.tune"), "with_resources", None)
        if with_resources is None:
            raise ConfigError(f"tune.run(resources_per_trial={resources_per_trial!r}) is not supported by this version "
                              "of pbtlab (no tune.with_resources)")
        trainable = with_resources(trainable, resources_per_trial)

    tune_kwargs: dict[str, Any] = {
        "metric": metric, "mode": mode, "scheduler": scheduler, "num_samples": num_samples,
        "max_concurrent_trials": max_concurrent_trials, "time_budget_s": time_budget_s, "search_alg": search_alg,
        "reuse_actors": reuse_actors}
    if chdir_to_trial_dir != "DEPRECATED":
        tune_kwargs["chdir_to_trial_dir"] = chdir_to_trial_dir  # TuneConfig explains why not
    for argument, value in (("trial_name_creator", trial_name_creator),
                            ("trial_dirname_creator", trial_dirname_creator)):
        if value is not None:
            _optional_field(TuneConfig, argument, argument, value, tune_kwargs)
    run_kwargs: dict[str, Any] = {
        "name": name, "storage_path": storage_path, "stop": stop, "verbose": None if verbose is None else int(verbose),
        "failure_config": FailureConfig(max_failures=max_failures, fail_fast=fail_fast),
        "checkpoint_config": _checkpoint_config(checkpoint_config, keep_checkpoints_num, checkpoint_score_attr,
                                                checkpoint_freq, checkpoint_at_end),
        "storage_filesystem": storage_filesystem, "sync_config": sync_config, "progress_reporter": progress_reporter}
    for argument, value in (("callbacks", callbacks), ("log_to_file", log_to_file or None)):
        if value is not None:
            _optional_field(RunConfig, argument, argument, value, run_kwargs)
    tune_config = TuneConfig(**tune_kwargs)
    run_config = RunConfig(**run_kwargs)

    tuner = Tuner(trainable, param_space=config, tune_config=tune_config, run_config=run_config)
    parsed = _parse_resume(resume)
    if parsed is not None:
        if not name:
            raise ConfigError(f"tune.run(resume={resume!r}) needs name=... to find the experiment to continue")
        from pbtlab.engine.build import DEFAULT_STORAGE

        path = os.path.join(os.path.abspath(os.fspath(storage_path or DEFAULT_STORAGE)), name)
        if Tuner.can_restore(path):
            tuner = Tuner.restore(path, trainable, param_space=config, tune_config=tune_config,
                                  run_config=run_config, **_restore_options(parsed[1], parsed[2]))
        else:
            logger.info(f"[pbtlab] tune.run(resume={resume!r}): nothing to continue at {path}; starting a new run")
    grid = tuner.fit()
    analysis = ExperimentAnalysis(grid, metric or getattr(scheduler, "metric", None),
                                  mode or getattr(scheduler, "mode", None))
    failed = [t for t in analysis.trials if t.status == "ERROR"]
    if failed and raise_on_failed_trial:
        raise ExperimentError(
            f"Trials did not complete: {[t.trial_id for t in failed]} errored ({failed[0].error_message}); results "
            f"are in {analysis.experiment_path}. Pass raise_on_failed_trial=False to get the analysis anyway")
    return analysis
