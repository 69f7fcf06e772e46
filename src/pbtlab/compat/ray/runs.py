"""Read a Ray Tune experiment (a directory, or Ray's live ``ResultGrid``) as a pbtlab ``ResultGrid``.

    >>> grid = load_ray_results("~/ray_results/train_func_2026-01-01_00-00-00")   # doctest: +SKIP
    >>> [e["donor"] for e in grid.events_of("exploit")]                           # doctest: +SKIP

The work is split by job: :mod:`~pbtlab.compat.ray.files` reads Ray's files,
:mod:`~pbtlab.compat.ray.reconstruction` rebuilds the trials and their exploits,
:mod:`~pbtlab.compat.ray.events` writes the history as pbtlab's event records, and
:mod:`~pbtlab.compat.ray.grid` holds the result as a ``ResultGrid``. This module ties them together.

What Ray did not keep is said, never made up: each loss is a ``data_gap`` event (``trial_id``, ``what``,
``message``) and a line in ``experiment["gaps"]``. The directory is only opened for reading, and nothing
in it is unpickled.
"""

from __future__ import annotations

import datetime
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pbtlab.compat.ray import is_ray_experiment, is_ray_object
from pbtlab.compat.ray.events import build_events
from pbtlab.compat.ray.files import POLICY_LOG, TUNER_PICKLE, find_state_files, parse_state, tuner_settings
from pbtlab.compat.ray.grid import RayResultGrid, trial_record
from pbtlab.compat.ray.reconstruction import (
    TAG_INDEX,
    RayRun,
    RayTrial,
    find_param_columns,
    name_checkpoints,
    place_exploits,
    read_policy_log,
    read_rows,
    trainable_name,
    unflatten_record,
)
from pbtlab.errors import ConfigError, ExperimentError, describe

__all__ = ["load_ray_results", "read_ray_experiment", "read_ray_result_grid"]


def load_ray_results(source: Any, metric: str | None = None, mode: str | None = None) -> RayResultGrid:
    """A Ray Tune experiment directory, or Ray's ``ResultGrid`` / ``ExperimentAnalysis``, as a pbtlab grid.

    ``metric`` and ``mode`` override what is found in the run (Ray keeps them only in ``tuner.pkl``).

        >>> load_ray_results(3)
        Traceback (most recent call last):
        ...
        pbtlab.errors.ConfigError: load_ray_results needs a Ray Tune experiment directory or Ray's ResultGrid / ExperimentAnalysis, got 3 (int)
    """
    if mode is not None and mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
    if is_ray_object(source):
        path, found_metric, found_mode = _from_ray_object(source)
        if not is_ray_experiment(path) and hasattr(source, "_results"):  # moved, deleted or remote: use memory
            return RayResultGrid(read_ray_result_grid(source, path, metric or found_metric, mode or found_mode))
        return RayResultGrid(read_ray_experiment(path, metric or found_metric, mode or found_mode))
    if isinstance(source, (str, os.PathLike)):
        return RayResultGrid(read_ray_experiment(source, metric, mode))
    raise ConfigError("load_ray_results needs a Ray Tune experiment directory or Ray's ResultGrid / "
                      f"ExperimentAnalysis, got {describe(source)}")


def _from_ray_object(value: Any) -> tuple[str, str | None, str | None]:
    analysis = getattr(value, "_experiment_analysis", value)
    path = getattr(value, "experiment_path", None) or getattr(analysis, "experiment_path", None)
    if not isinstance(path, str):
        raise ConfigError(f"this Ray object has no experiment_path to read: {describe(value)}")
    metric = getattr(analysis, "default_metric", None)
    mode = getattr(analysis, "default_mode", None)
    return path, metric if isinstance(metric, str) else None, mode if mode in ("min", "max") else None


def read_ray_experiment(path: str | os.PathLike[str], metric: str | None = None,
                        mode: str | None = None) -> RayRun:
    """Read a Ray Tune experiment directory into pbtlab records (see the module docstring)."""
    folder = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.isdir(folder):
        raise ExperimentError(f"no Ray Tune experiment directory at {folder}")
    state_path, state_files = find_state_files(folder)
    trial_states, state = parse_state(state_path)
    settings = tuner_settings(os.path.join(folder, TUNER_PICKLE))
    metric = metric or settings.get("metric")
    mode = mode or settings.get("mode")
    gaps: list[dict[str, Any]] = []

    trials: list[RayTrial] = []
    for trial, meta in trial_states:
        logdir = trial.get("relative_logdir") or os.path.basename(str(trial.get("logdir") or "").rstrip("/"))
        relative = str(logdir or trial["trial_id"])
        tag = str(trial.get("experiment_tag") or "")
        unresolved = trial.get("_Trial__unresolved_config")
        found = trial.get("config")
        config: dict[str, Any] = found if isinstance(found, dict) else {}
        trials.append(RayTrial(str(trial["trial_id"]), 0, tag, relative, str(trial["status"]), dict(config),
                             dict(unresolved) if isinstance(unresolved, dict) else {}, meta,
                             trial.get("stopping_criterion")))
    trials.sort(key=lambda t: t.trial_id)
    for index, entry in enumerate(trials):
        entry.index = index
        read_rows(folder, entry, gaps)
    return _assemble(folder, trials, trainable_name(trial_states), state, state_files, settings, metric, mode, gaps)


def _assemble(folder: str, trials: list[RayTrial], trainable: str | None, state: Mapping[str, Any],
              state_files: Sequence[str], settings: Mapping[str, Any], metric: str | None, mode: str | None,
              gaps: list[dict[str, Any]]) -> RayRun:
    """Trials with their rows (and the policy logs in ``folder``, if any) into pbtlab's records."""
    by_index = {}
    for trial in trials:
        match = TAG_INDEX.match(trial.tag)
        if match:
            by_index[match.group(1)] = trial
    exploits = read_policy_log(folder, by_index, trials, gaps)
    place_exploits(trials, exploits, gaps)
    checkpoint_names = name_checkpoints(trials, exploits, gaps)
    sign = {"max": 1.0, "min": -1.0}.get(mode or "", math.nan)
    param_columns = find_param_columns(trials, exploits)
    events, restored = build_events(folder, trials, exploits, checkpoint_names, sign, metric, state, state_files, settings,
                               gaps)
    rows = {}
    for trial in trials:
        finished = []
        for number, row in enumerate(trial.rows):
            row = dict(row)
            row["restored_from"] = restored.get((trial.trial_id, number))
            name = checkpoint_names.get((trial.trial_id, number))
            if "checkpoint_dir_name" in row or name is not None:
                row["checkpoint_dir_name"] = name
            finished.append(row)
        rows[trial.trial_id] = tuple(finished)

    created = (state.get("stats") or {}).get("start_time")
    experiment = {
        "name": os.path.basename(folder.rstrip("/")), "trainable": trainable,
        "metric": metric, "mode": mode, "num_samples": len(trials), "param_space": None,
        "scheduler": {"name": settings.get("scheduler"), **{k: settings[k] for k in (
            "time_attr", "perturbation_interval", "quantile_fraction", "resample_probability", "perturbation_factors",
            "synch") if k in settings}, "metric": metric, "mode": mode} if settings.get("scheduler") else None,
        "stop": trials[0].stop if trials else None, "max_failures": settings.get("max_failures"),
        "num_to_keep": settings.get("num_to_keep"), "executor": "ray tune", "param_columns": param_columns,
        "trial_ids": [t.trial_id for t in trials],
        "created": datetime.datetime.fromtimestamp(created).isoformat(timespec="seconds")
        if isinstance(created, (int, float)) else None,
        "source": "ray", "ray_state_file": os.path.basename(state_files[-1]) if state_files else None,
        "gaps": [g["message"] for g in gaps],
    }
    records = tuple(trial_record(folder, trial, rows[trial.trial_id]) for trial in trials)
    return RayRun(folder, experiment, records, rows, tuple(events))


def read_ray_result_grid(grid: Any, path: str, metric: str | None = None, mode: str | None = None) -> RayRun:
    """Ray's live ``ResultGrid`` from the data it holds in memory, when its directory cannot be read.

    Ray's grid keeps each trial's config, error and rows (what its ``metrics_dataframe`` loaded), but
    not the policy log: no exploit is known, and restarts with a new config are reported as gaps.
    """
    gaps: list[dict[str, Any]] = [{
        "trial_id": None, "what": "experiment directory",
        "message": f"{path} cannot be read here, so this comes from the ResultGrid in memory: without "
                   f"{POLICY_LOG} no exploit is known (restarts with a new config are listed as gaps)"}]
    trials = []
    for result in grid:
        metrics = dict(getattr(result, "metrics", None) or {})
        trial_id = str(metrics.get("trial_id") or os.path.basename(str(result.path)))
        folder = os.path.basename(str(result.path).rstrip("/"))
        match = re.search(rf"{re.escape(trial_id)}_(.*?)(_\d{{4}}-\d{{2}}-\d{{2}}_\d{{2}}-\d{{2}}-\d{{2}})?$", folder)
        tag = match.group(1) if match else ""
        frame = getattr(result, "metrics_dataframe", None)
        rows = [unflatten_record(r) for r in frame.to_dict("records")] if frame is not None else []
        error = getattr(result, "error", None)
        status = "ERROR" if error is not None else "TERMINATED"
        meta = {"error_text": f"{type(error).__name__}: {error}" if error is not None else "",
                "num_failures": 1 if error is not None else 0}
        trial = RayTrial(trial_id, 0, tag, folder, status, dict(result.config or {}), {}, meta, None)
        trial.rows = rows
        trial.initial_config = dict(rows[0]["config"]) if rows and isinstance(rows[0].get("config"), dict) else {}
        trials.append(trial)
    trials.sort(key=lambda t: t.trial_id)
    for index, trial in enumerate(trials):
        trial.index = index
    return _assemble(path, trials, None, {}, [], {}, metric, mode, gaps)
