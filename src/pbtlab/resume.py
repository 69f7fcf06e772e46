"""Resuming an experiment from its saved state: ``Tuner.restore(path, trainable)``, ``pbtlab resume``.

The controller saves ``state.json`` at *consistent cuts*: moments when every live trial is exactly
at a checkpoint (or has nothing to lose), after flushing every result row and event. Resuming:

1. drops the rows and events written after the last saved state (they describe training whose
   model state was lost with the driver; the resumed trials report them again),
2. restarts every unfinished trial from the checkpoint the state names (its own latest, or the
   donor's when an exploit was decided but not yet carried out),
3. restores the scheduler's state (synchronous barrier, scores, random generator).

So a seeded synchronous run that is killed and resumed makes the same decisions as one that never
stopped. Nothing here unpickles anything: the state is JSON.

    >>> results = Tuner.restore("pbtlab_results/train_func_2026-11-28_12-00-00", train_func).fit()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Mapping
from typing import Any

import numpy as np

from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, check_tuner_arguments
from pbtlab.errors import ConfigError, ExperimentError, describe
from pbtlab.executors.base import make_executor
from pbtlab.schedulers.base import FIFOScheduler, TrialScheduler
from pbtlab.store import (
    EVENTS_FILE,
    EXPERIMENT_FILE,
    FORMAT_VERSION,
    RESULT_FILE,
    STATE_FILE,
    ExperimentStore,
    dumps,
    iter_jsonl,
    read_json,
    truncate_lines,
)


def _read_experiment(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not os.path.isdir(path):
        raise ExperimentError(f"no experiment directory at {path}")
    experiment = read_json(os.path.join(path, EXPERIMENT_FILE), "experiment settings (experiment.json)")
    state = read_json(os.path.join(path, STATE_FILE), "experiment state (state.json)")
    for name, value, keys in ((EXPERIMENT_FILE, experiment, ("trial_ids", "scheduler", "seed")),
                              (STATE_FILE, state, ("trials", "scheduler", "rows_written", "events_written"))):
        if not isinstance(value, dict) or any(k not in value for k in keys):
            raise ExperimentError(f"{os.path.join(path, name)} is not a pbtlab {name} (missing {list(keys)})")
    if state.get("format_version") != FORMAT_VERSION:
        raise ExperimentError(
            f"{os.path.join(path, STATE_FILE)} has format version {state.get('format_version')!r}; "
            f"this pbtlab reads version {FORMAT_VERSION}")
    return experiment, state


def make_restored_tuner(cls: Any, path: str, trainable: Any, param_space: Any, tune_config: Any,
                        run_config: Any) -> Any:
    """Check the directory now (clear errors before anything runs); the work happens in ``fit()``."""
    check_tuner_arguments("Tuner.restore", trainable, param_space, tune_config, run_config)
    path = os.path.abspath(path)
    _read_experiment(path)
    tuner = cls.__new__(cls)
    tuner.trainable = trainable
    tuner.param_space = dict(param_space or {})
    tuner.tune_config = tune_config
    tuner.run_config = run_config
    tuner._restore_path = path
    tuner._restore_options = {}
    return tuner


def _rebuild_scheduler(experiment: Mapping[str, Any], tune_config: TuneConfig | None) -> TrialScheduler:
    description = experiment["scheduler"]
    if tune_config is not None and tune_config.scheduler is not None:
        scheduler: TrialScheduler = tune_config.scheduler
        if type(scheduler).__name__ != description.get("type"):
            raise ConfigError(
                f"the run used a {description.get('type')} scheduler; Tuner.restore got a "
                f"{type(scheduler).__name__}; pass the same kind of scheduler")
    elif description.get("type") == "PopulationBasedTraining":
        from pbtlab.schedulers.pbt import PopulationBasedTraining

        scheduler = PopulationBasedTraining.from_description(description)
    elif description.get("type") == "FIFOScheduler":
        scheduler = FIFOScheduler()
    else:
        raise ConfigError(
            f"cannot rebuild a {description.get('type')} scheduler from experiment.json; pass it: "
            "Tuner.restore(path, trainable, tune_config=TuneConfig(scheduler=...))")
    return scheduler


def _rebuild_run_config(experiment: Mapping[str, Any], path: str, run_config: RunConfig | None,
                        options: Mapping[str, Any]) -> RunConfig:
    if run_config is not None:
        config = RunConfig(**{**run_config.__dict__, "name": os.path.basename(path),
                              "storage_path": os.path.dirname(path)})
    else:
        stop = experiment.get("stop")
        if stop is not None and not isinstance(stop, Mapping):
            raise ConfigError(
                f"the run stopped trials with a function ({stop}), which cannot be rebuilt from experiment.json; "
                "pass it again: Tuner.restore(path, trainable, run_config=RunConfig(stop=...))")
        config = RunConfig(
            name=os.path.basename(path), storage_path=os.path.dirname(path), stop=stop,
            failure_config=FailureConfig(max_failures=int(experiment.get("max_failures", 0))),
            checkpoint_config=CheckpointConfig(num_to_keep=experiment.get("num_to_keep")),
            executor=experiment.get("executor", "inprocess"), verbose=experiment.get("verbose"),
            state_save_period_s=experiment.get("state_save_period_s", 1.0))
    if "verbose" in options:
        config.verbose = options["verbose"]
    return config


def resume_controller(tuner: Any) -> Any:
    """Build a controller that continues the experiment at ``tuner._restore_path``."""
    from pbtlab.tuner import Controller, Trial, TrialStatus

    path: str = tuner._restore_path
    experiment, state = _read_experiment(path)
    scheduler = _rebuild_scheduler(experiment, tuner.tune_config)
    metric, mode = experiment.get("metric"), experiment.get("mode")
    if not scheduler.set_search_properties(metric, mode):
        raise ConfigError(f"the scheduler's metric/mode differ from the run's ({metric!r}, {mode!r})")
    scheduler.set_rng(np.random.default_rng(int(experiment["seed"])))
    scheduler.load_state_dict(state["scheduler"])
    tune_config = tuner.tune_config or TuneConfig(
        metric=metric, mode=mode, seed=int(experiment["seed"]),
        max_concurrent_trials=experiment.get("max_concurrent_trials"))
    run_config = _rebuild_run_config(experiment, path, tuner.run_config, tuner._restore_options)

    store = ExperimentStore(path)
    rows_written = {str(k): int(v) for k, v in state["rows_written"].items()}
    events_written = int(state["events_written"])
    for trial_id in experiment["trial_ids"]:
        truncate_lines(os.path.join(path, trial_id, RESULT_FILE), rows_written.get(trial_id, 0))
    truncate_lines(os.path.join(path, EVENTS_FILE), events_written)
    store.rows_written = {tid: rows_written.get(tid, 0) for tid in experiment["trial_ids"]}
    store._results = {tid: [] for tid in experiment["trial_ids"]}
    store.events_written = events_written
    events = list(iter_jsonl(os.path.join(path, EVENTS_FILE), "event log (events.jsonl)"))
    _sweep_deleted_checkpoints(path, events)
    if getattr(scheduler, "log_config", False):
        rebuild_policy_files(path, events)

    restart_errored = bool(tuner._restore_options.get("restart_errored", False))
    trials = [Trial.from_dict(record) for record in state["trials"]]
    resumed = []
    for trial in trials:
        if trial.status is TrialStatus.ERROR and restart_errored:
            trial.error = None
            trial.num_failures = 0
            trial.status = TrialStatus.PENDING
        if trial.is_finished:
            continue
        if not trial.pending_restart:
            trial.restore = trial.latest
            trial.restore_reason = "resume"
        trial.status = TrialStatus.PENDING
        resumed.append(trial.trial_id)
    varying = experiment.get("param_columns", [])
    controller = Controller(tuner.trainable, store, trials, scheduler, make_executor(run_config.executor),
                            tune_config, run_config, list(varying), metric, mode)
    controller.event("experiment_resume", resumed_trials=resumed, state_saved_at=state.get("saved_at"),
                     dropped_rows={tid: n for tid, n in rows_written.items()}, events_kept=events_written)
    return controller


def _sweep_deleted_checkpoints(path: str, events: list[dict[str, Any]]) -> None:
    """Finish deletions that were recorded but cut short by the crash."""
    for event in events:
        if event.get("event") == "checkpoint_deleted":
            target = os.path.join(path, event["checkpoint"])
            if os.path.isdir(target):
                shutil.rmtree(target, ignore_errors=True)


def rebuild_policy_files(path: str, events: list[dict[str, Any]]) -> None:
    """Rewrite Ray's ``pbt_global.txt`` / ``pbt_policy_<trial>.txt`` from the exploit events kept."""
    for name in os.listdir(path):
        if name == "pbt_global.txt" or (name.startswith("pbt_policy_") and name.endswith(".txt")):
            os.remove(os.path.join(path, name))
    store = ExperimentStore(path)
    new_configs = {e["seq"] - 1: e.get("new_config") for e in events if e.get("event") == "explore"}
    for event in events:
        if event.get("event") != "exploit":
            continue
        row = [event.get("target_tag"), event.get("donor_tag"), event["target_iteration"], event["donor_iteration"],
               event["donor_config"], new_configs.get(event["seq"])]
        line = dumps(row)
        store.append_policy("pbt_global.txt", line)
        store.append_policy(f"pbt_policy_{event['trial_id']}.txt", line,
                            copy_from=f"pbt_policy_{event['donor']}.txt")


def _import_trainable(spec: str) -> Any:
    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        raise ConfigError(f"--trainable must look like 'package.module:function', got {spec!r}")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"cannot import the trainable's module {module_name!r}: {error}") from None
    for part in qualname.split("."):
        if not hasattr(value, part):
            raise ConfigError(f"module {module_name!r} has no {qualname!r} (for --trainable {spec!r})")
        value = getattr(value, part)
    if not callable(value):
        raise ConfigError(f"--trainable {spec!r} is not a function, got {describe(value)}")
    return value


def resume_run(run_dir: str, trainable: str | None = None, verbose: int | None = None,
               restart_errored: bool = False) -> Any:
    """Continue the run in ``run_dir`` (what ``pbtlab resume`` does); returns its ResultGrid."""
    from pbtlab.tuner import Tuner

    path = os.path.abspath(run_dir)
    experiment, _ = _read_experiment(path)
    spec = trainable or experiment.get("trainable_path")
    if not spec:
        raise ConfigError(
            f"the run's trainable ({experiment.get('trainable')}) was defined in a script or closure and cannot be "
            "imported again; pass --trainable package.module:function, or call Tuner.restore(path, trainable)")
    tuner = Tuner.restore(path, _import_trainable(spec))
    if verbose is not None:
        tuner._restore_options["verbose"] = verbose
    tuner._restore_options["restart_errored"] = restart_errored
    return tuner.fit()
