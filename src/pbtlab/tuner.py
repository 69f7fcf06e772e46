"""``Tuner`` and the controller loop: the one place where decisions become side effects.

    >>> from pbtlab import tune, Tuner, TuneConfig
    >>> def trainable(config):
    ...     for step in range(3):
    ...         tune.report({"score": config["x"] * step})
    >>> results = Tuner(trainable, param_space={"x": tune.grid_search([1, 2])},
    ...                 tune_config=TuneConfig(metric="score", mode="max", seed=0),
    ...                 run_config=tune.RunConfig(storage_path=getfixture("tmp_path"), verbose=0)).fit()
    >>> results.get_best_result().config["x"]
    2
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, check_tuner_arguments
from pbtlab.errors import ConfigError, ExperimentError, describe
from pbtlab.executors.base import Executor, make_executor
from pbtlab.progress import StatusReporter, ensure_log_handler, logger, summarize_changes
from pbtlab.schedulers.base import Action, CheckpointRef, Decision, FIFOScheduler, Note, Perturbation, TrialScheduler
from pbtlab.session import (
    CONTINUE,
    STOP,
    Command,
    CommandKind,
    ErrorMessage,
    FinishedMessage,
    ReportMessage,
    StartSpec,
    WorkerMessage,
)
from pbtlab.space import resolve_param_space, resolved_leaves
from pbtlab.store import FORMAT_VERSION, ExperimentStore, dumps

DEFAULT_STORAGE = "pbtlab_results"


class TrialStatus(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"


@dataclasses.dataclass(eq=False)
class Trial:
    """The controller's record of one trial (schedulers read it through ``TrialView``)."""

    trial_id: str
    index: int
    config: dict[str, Any]
    tag: str
    status: TrialStatus = TrialStatus.PENDING
    iteration: int = 0
    time_total_s: float = 0.0
    iterations_since_restore: int = 0
    time_since_restore: float = 0.0
    last_result: dict[str, Any] | None = None
    checkpoints: list[CheckpointRef] = dataclasses.field(default_factory=list)
    latest: CheckpointRef | None = None  # own newest checkpoint, or the one it was restored from
    restore: CheckpointRef | None = None  # to load at the next (re)start
    pending_restart: bool = False
    restored_from: dict[str, Any] | None = None  # written into the next result row
    restore_reason: str | None = None
    num_failures: int = 0
    error: dict[str, Any] | None = None
    next_checkpoint_index: int = 0
    has_worker: bool = False
    dirty: bool = False  # reported since its latest checkpoint

    @property
    def is_finished(self) -> bool:
        return self.status in (TrialStatus.TERMINATED, TrialStatus.ERROR)

    @property
    def is_waiting(self) -> bool:
        return self.status in (TrialStatus.PENDING, TrialStatus.PAUSED)

    @property
    def latest_checkpoint(self) -> CheckpointRef | None:
        return self.latest

    @property
    def orig_tag(self) -> str:
        """The tag the trial was added with (Ray's ``orig_tag``), without ``@perturbed[...]``."""
        return self.tag.split("@perturbed", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id, "index": self.index, "config": self.config, "tag": self.tag,
            "status": self.status.value, "iteration": self.iteration, "time_total_s": self.time_total_s,
            "last_result": self.last_result,
            "checkpoints": [c.to_dict() for c in self.checkpoints],
            "latest": self.latest.to_dict() if self.latest else None,
            "restore": self.restore.to_dict() if self.restore else None,
            "pending_restart": self.pending_restart, "num_failures": self.num_failures,
            "error": self.error, "next_checkpoint_index": self.next_checkpoint_index,
            "restore_reason": self.restore_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        ref = CheckpointRef.from_dict
        return cls(
            trial_id=data["trial_id"], index=int(data["index"]), config=data["config"], tag=data["tag"],
            status=TrialStatus(data["status"]), iteration=int(data["iteration"]),
            time_total_s=float(data["time_total_s"]), last_result=data.get("last_result"),
            checkpoints=[ref(c) for c in data.get("checkpoints", [])],
            latest=ref(data["latest"]) if data.get("latest") else None,
            restore=ref(data["restore"]) if data.get("restore") else None,
            pending_restart=bool(data.get("pending_restart")), num_failures=int(data.get("num_failures", 0)),
            error=data.get("error"), next_checkpoint_index=int(data.get("next_checkpoint_index", 0)),
            restore_reason=data.get("restore_reason"),
        )


def _format_tag_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _make_tag(index: int, config: Mapping[str, Any], paths: list[tuple[Any, ...]]) -> str:
    parts = []
    for path in paths:
        value: Any = config
        for key in path:
            value = value[key] if isinstance(value, (dict, list)) else None
        parts.append(f"{'/'.join(map(str, path))}={_format_tag_value(value)}")
    text = ",".join(parts)
    return f"{index}_{text}" if text else str(index)


def _sanitize(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_\-=.,@\[\]/]", "_", text)


class Population(dict):
    """The trials by id, as schedulers see them, plus how many wait for a slot (without a scan)."""

    def __init__(self, trials: list[Trial], waiting: dict[str, Trial]) -> None:
        super().__init__((t.trial_id, t) for t in trials)
        self._waiting = waiting

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)


class Stopper:
    """Ray-compatible stopper base: ``__call__(trial_id, result) -> bool`` and ``stop_all() -> bool``."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return False


class Controller:
    """Runs an experiment: asks the scheduler, tells the executor, records everything."""

    def __init__(self, trainable: Callable[..., Any], store: ExperimentStore, trials: list[Trial],
                 scheduler: TrialScheduler, executor: Executor, tune_config: TuneConfig,
                 run_config: RunConfig, param_columns: list[str], metric: str | None, mode: str | None) -> None:
        self.trainable = trainable
        self.store = store
        self.trials = trials
        self.scheduler = scheduler
        self.executor = executor
        self.tune_config = tune_config
        self.run_config = run_config
        self.failure_config: FailureConfig = run_config.failure_config or FailureConfig()
        self.checkpoint_config: CheckpointConfig = run_config.checkpoint_config or CheckpointConfig()
        self.param_columns = param_columns
        self.metric = metric
        self.mode = mode
        self.verbose = 2 if run_config.verbose is None else run_config.verbose
        self.running: set[str] = set()
        self.waiting: dict[str, Trial] = {t.trial_id: t for t in trials if t.is_waiting}
        self.by_id = Population(trials, self.waiting)
        self._unchecked: list[str] = list(self.waiting)
        self._failed_epoch: int | None = None
        self._seq = store.num_events
        self._num_dirty = 0
        self._abort: BaseException | None = None
        self._stop_all = False
        self.start_time = time.monotonic()
        self.max_concurrent = tune_config.max_concurrent_trials or executor.default_concurrency(len(trials))
        self._log_policy = bool(getattr(scheduler, "log_config", False))
        self._doomed: list[CheckpointRef] = []  # deleted from disk after the next state save
        self._metric_checked: set[str] = set()
        self._last_save = -math.inf
        self._save_cost = 0.0

    # -- events --------------------------------------------------------------------------------------
    def event(self, kind: str, **fields: Any) -> None:
        record = {"seq": self._seq, "event": kind, "time": time.time(), **fields}
        self._seq += 1
        self.store.append_event(record)

    def log(self, message: str) -> None:
        if self.verbose >= 2:
            logger.info(message)

    def status_counts(self) -> str:
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in counts.items())

    # -- main loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        if self.verbose >= 2:
            ensure_log_handler()
        self.executor.setup(self.trainable, self.max_concurrent)
        self.reporter = StatusReporter(self.verbose, self.run_config.progress_interval_s)  # live on a TTY from here
        try:
            self.save_state()
            while True:
                self._fill_slots()
                if not self.running:
                    if not self.waiting or not self._force_one():
                        break
                trial_id, message = self.executor.wait()
                self._handle(self.by_id[trial_id], message)
                if self._abort is not None:
                    raise self._abort
                if self._stop_all or self._over_budget():
                    self._stop_everything()
                    break
                self.reporter.update(self)
        finally:
            try:
                self.executor.shutdown()
            finally:
                for trial in self.trials:
                    trial.has_worker = False
                self.event("experiment_end", scheduler=self.scheduler.debug_string(),
                           statuses={t.trial_id: t.status.value for t in self.trials})
                if self._num_dirty == 0:
                    self.save_state(durable=True)
                else:
                    # Interrupted (Ctrl-C, an error) between consistent cuts: keep the last consistent state;
                    # what was reported since is on disk, and a resume drops and re-runs it.
                    self.store.flush()
                    logger.warning(f"[pbtlab] Run interrupted; continue it with Tuner.restore({self.store.path!r}, "
                                   f"trainable) or `pbtlab resume {self.store.path}`")
                self.reporter.close(self)

    def _over_budget(self) -> bool:
        budget = self.tune_config.time_budget_s
        return budget is not None and time.monotonic() - self.start_time > budget

    def _stop_everything(self) -> None:
        for trial in self.trials:
            if not trial.is_finished:
                self._terminate(trial, "stop_all" if self._stop_all else "time_budget")

    def _force_one(self) -> bool:
        """Nothing runs but trials wait: start the least advanced one rather than hang (logged)."""
        chosen = self.scheduler.choose_trials_to_run(list(self.waiting.values()), 1, True)
        if not chosen:
            return False
        self.log(f"[pbtlab] No trial was eligible to run; starting {chosen[0]} so the run does not hang.")
        self.event("forced_start", trial_id=chosen[0])
        self._launch(self.by_id[chosen[0]])
        return True

    def _fill_slots(self) -> None:
        free = self.max_concurrent - len(self.running)
        if free <= 0 or not self.waiting:
            return
        epoch = self.scheduler.selection_epoch
        if epoch == self._failed_epoch:
            ids = [tid for tid in self._unchecked if tid in self.waiting]
        else:
            ids = list(self.waiting)
        self._unchecked = []
        if not ids:
            return
        chosen = self.scheduler.choose_trials_to_run([self.waiting[tid] for tid in ids], free)
        self._failed_epoch = epoch if len(chosen) < free else None
        for trial_id in chosen:
            self._launch(self.by_id[trial_id])

    def _set_waiting(self, trial: Trial, status: TrialStatus) -> None:
        trial.status = status
        self.running.discard(trial.trial_id)
        self.waiting[trial.trial_id] = trial
        self._unchecked.append(trial.trial_id)

    def _spec(self, trial: Trial) -> StartSpec:
        checkpoint = trial.restore
        return StartSpec(trial.trial_id, copy.deepcopy(trial.config), self.store.trial_dir(trial.trial_id),
                         self.store.absolute(checkpoint.path) if checkpoint else None, trial.next_checkpoint_index)

    def _launch(self, trial: Trial) -> None:
        self.waiting.pop(trial.trial_id, None)
        restarting = trial.status is TrialStatus.PENDING or trial.pending_restart
        if restarting:
            self._prepare_restore(trial)
            spec = self._spec(trial)
            self.event("trial_start", trial_id=trial.trial_id, config=trial.config, iteration=trial.iteration,
                       checkpoint=trial.restore.path if trial.restore else None, reason=trial.restore_reason)
            trial.restore = None
            trial.pending_restart = False
            if trial.has_worker:
                self.executor.send(trial.trial_id, Command(CommandKind.RESTART, spec))
            else:
                self.executor.start(spec)
                trial.has_worker = True
        else:
            self.executor.send(trial.trial_id, CONTINUE)
        trial.status = TrialStatus.RUNNING
        self.running.add(trial.trial_id)

    def _prepare_restore(self, trial: Trial) -> None:
        checkpoint = trial.restore
        if checkpoint is not None and not os.path.isdir(self.store.absolute(checkpoint.path)):
            checkpoint = self._fall_back(trial, checkpoint)
        if checkpoint is None:
            if trial.restore_reason in ("failure", "resume") and trial.iteration > 0:
                trial.restored_from = {"trial_id": None, "checkpoint": None, "iteration": 0,
                                       "reason": trial.restore_reason}
            trial.iteration = 0
            trial.time_total_s = 0.0
        else:
            trial.iteration = checkpoint.iteration
            trial.time_total_s = checkpoint.time_total_s
            trial.latest = checkpoint
            trial.restored_from = {"trial_id": checkpoint.trial_id, "checkpoint": checkpoint.path,
                                   "iteration": checkpoint.iteration, "reason": trial.restore_reason}
            self.event("trial_restore", trial_id=trial.trial_id, checkpoint=checkpoint.path,
                       from_trial=checkpoint.trial_id, iteration=checkpoint.iteration, reason=trial.restore_reason)
        trial.iterations_since_restore = 0
        trial.time_since_restore = 0.0
        self._set_dirty(trial, False)
        self._prune_all()

    def _fall_back(self, trial: Trial, missing: CheckpointRef) -> CheckpointRef | None:
        """The checkpoint to restart from was deleted outside pbtlab: use the trial's newest own checkpoint
        that still exists (or start from scratch), and say so."""
        trial.checkpoints = [c for c in trial.checkpoints if os.path.isdir(self.store.absolute(c.path))]
        fallback = trial.checkpoints[-1] if trial.checkpoints else None
        trial.restore = fallback
        if trial.latest is not None and trial.latest.path == missing.path:
            trial.latest = fallback
        where = f"its own checkpoint {fallback.path} (iteration {fallback.iteration})" if fallback else "scratch"
        logger.warning(f"[pbtlab] Checkpoint {missing.path} needed to restart trial {trial.trial_id} is missing "
                       f"(deleted outside pbtlab); the trial restarts from {where} with its current config")
        self.event("checkpoint_missing", trial_id=trial.trial_id, checkpoint=missing.path,
                   fallback=fallback.path if fallback else None, reason=trial.restore_reason)
        return fallback

    # -- messages ------------------------------------------------------------------------------------
    def _handle(self, trial: Trial, message: WorkerMessage) -> None:
        if isinstance(message, ReportMessage):
            self._on_report(trial, message)
        elif isinstance(message, FinishedMessage):
            self._on_finished(trial)
        elif isinstance(message, ErrorMessage):
            self._on_error(trial, message)
        else:  # pragma: no cover - executor bug
            raise RuntimeError(f"unexpected message from trial {trial.trial_id}: {message!r}")

    def _set_dirty(self, trial: Trial, dirty: bool) -> None:
        if trial.dirty != dirty:
            self._num_dirty += 1 if dirty else -1
            trial.dirty = dirty

    def _check_metric(self, trial: Trial, reported: Mapping[str, Any]) -> None:
        """On a trial's first report: the metric to rank by must be there (Ray checks this too)."""
        self._metric_checked.add(trial.trial_id)
        if self.metric and self.metric not in reported and not self.scheduler.checks_metric:
            raise ConfigError(
                f"TuneConfig(metric={self.metric!r}) is not in trial {trial.trial_id}'s report: it reported "
                f"{sorted(reported)} (plus the automatic fields). Report it, or set TuneConfig(metric=...) "
                "to one of those")

    def _on_report(self, trial: Trial, message: ReportMessage) -> None:
        if trial.trial_id not in self._metric_checked:
            self._check_metric(trial, message.metrics)
        trial.iteration += 1
        trial.iterations_since_restore += 1
        trial.time_total_s += message.time_this_iter_s
        trial.time_since_restore += message.time_this_iter_s
        result = message.metrics
        result.setdefault("training_iteration", trial.iteration)
        result["time_this_iter_s"] = message.time_this_iter_s
        result["time_total_s"] = trial.time_total_s
        result["timestamp"] = int(time.time())
        result["trial_id"] = trial.trial_id
        result["iterations_since_restore"] = trial.iterations_since_restore
        result["time_since_restore"] = trial.time_since_restore
        result["done"] = False
        result["config"] = trial.config
        result["restored_from"] = trial.restored_from
        trial.restored_from = None
        if message.checkpoint_path is not None:
            ref = CheckpointRef(trial.trial_id, self.store.relative(message.checkpoint_path), trial.iteration,
                                trial.time_total_s, int(message.checkpoint_index or 0))
            result["checkpoint_dir_name"] = os.path.basename(message.checkpoint_path)
            trial.checkpoints.append(ref)
            trial.latest = ref
            trial.next_checkpoint_index = ref.index + 1
            self._set_dirty(trial, False)
            if self.checkpoint_config.num_to_keep is not None:
                self._prune(trial)
        else:
            result["checkpoint_dir_name"] = None
            self._set_dirty(trial, True)
        stop = self._should_stop(trial, result)
        if stop:
            result["done"] = True
        self.store.append_result(trial.trial_id, result)
        trial.last_result = result
        if stop:
            self._terminate(trial, "stop_criterion")
            self._apply(self.scheduler.on_trial_complete(trial.trial_id, self.by_id))
            self._maybe_save()
            return
        decision = self.scheduler.on_trial_result(trial, result, self.by_id)
        self._apply(decision)
        if decision.action is Action.STOP:
            self._terminate(trial, "scheduler")
            self._apply(self.scheduler.on_trial_complete(trial.trial_id, self.by_id))
        elif decision.action is Action.PAUSE or trial.pending_restart:
            self._set_waiting(trial, TrialStatus.PAUSED)
        else:
            self.executor.send(trial.trial_id, CONTINUE)
        self._maybe_save()

    def _should_stop(self, trial: Trial, result: dict[str, Any]) -> bool:
        stop = self.run_config.stop
        if stop is None:
            return False
        if isinstance(stop, Mapping):
            for key, value in stop.items():
                if key not in result:
                    reported = sorted(k for k in result if k != "config")
                    raise ConfigError(
                        f"RunConfig(stop={dict(stop)!r}) names {key!r}, but trial {trial.trial_id} did not report it; "
                        f"it reported {reported}")
                try:
                    reached = result[key] >= value
                except TypeError:
                    raise ConfigError(
                        f"RunConfig(stop={dict(stop)!r}) compares {key!r} with a number, but trial {trial.trial_id} "
                        f"reported {key}={result[key]!r}") from None
                if reached:
                    return True
            return False
        decision = bool(stop(trial.trial_id, result))
        stop_all = getattr(stop, "stop_all", None)
        if callable(stop_all) and stop_all():
            self._stop_all = True
        return decision

    def _on_finished(self, trial: Trial) -> None:
        if trial.last_result is not None:
            trial.last_result["done"] = True
        self._terminate(trial, "function_returned")
        self._apply(self.scheduler.on_trial_complete(trial.trial_id, self.by_id))
        self._maybe_save()

    def _on_error(self, trial: Trial, message: ErrorMessage) -> None:
        trial.num_failures += 1
        max_failures = self.failure_config.max_failures
        retry = not message.usage_error and not self.failure_config.fail_fast and (
            max_failures == -1 or trial.num_failures <= max_failures)
        self.event("trial_error", trial_id=trial.trial_id, iteration=trial.iteration,
                   error_type=message.error_type, message=message.message, traceback=message.traceback,
                   num_failures=trial.num_failures, will_retry=retry)
        self.running.discard(trial.trial_id)
        if retry:
            trial.restore = trial.latest
            trial.restore_reason = "failure"
            where = f"from checkpoint {trial.latest.path} (iteration {trial.latest.iteration})" if trial.latest \
                else "from scratch (it has no checkpoint yet)"
            limit = "unlimited" if max_failures == -1 else str(max_failures)
            logger.warning(f"[pbtlab] Trial {trial.trial_id} failed ({message.error_type}: {message.message}); "
                           f"restart {trial.num_failures}/{limit} {where}")
            self._set_waiting(trial, TrialStatus.PENDING)
            return
        trial.error = {"error_type": message.error_type, "message": message.message,
                       "traceback": message.traceback, "iteration": trial.iteration}
        trial.status = TrialStatus.ERROR
        self.waiting.pop(trial.trial_id, None)
        self._set_dirty(trial, False)
        self.executor.send(trial.trial_id, STOP)
        trial.has_worker = False
        logger.error(f"[pbtlab] Trial {trial.trial_id} errored after {trial.num_failures} failure(s): "
                     f"{message.error_type}: {message.message}\n{message.traceback}")
        self._apply(self.scheduler.on_trial_error(trial.trial_id, self.by_id))
        if self.failure_config.fail_fast:
            from pbtlab.errors import TrialError

            self._abort = TrialError(trial.trial_id, f"{message.error_type}: {message.message}", message.traceback)
        self._maybe_save()

    def _terminate(self, trial: Trial, reason: str) -> None:
        was_running = trial.trial_id in self.running
        trial.status = TrialStatus.TERMINATED
        self.running.discard(trial.trial_id)
        self.waiting.pop(trial.trial_id, None)
        self._set_dirty(trial, False)
        if trial.has_worker:
            self.executor.send(trial.trial_id, STOP)
            trial.has_worker = False
        self.event("trial_complete", trial_id=trial.trial_id, iteration=trial.iteration, reason=reason,
                   was_running=was_running)

    # -- decisions -------------------------------------------------------------------------------------
    def _apply(self, decision: Decision) -> None:
        for note in decision.notes:
            self._note(note)
        for perturbation in decision.perturbations:
            self._perturb(perturbation)

    def _note(self, note: Note) -> None:
        self.event(note.kind, trial_id=note.trial_id, message=note.message, **note.data)
        self.log(note.message)

    def _perturb(self, p: Perturbation) -> None:
        target = self.by_id[p.target]
        if p.donor is not None:
            self.event("exploit", trial_id=p.target, donor=p.donor, target_iteration=p.target_iteration,
                       target_tag=target.orig_tag, donor_tag=self.by_id[p.donor].orig_tag,
                       donor_iteration=p.checkpoint.iteration, checkpoint=p.checkpoint.path,
                       target_score=p.target_score, donor_score=p.donor_score, old_config=p.old_config,
                       donor_config=p.donor_config, time_attr=p.time_attr, time_value=p.time_value)
            self.log(f"[PopulationBasedTraining] [Exploit] Cloning trial {p.donor} (score = {p.donor_score:4f}) "
                     f"into trial {p.target} (score = {p.target_score:4f})")
        self.event("explore", trial_id=p.target, donor=p.donor, iteration=p.checkpoint.iteration,
                   target_iteration=p.target_iteration,
                   changes=[{"param": c.param, "old": c.old, "op": c.op, "new": c.new} for c in p.changes],
                   new_config=p.new_config)
        self.log(f"[PopulationBasedTraining] [Explore] Perturbed the hyperparameter config of trial"
                 f"{p.target}:\n{summarize_changes(p.changes)}\n")
        if self._log_policy and p.donor is not None:
            donor = self.by_id[p.donor]
            row = [target.orig_tag, donor.orig_tag, p.target_iteration, p.checkpoint.iteration, p.donor_config, p.new_config]
            line = dumps(row)
            self.store.append_policy("pbt_global.txt", line)
            self.store.append_policy(f"pbt_policy_{p.target}.txt", line, copy_from=f"pbt_policy_{p.donor}.txt")
        target.config = p.new_config
        values = ",".join(f"{c.param}={_format_tag_value(c.new)}" for c in p.changes)
        target.tag = f"{target.orig_tag}@perturbed[{values}]"
        target.restore = p.checkpoint
        target.restore_reason = "exploit" if p.donor is not None else "explore"
        target.pending_restart = True

    # -- checkpoints ---------------------------------------------------------------------------------
    def _pinned(self) -> set[str]:
        pinned = set(self.scheduler.referenced_checkpoints())
        for trial in self.trials:
            if trial.latest is not None:
                pinned.add(trial.latest.path)
            if trial.restore is not None:
                pinned.add(trial.restore.path)
        return pinned

    def _prune(self, trial: Trial, pinned: set[str] | None = None) -> None:
        keep = self.checkpoint_config.num_to_keep
        if keep is None or len(trial.checkpoints) <= keep:
            return
        pinned = self._pinned() if pinned is None else pinned
        excess = len(trial.checkpoints) - keep
        survivors = []
        for index, ref in enumerate(trial.checkpoints):
            if excess > 0 and index < len(trial.checkpoints) - keep and ref.path not in pinned:
                self._delete_checkpoint(ref)
                excess -= 1
            else:
                survivors.append(ref)
        trial.checkpoints = survivors

    def _prune_all(self) -> None:
        if self.checkpoint_config.num_to_keep is None:
            return
        pinned = self._pinned()
        for trial in self.trials:
            self._prune(trial, pinned)

    def _delete_checkpoint(self, ref: CheckpointRef) -> None:
        """Retire a checkpoint: recorded now, removed from disk once a saved state no longer names it.

        Deleting only after the next state save means a run resumed from the previous state still
        finds every checkpoint that state refers to.
        """
        self.event("checkpoint_deleted", trial_id=ref.trial_id, checkpoint=ref.path, iteration=ref.iteration)
        self._doomed.append(ref)

    # -- state -----------------------------------------------------------------------------------------
    def _maybe_save(self) -> None:
        """Save at consistent cuts: every live trial is exactly at a checkpoint (or has none to lose);
        at most once per ``RunConfig(state_save_period_s)``, and (as Ray's automatic period) rarely
        enough that saving takes at most 5% of the run."""
        if self._num_dirty:
            return
        period = max(self.run_config.state_save_period_s, 20 * self._save_cost) \
            if self.run_config.state_save_period_s > 0 else 0.0
        if time.monotonic() - self._last_save >= period:
            self.save_state()

    def save_state(self, durable: bool = False) -> None:
        started = time.monotonic()
        self.store.save_state({
            "format_version": FORMAT_VERSION,
            "trials": [t.to_dict() for t in self.trials],
            "scheduler": self.scheduler.state_dict(),
            "next_seq": self._seq,
            "saved_at": time.time(),
        }, durable=durable)
        if self._doomed:
            import shutil

            for ref in self._doomed:
                shutil.rmtree(self.store.absolute(ref.path), ignore_errors=True)
            self._doomed.clear()
        self._last_save = time.monotonic()
        self._save_cost = self._last_save - started


class Tuner:
    """Ray Tune's ``Tuner``: ``Tuner(trainable, param_space=..., tune_config=..., run_config=...).fit()``."""

    def __init__(self, trainable: Callable[..., Any], *, param_space: Mapping[str, Any] | None = None,
                 tune_config: TuneConfig | None = None, run_config: RunConfig | None = None) -> None:
        check_tuner_arguments("Tuner", trainable, param_space, tune_config, run_config)
        self.trainable = trainable
        self.param_space = dict(param_space or {})
        self.tune_config = tune_config or TuneConfig()
        self.run_config = run_config or RunConfig()
        self._restore_path: str | None = None
        self._restore_options: dict[str, Any] = {}

    @classmethod
    def restore(cls, path: str | os.PathLike[str], trainable: Callable[..., Any], *,
                param_space: Mapping[str, Any] | None = None, tune_config: TuneConfig | None = None,
                run_config: RunConfig | None = None, restart_errored: bool = False) -> Tuner:
        """Continue an experiment whose driver stopped (even by SIGKILL) from its saved state.

        Settings come from the run's ``experiment.json`` unless given; a scheduler or stop function
        that cannot be rebuilt from JSON must be passed again. ``restart_errored`` also restarts
        trials that had errored, from their latest checkpoint.
        """
        from pbtlab.resume import make_restored_tuner

        if not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"Tuner.restore(path) needs an experiment directory, got {describe(path)}")
        tuner = make_restored_tuner(cls, os.fspath(path), trainable, param_space, tune_config, run_config)
        tuner._restore_options["restart_errored"] = bool(restart_errored)
        return tuner

    def fit(self) -> Any:
        from pbtlab.analysis import ResultGrid

        if self._restore_path is not None:
            from pbtlab.resume import resume_controller

            controller = resume_controller(self)
        else:
            controller = self._new_controller()
        controller.run()
        return ResultGrid.from_controller(controller)

    def _new_controller(self) -> Controller:
        tune_config, run_config = self.tune_config, self.run_config
        scheduler = tune_config.scheduler or FIFOScheduler()
        if not scheduler.set_search_properties(tune_config.metric, tune_config.mode):
            raise ConfigError(
                f"metric/mode are set both in the scheduler ({scheduler.metric!r}, {scheduler.mode!r}) and in "
                f"TuneConfig ({tune_config.metric!r}, {tune_config.mode!r}); set them in one place")
        scheduler.validate()
        metric = tune_config.metric or scheduler.metric
        mode = tune_config.mode or scheduler.mode
        seed = tune_config.seed if tune_config.seed is not None else int(np.random.SeedSequence().entropy) % (2**63)  # type: ignore[arg-type]
        sample_seq, scheduler_seq = np.random.SeedSequence(seed).spawn(2)
        configs = resolve_param_space(self.param_space, tune_config.num_samples, np.random.default_rng(sample_seq))
        scheduler.set_rng(np.random.default_rng(scheduler_seq))
        executor = make_executor(run_config.executor)
        name = run_config.name or self._default_name()
        storage = os.path.abspath(os.fspath(run_config.storage_path or DEFAULT_STORAGE))
        path = os.path.join(storage, name)
        if os.path.exists(os.path.join(path, "experiment.json")):
            if run_config.name:
                raise ConfigError(
                    f"RunConfig(name={name!r}): an experiment already exists at {path}; choose another name, "
                    f"or continue it with Tuner.restore({path!r}, trainable)")
            path = self._unique(path)
        store = ExperimentStore(path)
        import hashlib  # only here: keeps `import pbtlab` light

        prefix = hashlib.sha1(f"{seed}".encode()).hexdigest()[:5]
        trainable_name = getattr(self.trainable, "__name__", "trainable")
        varying = resolved_leaves(self.param_space)
        trials = []
        for index, config in enumerate(configs):
            trial_id = f"{prefix}_{index:05d}"
            tag = _make_tag(index, config, varying)
            config = scheduler.on_trial_add(trial_id, config, tag)
            trials.append(Trial(trial_id, index, config, tag))
        mutated = list(getattr(scheduler, "hyperparam_mutations", {}) or {})
        columns = ["/".join(map(str, p)) for p in varying]
        columns += [k for k in mutated if k not in columns]
        store.create({
            "format_version": FORMAT_VERSION, "name": os.path.basename(path), "trainable": trainable_name,
            "seed": seed, "metric": metric, "mode": mode, "num_samples": tune_config.num_samples,
            "param_space": _describe_space(self.param_space), "scheduler": scheduler.describe(),
            "stop": run_config.stop if isinstance(run_config.stop, Mapping) else repr(run_config.stop),
            "max_failures": run_config.failure_config.max_failures if run_config.failure_config else 0,
            "num_to_keep": run_config.checkpoint_config.num_to_keep if run_config.checkpoint_config else None,
            "executor": executor.name, "param_columns": columns, "trainable_path": _import_path(self.trainable),
            "verbose": run_config.verbose, "max_concurrent_trials": tune_config.max_concurrent_trials,
            "state_save_period_s": run_config.state_save_period_s,
            "trial_ids": [t.trial_id for t in trials],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })
        controller = Controller(self.trainable, store, trials, scheduler, executor, tune_config, run_config,
                                columns, metric, mode)
        controller.event("experiment_start", name=os.path.basename(path), seed=seed, num_trials=len(trials),
                         scheduler=scheduler.describe(), executor=executor.name)
        for trial in trials:
            store.add_trial(trial.trial_id, trial.config)
            controller.event("trial_add", trial_id=trial.trial_id, config=trial.config, tag=trial.tag)
        return controller

    def _default_name(self) -> str:
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        return f"{getattr(self.trainable, '__name__', 'trainable')}_{stamp}"

    @staticmethod
    def _unique(path: str) -> str:
        for n in range(1, 10_000):
            candidate = f"{path}_{n}"
            if not os.path.exists(candidate):
                return candidate
        raise ExperimentError(f"cannot find a free experiment directory next to {path}")


def _import_path(fn: Any) -> str | None:
    """``module:qualname`` of a function that can be imported again (for ``pbtlab resume``), else None."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def _describe_space(space: Any) -> Any:
    from pbtlab.space import Domain, GridSearch

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
