"""The one place a controller is built: :func:`new_run` for a new experiment, :func:`resumed_run` to continue one.

Resuming (``Tuner.restore(path, trainable)``, ``pbtlab resume``) works from ``state.json``, which holds
each trial at its own *recovery point* (its latest registered checkpoint, its end, or a decision about
it; see ``pbtlab.rundir.records.RunState``):

1. each trial's rows past its recovery point are dropped, and events past the saved state (the training
   they describe was lost with the driver; the resumed trials report it again);
2. every unfinished trial restarts from the checkpoint its recovery point names (its own latest, or the
   donor's when an exploit was decided), so it loses at most its work since that checkpoint; a trial
   that finished before the crash is not run again;
3. the scheduler is rebuilt as its own class from ``experiment.json`` (or taken from the caller) and
   gets back its state as at the save (synchronous barrier, scores, random generator);
4. the time budget continues from the time already spent.

So a seeded synchronous run that is killed and resumed makes the same decisions as one that never
stopped. Nothing here unpickles anything: every file is JSON.

    >>> controller = resumed_run("pbtlab_results/train_func_2026-11-28_12-00-00", train_func)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from typing import Any

from pbtlab import lazy_dataclass
from pbtlab.config import (
    CheckpointConfig,
    FailureConfig,
    RunConfig,
    TuneConfig,
    config_from_stored,
    overridden,
    stored_config,
)
from pbtlab.engine import policy_log
from pbtlab.engine.controller import Controller, format_tag_value
from pbtlab.engine.trial import PendingRestart, Trial, TrialStatus, TrialView
from pbtlab.errors import ConfigError, ExperimentError, describe
from pbtlab.executors.base import make_executor
from pbtlab.nested import column_paths
from pbtlab.progress import logger
from pbtlab.rundir.records import (
    EventKind,
    ExperimentResume,
    ExperimentSpec,
    ExperimentStart,
    RunState,
    TrialAdd,
)
from pbtlab.resources import Resources, declares_resources, resources_for
from pbtlab.rng import spawn_streams
from pbtlab.schedulers.base import TrialScheduler, class_path
from pbtlab.schedulers.fifo import FIFOScheduler
from pbtlab.space import Domain, GridSearch, resolve_param_space, resolved_leaves
from pbtlab.rundir.store import (
    EVENTS_FILE,
    EXPERIMENT_FILE,
    RESULT_FILE,
    STATE_FILE,
    ExperimentStore,
    inside_run,
    iter_jsonl,
    line_cut,
    read_json,
)
from pbtlab.trainable import wrap_trainable

__all__ = [
    "BUILT_IN_EXECUTORS", "can_restore", "check_resume", "DEFAULT_STORAGE", "import_trainable", "new_run",
    "read_run", "resumed_run", "ResumeOptions", "scheduler_from_description", "spec_name",
]

DEFAULT_STORAGE = "pbtlab_results"
#: Executors a resume can build by name (``RunConfig(executor=...)``).
BUILT_IN_EXECUTORS = ("inprocess", "greenlets", "process", "ray")

#: Schedulers experiment.json named by type only (written before ``describe()`` recorded the class).
_KNOWN_SCHEDULERS = {
    "PopulationBasedTraining": "pbtlab.schedulers.pbt:PopulationBasedTraining",
    "FIFOScheduler": "pbtlab.schedulers.fifo:FIFOScheduler",
}


# -- a new run ------------------------------------------------------------------------------------------


def new_run(trainable: Callable[..., Any], param_space: Mapping[str, Any], tune_config: TuneConfig,
            run_config: RunConfig) -> Controller:
    """Sample the trials, create the experiment directory and record the start; returns the controller."""
    scheduler = tune_config.scheduler or FIFOScheduler()
    if not scheduler.set_search_properties(tune_config.metric, tune_config.mode):
        raise ConfigError(
            f"metric/mode are set both in the scheduler ({scheduler.metric!r}, {scheduler.mode!r}) and in "
            f"TuneConfig ({tune_config.metric!r}, {tune_config.mode!r}); set them in one place")
    scheduler.validate()
    metric = tune_config.metric or scheduler.metric
    mode = tune_config.mode or scheduler.mode
    seed = tune_config.seed if tune_config.seed is not None else int.from_bytes(os.urandom(16), "little") % (2**63)
    sample_rng, scheduler_rng = spawn_streams(seed)  # the search space's samples, and the scheduler's choices
    search_alg = tune_config.search_alg  # BasicVariantGenerator (TuneConfig rejects any other searcher)
    configs = (search_alg.resolve(param_space, tune_config.num_samples, sample_rng) if search_alg is not None
               else resolve_param_space(param_space, tune_config.num_samples, sample_rng))
    scheduler.set_rng(scheduler_rng)
    executor = make_executor(run_config.executor)
    path = _experiment_path(trainable, run_config)
    store = ExperimentStore(path)
    prefix = _sha1_hex(f"{seed}".encode())[:5]
    varying = resolved_leaves(param_space)
    trials = []
    for index, config in enumerate(configs):
        trial_id = f"{prefix}_{index:05d}"
        tag = _make_tag(index, config, varying)
        config = scheduler.on_trial_add(trial_id, config, tag)
        trial = Trial(trial_id, index, config, tag, name=f"{spec_name(trainable)}_{trial_id}",
                      trainable_name=spec_name(trainable), evaluated_params=_evaluated_params(config, varying))
        _apply_creators(trial, tune_config, store)
        trial.path = store.trial_dir(trial_id)
        trials.append(trial)
    resources = {t.trial_id: r for t in trials if (r := resources_for(trainable, t.config)) is not None}
    columns = ["/".join(map(str, p)) for p in varying]
    columns += [k for k in column_paths(getattr(scheduler, "hyperparam_mutations", None)) if k not in columns]
    failure = run_config.failure_config or FailureConfig()
    not_stored: dict[str, str] = {}
    stored_tune = {**stored_config(tune_config, not_stored), "metric": metric, "mode": mode, "seed": seed}
    stored_run = stored_config(run_config, not_stored)
    spec = ExperimentSpec(
        name=os.path.basename(path), trainable=spec_name(trainable),
        trainable_path=_import_path(trainable), seed=seed, metric=metric, mode=mode,
        num_samples=tune_config.num_samples, param_space=_describe_space(param_space),
        scheduler=scheduler.describe(),
        stop=run_config.stop if run_config.stop is None or isinstance(run_config.stop, Mapping)
        else repr(run_config.stop),
        max_failures=failure.max_failures, fail_fast=failure.fail_fast,
        num_to_keep=run_config.checkpoint_config.num_to_keep if run_config.checkpoint_config else None,
        executor=executor.name, param_columns=columns, verbose=run_config.verbose,
        max_concurrent_trials=tune_config.max_concurrent_trials, time_budget_s=tune_config.time_budget_s,
        progress_interval_s=run_config.progress_interval_s, state_save_period_s=run_config.state_save_period_s,
        trial_ids=[t.trial_id for t in trials], created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        trial_dirs=dict(store.trial_dirs), trial_resources={k: r.to_dict() for k, r in resources.items()},
        log_to_file=_jsonable_log_to_file(run_config.log_to_file),
        tune_config=stored_tune, run_config=stored_run, not_stored=not_stored)
    store.create(spec.to_dict())
    runner = wrap_trainable(trainable, run_config.checkpoint_config or CheckpointConfig(), tune_config.reuse_actors)
    controller = Controller(runner, store, trials, scheduler, executor, tune_config, run_config,
                            columns, metric, mode, resources=resources)
    controller.emit(ExperimentStart, name=spec.name, seed=seed, num_trials=len(trials),
                    scheduler=spec.scheduler, executor=executor.name)
    for trial in trials:
        store.add_trial(trial.trial_id, trial.config)
        controller.emit(TrialAdd, trial_id=trial.trial_id, config=trial.config, tag=trial.tag)
    return controller


def _jsonable_log_to_file(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _apply_creators(trial: Trial, tune_config: TuneConfig, store: ExperimentStore) -> None:
    """``trial_name_creator`` / ``trial_dirname_creator``: called with the trial (a read-only view)."""
    for argument in ("trial_name_creator", "trial_dirname_creator"):
        creator = getattr(tune_config, argument)
        if creator is None:
            continue
        value = creator(TrialView(trial))
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"TuneConfig({argument}) must return a non-empty str, got {describe(value)} for "
                              f"trial {trial.trial_id}")
        if argument == "trial_name_creator":
            trial.name = value
            continue
        if os.sep in value or value in (".", "..") or (os.altsep and os.altsep in value):
            raise ConfigError(f"TuneConfig(trial_dirname_creator) must return a folder name without "
                              f"'{os.sep}', got {value!r} for trial {trial.trial_id}")
        if value in store.trial_dirs.values() or value in ("checkpoints",) or value.endswith((".json", ".jsonl")):
            raise ConfigError(f"TuneConfig(trial_dirname_creator) returned {value!r} for trial {trial.trial_id}, "
                              "which another trial or a run file already uses; return a unique folder name")
        store.trial_dirs[trial.trial_id] = value


def _sha1_hex(data: bytes) -> str:
    """``hashlib.sha1(data).hexdigest()`` from CPython's own SHA-1 (``_sha1``) where there is one: ``hashlib``
    loads OpenSSL first, about 4 ms of a short run's process.

        >>> _sha1_hex(b"0")[:5]
        'b6589'
    """
    try:
        from _sha1 import sha1  # type: ignore[import-not-found]
    except ImportError:  # a CPython built without its own hashes
        from hashlib import sha1
    return sha1(data).hexdigest()


def spec_name(trainable: Any) -> str:
    """The trainable's name, as in Ray's trial names (``train_func_a1b2c_00000``)."""
    return str(getattr(trainable, "__name__", None) or type(trainable).__name__)


def _experiment_path(trainable: Any, run_config: RunConfig) -> str:
    name = run_config.name or f"{getattr(trainable, '__name__', 'trainable')}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    storage = os.path.abspath(os.fspath(run_config.storage_path or DEFAULT_STORAGE))
    path = os.path.join(storage, name)
    if os.path.exists(os.path.join(path, EXPERIMENT_FILE)):
        # Never write into another run. A script run twice with the same RunConfig(name) (as Ray users do)
        # gets the next free folder, and the log says where it went and how to continue the old run.
        for n in range(1, 10_000):
            if not os.path.exists(f"{path}_{n}"):
                if run_config.name:
                    logger.warning(f"[pbtlab] RunConfig(name={name!r}): an experiment already exists at {path}; "
                                   f"this run goes to {path}_{n}. To continue the old one instead: "
                                   f"Tuner.restore({path!r}, trainable)")
                return f"{path}_{n}"
        raise ExperimentError(f"cannot find a free experiment directory next to {path}")
    return path


def _leaf(config: Mapping[str, Any], path: tuple[Any, ...]) -> Any:
    value: Any = config
    for key in path:
        value = value[key] if isinstance(value, (dict, list)) else None
    return value


def _evaluated_params(config: Mapping[str, Any], paths: list[tuple[Any, ...]]) -> dict[str, Any]:
    """What was sampled for a trial, by ``a/b`` path (Ray's ``trial.evaluated_params``)."""
    return {"/".join(map(str, path)): _leaf(config, path) for path in paths}


def _make_tag(index: int, config: Mapping[str, Any], paths: list[tuple[Any, ...]]) -> str:
    parts = []
    for path in paths:
        parts.append(f"{'/'.join(map(str, path))}={format_tag_value(_leaf(config, path))}")
    text = ",".join(parts)
    return f"{index}_{text}" if text else str(index)


def _import_path(fn: Any) -> str | None:
    """``module:qualname`` of a function that can be imported again (for ``pbtlab resume``), else None."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def _describe_space(space: Any) -> Any:
    if isinstance(space, Mapping):
        return {str(k): _describe_space(v) for k, v in space.items()}
    if isinstance(space, list):
        return [_describe_space(v) for v in space]
    if isinstance(space, (Domain, GridSearch)):
        return repr(space)
    if isinstance(space, (int, float, str, bool)) or space is None:
        if isinstance(space, float) and not math.isfinite(space):
            return repr(space)
        return space
    return repr(space)


# -- a resumed run --------------------------------------------------------------------------------------


def read_run(path: str) -> tuple[ExperimentSpec, RunState]:
    """The experiment's settings and its last saved state; clear errors for a missing or foreign directory."""
    if not os.path.isdir(path):
        raise ExperimentError(f"no experiment directory at {path}")
    experiment_file = os.path.join(path, EXPERIMENT_FILE)
    state_file = os.path.join(path, STATE_FILE)
    experiment = read_json(experiment_file, "experiment settings (experiment.json)")
    state = read_json(state_file, "experiment state (state.json)")
    if not isinstance(experiment, Mapping):
        raise ExperimentError(f"{experiment_file} is not a pbtlab experiment.json (not a JSON object)")
    return ExperimentSpec.from_dict(experiment, experiment_file), RunState.from_dict(state, state_file)


def check_resume(path: str, tune_config: TuneConfig | None = None, run_config: RunConfig | None = None) -> None:
    """Raise now what resuming the run at ``path`` with these settings would raise (``Tuner.restore``)."""
    experiment, _ = read_run(path)
    _resumed_scheduler(experiment, tune_config)
    _resumed_configs(experiment, path, tune_config, run_config, None, warn=False)


def can_restore(path: str | os.PathLike[str]) -> bool:
    """Is there an experiment at ``path`` that ``Tuner.restore`` can continue?"""
    try:
        read_run(os.path.abspath(os.fspath(path)))
    except (ExperimentError, OSError):
        return False
    return True


def scheduler_from_description(description: Mapping[str, Any]) -> TrialScheduler:
    """Rebuild the scheduler a run used, as its own class, from ``describe()`` output in experiment.json."""
    kind = description.get("type")
    spec = description.get("class") or _KNOWN_SCHEDULERS.get(str(kind))
    if not spec:
        raise ConfigError(
            f"cannot rebuild a {kind} scheduler from experiment.json; pass it: "
            "Tuner.restore(path, trainable, tune_config=TuneConfig(scheduler=...))")
    cls = _import_object(str(spec), "the run's scheduler")
    if not (isinstance(cls, type) and issubclass(cls, TrialScheduler)):
        raise ConfigError(f"experiment.json names the scheduler {spec!r}, which is not a TrialScheduler class")
    return cls.from_description(description)


def _import_object(spec: str, what: str) -> Any:
    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        raise ConfigError(f"{what} must look like 'package.module:Name', got {spec!r}")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"cannot import {what} from module {module_name!r}: {error}") from None
    for part in qualname.split("."):
        if not hasattr(value, part):
            raise ConfigError(f"module {module_name!r} has no {qualname!r} ({what}: {spec!r})")
        value = getattr(value, part)
    return value


def import_trainable(spec: str) -> Callable[..., Any]:
    """The trainable named ``package.module:function`` (``pbtlab resume --trainable``)."""
    value = _import_object(spec, "--trainable")
    if not callable(value):
        raise ConfigError(f"--trainable {spec!r} is not a function, got {describe(value)}")
    return value  # type: ignore[no-any-return]


def _resumed_scheduler(experiment: ExperimentSpec, tune_config: TuneConfig | None) -> TrialScheduler:
    if tune_config is not None and tune_config.scheduler is not None:
        scheduler: TrialScheduler = tune_config.scheduler
        recorded = experiment.scheduler.get("class") or experiment.scheduler.get("type")
        given = class_path(type(scheduler)) if experiment.scheduler.get("class") else type(scheduler).__name__
        if recorded != given:
            raise ConfigError(
                f"the run used a {experiment.scheduler.get('type')} scheduler ({recorded}); Tuner.restore got a "
                f"{type(scheduler).__name__} ({given}); pass the same kind of scheduler")
        return scheduler
    return scheduler_from_description(experiment.scheduler)


def _stored_settings(experiment: ExperimentSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's stored TuneConfig and RunConfig fields (rebuilt from the older flat fields for a run
    written before the configs were stored whole)."""
    tune = dict(experiment.tune_config or {
        "num_samples": experiment.num_samples, "max_concurrent_trials": experiment.max_concurrent_trials,
        "time_budget_s": experiment.time_budget_s})
    tune.update(metric=experiment.metric, mode=experiment.mode, seed=int(experiment.seed))
    run: dict[str, Any]
    if experiment.run_config is not None:
        run = dict(experiment.run_config)
        if "executor" not in run and experiment.executor in BUILT_IN_EXECUTORS:
            run["executor"] = experiment.executor  # an Executor object: the same kind, with its defaults
        return tune, run
    run = {
        "failure_config": {"max_failures": int(experiment.max_failures), "fail_fast": bool(experiment.fail_fast)},
        "checkpoint_config": {"num_to_keep": experiment.num_to_keep}, "executor": experiment.executor,
        "verbose": experiment.verbose, "progress_interval_s": experiment.progress_interval_s,
        "state_save_period_s": experiment.state_save_period_s, "log_to_file": experiment.log_to_file}
    if experiment.stop is None or isinstance(experiment.stop, Mapping):
        run["stop"] = experiment.stop
    return tune, run


#: How to pass again a setting experiment.json could not hold (``ExperimentSpec.not_stored``).
_PASS_AGAIN = {
    "RunConfig.stop": "run_config=RunConfig(stop=...)",
    "RunConfig.callbacks": "run_config=RunConfig(callbacks=[...])",
    "RunConfig.executor": "run_config=RunConfig(executor=...)",
}


def _resumed_configs(experiment: ExperimentSpec, path: str, tune_config: TuneConfig | None,
                     run_config: RunConfig | None, verbose: int | None,
                     warn: bool = True) -> tuple[TuneConfig, RunConfig]:
    """The run's own TuneConfig and RunConfig, rebuilt from experiment.json; fields the caller set (not at
    their defaults) replace the stored ones. A setting the run had but could not store, and the caller did
    not pass again, is named: an error for a stop function (it decides when trials end), else a warning
    (``warn=False``: only the errors, for checking early)."""
    stored_tune, stored_run = _stored_settings(experiment)
    tune = config_from_stored(TuneConfig, stored_tune)
    run = config_from_stored(RunConfig, stored_run, name=os.path.basename(path), storage_path=os.path.dirname(path))
    if tune_config is not None:
        for name in ("metric", "mode", "seed"):
            given, recorded = getattr(tune_config, name), getattr(tune, name)
            if given is not None and given != recorded:
                raise ConfigError(f"Tuner.restore(tune_config=TuneConfig({name}={given!r})): the run at {path} has "
                                  f"{name}={recorded!r}; leave {name} unset (or the same) to continue it")
        tune = overridden(tune, tune_config)
    if run_config is not None:
        run = overridden(run, run_config)
        run.name, run.storage_path = os.path.basename(path), os.path.dirname(path)
    if verbose is not None:
        run.verbose = verbose
    for name, was in experiment.not_stored.items():
        kind, _, field = name.partition(".")
        argument, given, cls = (("tune_config", tune_config, TuneConfig) if kind == "TuneConfig"
                                else ("run_config", run_config, RunConfig))
        if given is not None and hasattr(given, field) and getattr(given, field) != getattr(cls(), field):
            continue  # passed again
        how = f"Tuner.restore(path, trainable, {_PASS_AGAIN.get(name, f'{argument}={kind}({field}=...)')})"
        if name == "RunConfig.stop":
            raise ConfigError(
                f"the run stopped trials with {was}, which cannot be rebuilt from experiment.json; pass it "
                f"again: {how}")
        if not warn:
            continue
        instead = f"; it continues with executor={run.executor or 'inprocess'!r} and its defaults" \
            if name == "RunConfig.executor" else "; it continues without it"
        logger.warning(f"[pbtlab] The run at {path} was started with {field}={was}, which experiment.json "
                       f"cannot hold{instead}. To use it again: {how}")
    return tune, run


@lazy_dataclass.dataclass(frozen=True, slots=True)
class ResumeOptions:
    """What a resume does with each kind of trial (Ray's ``Tuner.restore`` flags).

    ``resume_unfinished``: unfinished trials continue from their latest checkpoint (False: they are
    recorded as terminated, ``trial_complete`` with reason ``not_resumed``). ``resume_errored``: errored
    trials run again from their latest checkpoint. ``restart_errored``: errored trials run again from
    scratch, without loading a checkpoint.
    """

    resume_unfinished: bool = True
    resume_errored: bool = False
    restart_errored: bool = False


def resumed_run(path: str, trainable: Callable[..., Any], *, tune_config: TuneConfig | None = None,
                run_config: RunConfig | None = None, options: ResumeOptions = ResumeOptions(),
                verbose: int | None = None) -> Controller:
    """A controller that continues the experiment at ``path`` from its saved state (see the module docstring).

    Everything that can fail is done first (settings, scheduler, executor, trainable, the paths the run's
    files name); only then are the files cut back to the saved state, so a resume that fails leaves the run
    directory byte for byte as it was."""
    path = os.path.abspath(path)
    experiment, state = read_run(path)
    scheduler = _resumed_scheduler(experiment, tune_config)
    metric, mode = experiment.metric, experiment.mode
    if not scheduler.set_search_properties(metric, mode):
        raise ConfigError(f"the scheduler's metric/mode differ from the run's ({metric!r}, {mode!r})")
    scheduler.set_rng(spawn_streams(int(experiment.seed))[1])
    scheduler.load_state_dict(state.scheduler)
    tune_config, run_config = _resumed_configs(experiment, path, tune_config, run_config, verbose)

    store = ExperimentStore(path)
    store.trial_dirs = dict(experiment.trial_dirs)
    events_file = os.path.join(path, EVENTS_FILE)
    events = list(iter_jsonl(events_file, "event log (events.jsonl)", limit=state.events_written))
    deletions = _recorded_deletions(path, events)
    trials = [Trial.from_dict(record) for record in state.trials]
    _check_paths(path, experiment, trials, store)
    cuts = {trial_id: line_cut(os.path.join(store.trial_dir(trial_id), RESULT_FILE), state.rows_written.get(trial_id, 0))
            for trial_id in experiment.trial_ids}
    cuts[EVENTS_FILE] = line_cut(events_file, state.events_written)
    resumed, not_resumed = [], []
    for trial in trials:
        trial.path = store.trial_dir(trial.trial_id)
        trial.name = trial.name or f"{experiment.trainable}_{trial.trial_id}"
        trial.trainable_name = experiment.trainable
        if trial.status is TrialStatus.ERROR and (options.resume_errored or options.restart_errored):
            trial.error = None
            trial.num_failures = 0
            trial.status = TrialStatus.PENDING
            if options.restart_errored and not options.resume_errored:
                trial.latest = None  # from scratch: its checkpoints stay on disk, but none is loaded
                trial.restart = PendingRestart(None, "resume")
        elif not trial.is_finished and not options.resume_unfinished:
            not_resumed.append(trial)
            continue
        if trial.is_finished:
            continue
        if trial.restart is None or not trial.restart.is_decision:
            trial.restart = PendingRestart(trial.latest, "resume")
        trial.status = TrialStatus.PENDING
        resumed.append(trial.trial_id)
    executor = make_executor(run_config.executor)
    runner = wrap_trainable(trainable, run_config.checkpoint_config or CheckpointConfig(), tune_config.reuse_actors)
    resources = _resumed_resources(experiment, trials, trainable)
    store.rows_written = {tid: state.rows_written.get(tid, 0) for tid in experiment.trial_ids}
    store._results = {tid: [] for tid in experiment.trial_ids}
    store.events_written = state.events_written
    controller = Controller(runner, store, trials, scheduler, executor, tune_config, run_config,
                            list(experiment.param_columns), metric, mode, elapsed_s=state.elapsed_s,
                            resources=resources)

    # -- every check passed: now cut the files back to the saved state and finish what the crash cut short
    dropped = {}
    for name, cut in cuts.items():
        target = events_file if name == EVENTS_FILE else os.path.join(store.trial_dir(name), RESULT_FILE)
        if cut is not None:
            os.truncate(target, cut[0])
        if name != EVENTS_FILE:
            dropped[name] = cut[1] if cut is not None else 0
    for target in deletions:
        shutil.rmtree(target, ignore_errors=True)
    if scheduler.writes_policy_log:
        policy_log.rebuild(path, events)
    controller.emit(ExperimentResume, resumed_trials=resumed, state_saved_at=state.saved_at,
                    dropped_rows=dropped, events_kept=state.events_written)
    for trial in not_resumed:
        controller.retire(trial, "not_resumed")
    return controller


def _resumed_resources(experiment: ExperimentSpec, trials: list[Trial], trainable: Any) -> dict[str, Resources]:
    """Each trial's resources: the trainable's ``with_resources`` if it declares them, else as recorded."""
    if declares_resources(trainable):
        return {t.trial_id: r for t in trials if (r := resources_for(trainable, t.config)) is not None}
    return {trial_id: Resources.parse(value, "experiment.json trial_resources")
            for trial_id, value in experiment.trial_resources.items()}


def _recorded_deletions(path: str, events: list[dict[str, Any]]) -> list[str]:
    """Checkpoint folders whose deletion was recorded but may have been cut short by the crash (to finish
    on resume); an ``ExperimentError`` names any that lies outside the run directory."""
    targets = []
    for event in events:
        if event.get("event") == EventKind.CHECKPOINT_DELETED:
            target = inside_run(path, event.get("checkpoint"), "events.jsonl: a deleted checkpoint")
            if os.path.isdir(target):
                targets.append(target)
    return targets


def _check_paths(path: str, experiment: ExperimentSpec, trials: list[Trial], store: ExperimentStore) -> None:
    """Every trial folder experiment.json names, and every checkpoint state.json names (retention may
    delete it later), lies inside the run; an ``ExperimentError`` names the first that does not."""
    known = set(experiment.trial_ids)
    for trial in trials:
        if trial.trial_id not in known:
            raise ExperimentError(f"state.json names trial {trial.trial_id!r}, which experiment.json does not have "
                                  f"(its trial ids: {sorted(known)})")
    for trial_id in experiment.trial_ids:
        inside_run(path, store.trial_dirs.get(trial_id, trial_id), f"experiment.json: the folder of trial {trial_id}")
    for trial in trials:
        refs = [*trial.checkpoints, trial.latest, trial.restart.checkpoint if trial.restart else None]
        for ref in refs:
            if ref is not None:
                inside_run(path, ref.path, f"state.json: a checkpoint of trial {trial.trial_id}")
