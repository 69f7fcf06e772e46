"""The loop: fill slots, wait for a trial's message, ask the scheduler, carry out its decision, save state.

The controller is the one place where decisions become side effects. Everything it does is recorded
as an event (``pbtlab.rundir.records``); what a report becomes is in ``reports.py``, whether a failure is
retried in ``failures.py``, which checkpoints go in ``retention.py``. It is built by ``build.py``.

It runs with any executor (``executors/base.py``); the tests drive it with the simulated one
(``executors/simulated.py``), whose virtual clock is then the run's clock.
"""

from __future__ import annotations

import collections
import os
import time
import types
from collections.abc import Callable, Mapping
from typing import Any

from pbtlab.callbacks import CallbackList
from pbtlab.checkpoint import Checkpoint
from pbtlab.config import CheckpointConfig, RunConfig, TuneConfig, log_file_names
from pbtlab.engine import policy_log
from pbtlab.engine.failures import RetryPolicy
from pbtlab.engine.reports import StopCriteria, check_metric_reported, elapsed_budget, result_row
from pbtlab.engine.retention import Retention
from pbtlab.engine.trial import PendingRestart, Population, Trial, TrialStatus, TrialView, TrialViews
from pbtlab.errors import ConfigError
from pbtlab.errors import TrialError
from pbtlab.executors.base import Executor
from pbtlab.loggers import default_loggers, read_rows_from_store
from pbtlab.metrics import flatten_metrics, metric_value
from pbtlab.nested import copy_tree
from pbtlab.progress import StatusReporter, ensure_log_handler, logger, summarize_changes
from pbtlab.rundir.records import (
    EVENT_TYPES,
    FORMAT_VERSION,
    CheckpointDeleted,
    CheckpointMissing,
    CheckpointSaved,
    Event,
    EventKind,
    ExperimentEnd,
    Exploit,
    Explore,
    ForcedStart,
    TrialComplete,
    TrialErrored,
    TrialRestore,
    TrialStart,
    recovery_summary,
)
from pbtlab.resources import Resources
from pbtlab.rundir.checkpoints import CheckpointRef
from pbtlab.schedulers.base import Action, Decision, DecisionNote, Perturbation, TrialScheduler
from pbtlab.session import (
    CONTINUE,
    SAVE,
    STOP,
    Command,
    CommandKind,
    ErrorMessage,
    FinishedMessage,
    ReportMessage,
    SavedMessage,
    StartSpec,
    WorkerMessage,
)
from pbtlab.rundir.store import ExperimentStore

__all__ = ["Controller", "format_tag_value", "STOP_CHECK_INTERVAL_S"]

#: How often a stopper's ``stop_all()`` is asked while trials are inside an iteration (executors with ``poll``).
STOP_CHECK_INTERVAL_S = 1.0


def _score_text(score: Any) -> str:
    """A score in the exploit log line; a custom scheduler may leave it None.

        >>> _score_text(0.5), _score_text(None)
        ('0.500000', 'None')
    """
    return f"{score:4f}" if isinstance(score, (int, float)) and not isinstance(score, bool) else str(score)


def format_tag_value(value: Any) -> str:
    """How a value appears in an experiment tag (``lr=0.0500``)."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


class Controller:
    """Runs an experiment: asks the scheduler, tells the executor, records everything.

    ``elapsed_s`` is the run time already spent (a resumed run continues its time budget from it), on
    the executor's ``clock()``. ``resources``: what each trial asked for (``tune.with_resources``); a
    trial starts only when the executor says it fits (``fits``/``release``, see ``executors/base.py``).
    """

    def __init__(self, trainable: Callable[..., Any], store: ExperimentStore, trials: list[Trial],
                 scheduler: TrialScheduler, executor: Executor, tune_config: TuneConfig,
                 run_config: RunConfig, param_columns: list[str], metric: str | None, mode: str | None,
                 elapsed_s: float = 0.0, resources: Mapping[str, Resources] | None = None) -> None:
        self.trainable = trainable
        self.store = store
        self.trials = trials
        self.scheduler = scheduler
        self.executor = executor
        self.tune_config = tune_config
        self.run_config = run_config
        self.param_columns = param_columns
        self.metric = metric
        self.mode = mode
        self.verbose = 2 if run_config.verbose is None else run_config.verbose
        self.retry = RetryPolicy(run_config.failure_config)
        self.stop_criteria = StopCriteria(run_config.stop)
        checkpoint_config = run_config.checkpoint_config or CheckpointConfig()
        self.score_attribute = checkpoint_config.checkpoint_score_attribute
        self.retention = Retention(checkpoint_config.num_to_keep, scheduler, store.deletable, self._record_deleted,
                                   checkpoint_config.checkpoint_score_order if self.score_attribute else None)
        for trial in trials:  # a resumed run's trials (num_to_keep may be lower than when they were saved)
            self.retention.note(trial)
        self.running: set[str] = set()
        self.waiting: dict[str, Trial] = {t.trial_id: t for t in trials if t.is_waiting}
        self.by_id: dict[str, Trial] = {t.trial_id: t for t in trials}
        self.population = Population(self.by_id, self.waiting)
        user_callbacks = list(run_config.callbacks or [])
        loggers = default_loggers(user_callbacks, store)
        self.callbacks = CallbackList(user_callbacks + loggers)
        read_rows_from_store(self.callbacks, loggers, store)
        #: does any callback hear of each result (or checkpoint)? Not the default loggers alone: the store feeds them
        self._result_callbacks = any(self.callbacks.wants(hook)
                                     for hook in ("on_trial_result", "on_checkpoint", "on_trial_save"))
        self.views = TrialViews(trials)
        self.step = 0  # Ray's loop iteration, passed to callbacks
        #: class trainables answer SAVE: PBT's donors and checkpoint_at_end get a checkpoint when needed
        self.saves_on_request = bool(getattr(trainable, "saves_on_request", False))
        self.checkpoint_at_end = bool((run_config.checkpoint_config or CheckpointConfig()).checkpoint_at_end)
        self._stash: collections.deque[tuple[str, WorkerMessage]] = collections.deque()
        self._unchecked: list[str] = list(self.waiting)
        self._failed_epoch: int | None = None
        self._seq = store.num_events
        #: rows each trial has in its result.jsonl (written or buffered)
        self._rows: dict[str, int] = {t.trial_id: store.rows_written.get(t.trial_id, 0) for t in trials}
        #: each trial that reported since its last recovery point: that point (a copy of the trial) and its rows
        self._recovery: dict[str, tuple[Trial, int]] = {}
        self._save_due = False  # a recovery point advanced since the last save
        self._save_time_total = 0.0
        self._wall_start = time.monotonic()  # saving's share of the run is measured in wall-clock time
        self._abort: BaseException | None = None
        self.start_time = executor.clock() - elapsed_s  # the run's clock: the executor's
        self.max_concurrent = tune_config.max_concurrent_trials or executor.default_concurrency(len(trials))
        self.resources: dict[str, Resources] = dict(resources or {})
        self.log_to_file = log_file_names(run_config.log_to_file)
        self.experiment_name = os.path.basename(store.path)
        self._metric_checked: set[str] = set()
        self._last_save = float("-inf")
        self._save_cost = 0.0

    # -- events --------------------------------------------------------------------------------------
    def emit(self, kind: type[Event], **fields: Any) -> None:
        """Record an event of ``kind`` (a class from ``pbtlab.rundir.records``) with the next ``seq``."""
        record = kind(seq=self._seq, time=time.time(), **fields)
        self._seq += 1
        self.store.append_event(record.to_dict())

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
        self.save_state()  # before the executor starts: a run whose set-up fails can still be restored
        self.callbacks.call("setup", stop=self.run_config.stop, num_samples=self.tune_config.num_samples,
                            total_num_samples=len(self.trials), trials=self.views)
        self.executor.setup(self.trainable, self.max_concurrent)
        self._check_capacity()
        self.reporter = StatusReporter(self.verbose, self.run_config.progress_interval_s)  # live on a TTY from here
        step_begin, step_end = self.callbacks.wants("on_step_begin"), self.callbacks.wants("on_step_end")
        try:
            while True:
                self._fill_slots()
                if not self.running:
                    if not self.waiting or not self._force_one():
                        break
                if step_begin:
                    self.callbacks.call("on_step_begin", iteration=self.step, trials=self.views)
                next_message = self._next_message()
                if next_message is None:  # out of time, or the stopper ended the run, while trials ran
                    self._stop_everything()
                    break
                trial_id, message = next_message
                self._handle(self.by_id[trial_id], message)
                if self._abort is not None:
                    raise self._abort
                if self.stop_criteria.stop_all or self._over_budget():
                    self._stop_everything()
                    break
                if step_end:
                    self.callbacks.call("on_step_end", iteration=self.step, trials=self.views)
                self.step += 1
                self.reporter.update(self)
        finally:
            try:
                self.executor.shutdown()
            finally:
                for trial in self.trials:
                    trial.has_worker = False
                try:
                    self.retention.prune_noted(self.trials)  # its records come before the run's last one
                finally:
                    self.emit(ExperimentEnd, scheduler=self.scheduler.debug_string(),
                              statuses={t.trial_id: t.status.value for t in self.trials})
                    self._finish()

    def _finish(self) -> None:
        """The run's last steps, whatever ended it: the final state, then callbacks' ``on_experiment_end``
        (so a callback that reads the run directory sees every row)."""
        try:
            # Whatever ended the run (Ctrl-C and errors too): every trial at its recovery point. A trial
            # interrupted while its report was handled is still at its point before that report.
            self.save_state(durable=True)
            if any(not t.is_finished for t in self.trials):
                logger.warning(f"[pbtlab] Run interrupted; continue it with Tuner.restore({self.store.path!r}, "
                               f"trainable) or `pbtlab resume {self.store.path}`")
            self.callbacks.call("on_experiment_end", trials=self.views)
        finally:
            self.reporter.close(self)

    def _over_budget(self) -> bool:
        if self.tune_config.time_budget_s is None:
            return False
        return elapsed_budget(self.executor.clock() - self.start_time, self.tune_config.time_budget_s)

    def _next_message(self) -> tuple[str, WorkerMessage] | None:
        """The next message (kept ones first). With a time budget or a stopper with ``stop_all()``, through
        the executor's ``poll``: None when the run must end before a message comes (checked every
        ``STOP_CHECK_INTERVAL_S`` and when the budget runs out), as Ray checks between results."""
        if self._stash:
            return self._stash.popleft()
        budget = self.tune_config.time_budget_s
        if budget is None and not self.stop_criteria.has_stop_all:
            return self.executor.wait()
        while True:
            timeout = STOP_CHECK_INTERVAL_S if self.stop_criteria.has_stop_all else None
            if budget is not None:
                left = max(budget - (self.executor.clock() - self.start_time), 0.0) + 0.01
                timeout = left if timeout is None else min(timeout, left)
            got = self.executor.poll(timeout)
            if got is not None:
                return got
            if self.stop_criteria.check_stop_all() or self._over_budget():
                return None

    def _stop_everything(self) -> None:
        """End every unfinished trial. A running one is inside an iteration: it gets STOP and nothing else
        (a SAVE would be a second command outstanding); it keeps its latest checkpoint."""
        for trial in self.trials:
            if not trial.is_finished:
                self._terminate(trial, "stop_all" if self.stop_criteria.stop_all else "time_budget",
                                in_flight=trial.trial_id in self.running)

    def _force_one(self) -> bool:
        """Nothing runs but trials wait: start the least advanced one rather than hang (logged)."""
        chosen = self.scheduler.choose_trials_to_run([TrialView(t) for t in self.waiting.values()], 1, True)
        if not chosen:
            return False
        self.log(f"[pbtlab] No trial was eligible to run; starting {chosen[0]} so the run does not hang.")
        self.emit(ForcedStart, trial_id=chosen[0])
        self._launch(self.by_id[chosen[0]])
        return True

    def _check_capacity(self) -> None:
        """A trial that asks for more than the executor has could never start: say so before running."""
        for trial_id, resources in self.resources.items():
            problem = self.executor.capacity_error(resources)
            if problem is not None:
                raise ConfigError(f"tune.with_resources: trial {trial_id} asks for {problem}; it could never "
                                  f"run on the {self.executor.name} executor (lower the request or declare more)")

    def _fits(self, trial_id: str) -> bool:
        """Does the executor have room for the trial now?"""
        return self.executor.fits(trial_id, self.resources.get(trial_id))

    def _fill_slots(self) -> None:
        free = self.max_concurrent - len(self.running)
        if free <= 0 or not self.waiting:
            return
        epoch = self.scheduler.selection_epoch
        if epoch is not None and epoch == self._failed_epoch:  # only trials not yet offered (EngineSide)
            ids = [tid for tid in self._unchecked if tid in self.waiting]
        else:
            ids = list(self.waiting)
        self._unchecked = []
        if not ids:
            return
        chosen = self.scheduler.choose_trials_to_run([TrialView(self.waiting[tid]) for tid in ids], free)
        self._failed_epoch = epoch if len(chosen) < free else None
        for trial_id in chosen:
            if not self._fits(trial_id):  # it waits, in its turn, until running trials give resources back
                self._failed_epoch = None
                return
            self._launch(self.by_id[trial_id])

    def _set_waiting(self, trial: Trial, status: TrialStatus) -> None:
        trial.status = status
        self.executor.release(trial.trial_id)  # a paused or failed trial holds no resources until it runs again
        self.running.discard(trial.trial_id)
        self.waiting[trial.trial_id] = trial
        self._unchecked.append(trial.trial_id)

    def _launch(self, trial: Trial) -> None:
        self.waiting.pop(trial.trial_id, None)
        if trial.status is TrialStatus.PENDING or trial.restart is not None:
            decided = self._copy_of(trial) if trial.restart is not None and trial.restart.is_decision else None
            checkpoint, reason = self._prepare_restart(trial)
            if decided is not None:  # until it reports, its recovery point is the decision (a resume redoes it)
                self._recovery[trial.trial_id] = (decided, self._rows[trial.trial_id])
            spec = StartSpec(trial.trial_id, copy_tree(trial.config), self.store.trial_dir(trial.trial_id),
                             self.store.absolute(checkpoint.path) if checkpoint else None,
                             trial.next_checkpoint_index, trial_name=trial.name or trial.trial_id,
                             experiment_name=self.experiment_name, resources=self.resources.get(trial.trial_id),
                             log_to_file=self.log_to_file)
            self.emit(TrialStart, trial_id=trial.trial_id, config=trial.config, iteration=trial.iteration,
                      checkpoint=checkpoint.path if checkpoint else None, reason=reason)
            trial.restart = None
            if self.callbacks:
                view = TrialView(trial)
                if checkpoint is not None:
                    self.callbacks.call("on_trial_restore", iteration=self.step, trials=self.views, trial=view)
                self.callbacks.call("on_trial_start", iteration=self.step, trials=self.views, trial=view)
            if trial.has_worker:
                self.executor.send(trial.trial_id, Command(CommandKind.RESTART, spec))
            else:
                self.executor.start(spec)
                trial.has_worker = True
        else:
            self.executor.send(trial.trial_id, CONTINUE)
        trial.status = TrialStatus.RUNNING
        self.running.add(trial.trial_id)

    def _prepare_restart(self, trial: Trial) -> tuple[CheckpointRef | None, str | None]:
        """Set the trial's clocks to the checkpoint it restarts from; returns (checkpoint, reason)."""
        restart = trial.restart
        checkpoint = restart.checkpoint if restart else None
        reason = restart.reason if restart else None
        if checkpoint is not None and not os.path.isdir(self.store.absolute(checkpoint.path)):
            checkpoint = self._fall_back(trial, checkpoint, reason)
        if checkpoint is None:
            if reason is not None and trial.iteration > 0:
                # From scratch after progress: the next row says so, so plots show the break.
                trial.restored_from = {"trial_id": None, "checkpoint": None, "iteration": 0, "reason": reason}
            trial.iteration = 0
            trial.time_total_s = 0.0
        else:
            trial.iteration = checkpoint.iteration
            trial.time_total_s = checkpoint.time_total_s
            trial.latest = checkpoint
            trial.restored_from = {"trial_id": checkpoint.trial_id, "checkpoint": checkpoint.path,
                                   "iteration": checkpoint.iteration, "reason": reason}
            self.emit(TrialRestore, trial_id=trial.trial_id, checkpoint=checkpoint.path,
                      from_trial=checkpoint.trial_id, iteration=checkpoint.iteration, reason=reason)
        trial.iterations_since_restore = 0
        trial.time_since_restore = 0.0
        self._set_dirty(trial, False)
        return checkpoint, reason

    def _fall_back(self, trial: Trial, missing: CheckpointRef, reason: str | None) -> CheckpointRef | None:
        """The checkpoint to restart from was deleted outside pbtlab: use the trial's newest own checkpoint
        that still exists (or start from scratch), and say so."""
        trial.checkpoints = [c for c in trial.checkpoints if os.path.isdir(self.store.absolute(c.path))]
        fallback = trial.checkpoints[-1] if trial.checkpoints else None
        trial.restart = PendingRestart(fallback, reason or "resume")
        if trial.latest is not None and trial.latest.path == missing.path:
            trial.latest = fallback
        where = f"its own checkpoint {fallback.path} (iteration {fallback.iteration})" if fallback else "scratch"
        logger.warning(f"[pbtlab] Checkpoint {missing.path} needed to restart trial {trial.trial_id} is missing "
                       f"(deleted outside pbtlab); the trial restarts from {where} with its current config")
        self.emit(CheckpointMissing, trial_id=trial.trial_id, checkpoint=missing.path,
                  fallback=fallback.path if fallback else None, reason=reason)
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
        """``dirty``: the trial reported since its recovery point (``_recovery`` holds that point)."""
        trial.dirty = dirty
        if not dirty:
            self._recovery.pop(trial.trial_id, None)

    def _on_report(self, trial: Trial, message: ReportMessage) -> None:
        if not trial.dirty and trial.trial_id not in self._recovery:  # it leaves its recovery point: keep that
            self._recovery[trial.trial_id] = (self._copy_of(trial), self._rows[trial.trial_id])
        if trial.trial_id not in self._metric_checked:
            self._metric_checked.add(trial.trial_id)
            check_metric_reported(self.metric, trial.trial_id, message.metrics, self.scheduler.checks_metric)
        trial.iteration += 1
        trial.iterations_since_restore += 1
        trial.time_total_s += message.time_this_iter_s
        trial.time_since_restore += message.time_this_iter_s
        checkpoint_name = os.path.basename(message.checkpoint_path) if message.checkpoint_path is not None else None
        result = result_row(message.metrics, trial, message.time_this_iter_s, checkpoint_name)
        trial.restored_from = None
        stop = self.stop_criteria.should_stop(trial.trial_id, result)
        if stop:
            result["done"] = True
        self.store.append_result(trial.trial_id, result)
        self._rows[trial.trial_id] += 1
        # The row is in: only now may the checkpoint become the trial's recovery point (until then an
        # interruption leaves the trial at its previous point, and the row is dropped and reported again).
        if message.checkpoint_path is not None:
            self._add_checkpoint(trial, message.checkpoint_path, message.checkpoint_index, result)
        else:
            self._set_dirty(trial, True)
        trial.last_result = result
        saved = message.checkpoint_path is not None
        if stop:
            if self._result_callbacks:
                result = self._report_to_callbacks(trial, result, message.checkpoint_path)
            self._save_if_requested(trial, result, saved)
            self._terminate(trial, "stop_criterion")
            self._apply(self.scheduler.on_trial_complete(trial.trial_id, self.population))
            self._maybe_save()
            return
        # Schedulers see nested metrics flattened ("eval/loss"), as in Ray.
        flat = flatten_metrics(result)  # a new dict: the config in it can be the scheduler's own copy
        flat["config"] = copy_tree(trial.config)
        seen = types.MappingProxyType(flat)
        if self.saves_on_request and not saved \
                and self.scheduler.wants_checkpoint(TrialView(trial), seen):
            self._request_checkpoint(trial, "scheduler")
            saved = True
        decision = self.scheduler.on_trial_result(TrialView(trial), seen, self.population)
        self._apply(decision)
        if self._result_callbacks:  # as in Ray: after the scheduler has decided, before the decision is carried out
            result = self._report_to_callbacks(trial, result, message.checkpoint_path)
        if trial.restart is None:
            self._save_if_requested(trial, result, saved)
        if decision.action is Action.STOP:
            self._terminate(trial, "scheduler")
            self._apply(self.scheduler.on_trial_complete(trial.trial_id, self.population))
        elif decision.action is Action.PAUSE or trial.restart is not None:
            self._set_waiting(trial, TrialStatus.PAUSED)
        else:
            self._maybe_save()  # before the trial goes on: its new recovery point is on disk first
            self.executor.send(trial.trial_id, CONTINUE)
            return
        self._maybe_save()

    def _save_if_requested(self, trial: Trial, result: Mapping[str, Any], saved: bool) -> None:
        """As Ray: a result whose ``should_checkpoint`` the trainable or a callback set to True saves the trial now
        (a class trainable; a function trainable checkpoints itself when it reports)."""
        if result.get("should_checkpoint") is True and not saved and self.saves_on_request:
            self._request_checkpoint(trial, "requested")

    def _report_to_callbacks(self, trial: Trial, result: dict[str, Any],
                             checkpoint_path: str | None) -> dict[str, Any]:
        """``on_trial_result`` gets its own copy of the row (as Ray's ``result.copy()``): a callback that
        changes it changes neither the stored row nor what the scheduler saw. Returns that copy: a callback
        may set ``should_checkpoint`` in it to have the trial saved (Ray's ``SHOULD_CHECKPOINT``)."""
        view = TrialView(trial)
        seen_by_callbacks = dict(result)
        self.callbacks.call("on_trial_result", iteration=self.step, trials=self.views, trial=view,
                            result=seen_by_callbacks)
        if checkpoint_path is not None:
            self.callbacks.call("on_checkpoint", iteration=self.step, trials=self.views, trial=view,
                                checkpoint=Checkpoint(checkpoint_path))
            self.callbacks.call("on_trial_save", iteration=self.step, trials=self.views, trial=view)
        return seen_by_callbacks

    def _on_finished(self, trial: Trial) -> None:
        if trial.last_result is not None:
            trial.last_result["done"] = True
        self._terminate(trial, "function_returned")
        self._apply(self.scheduler.on_trial_complete(trial.trial_id, self.population))
        self._maybe_save()

    def _on_error(self, trial: Trial, message: ErrorMessage) -> None:
        trial.num_failures += 1
        retry = self.retry.should_retry(trial.num_failures, message.usage_error)
        self.emit(TrialErrored, trial_id=trial.trial_id, iteration=trial.iteration, error_type=message.error_type,
                  message=message.message, traceback=message.traceback, num_failures=trial.num_failures,
                  will_retry=retry)
        self.running.discard(trial.trial_id)
        self._save_due = True
        if retry:
            trial.restart = PendingRestart(trial.latest, "failure")
            self._set_dirty(trial, False)  # its future is decided: restart from its latest checkpoint
            where = f"from checkpoint {trial.latest.path} (iteration {trial.latest.iteration})" if trial.latest \
                else "from scratch (it has no checkpoint yet)"
            logger.warning(f"[pbtlab] Trial {trial.trial_id} failed ({message.error_type}: {message.message}); "
                           f"restart {trial.num_failures}/{self.retry.describe_limit()} {where}")
            self._set_waiting(trial, TrialStatus.PENDING)
            if self.callbacks:
                self.callbacks.call("on_trial_recover", iteration=self.step, trials=self.views, trial=TrialView(trial))
            self._maybe_save()
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
        if self.callbacks:
            self.callbacks.call("on_trial_error", iteration=self.step, trials=self.views, trial=TrialView(trial))
        self._apply(self.scheduler.on_trial_error(trial.trial_id, self.population))
        if self.retry.fail_fast:
            self._abort = TrialError(trial.trial_id, f"{message.error_type}: {message.message}", message.traceback)
        self._maybe_save()

    def _request_checkpoint(self, trial: Trial, reason: str) -> None:
        """Ask a trial that waits at its report for a checkpoint now (``SAVE``), and register it.

        Messages other trials send meanwhile are kept, in order, for the main loop."""
        self.executor.send(trial.trial_id, SAVE)
        while True:
            trial_id, message = self.executor.wait()
            if trial_id == trial.trial_id:
                break
            self._stash.append((trial_id, message))
        if not isinstance(message, SavedMessage):  # the save failed the trial: handled as its next message
            self._stash.appendleft((trial_id, message))
            return
        if message.checkpoint_path is None:
            return
        ref = self._add_checkpoint(trial, message.checkpoint_path, message.checkpoint_index, trial.last_result)
        self.emit(CheckpointSaved, trial_id=trial.trial_id, checkpoint=ref.path, iteration=ref.iteration,
                  reason=reason)
        if self.callbacks:
            view = TrialView(trial)
            self.callbacks.call("on_checkpoint", iteration=self.step, trials=self.views, trial=view,
                                checkpoint=Checkpoint(message.checkpoint_path))
            self.callbacks.call("on_trial_save", iteration=self.step, trials=self.views, trial=view)

    def _add_checkpoint(self, trial: Trial, path: str, index: int | None,
                        result: Mapping[str, Any] | None) -> CheckpointRef:
        """Register a persisted checkpoint, taken with ``result`` (its score for ``checkpoint_score_attribute``)."""
        score = None
        if self.score_attribute is not None and result is not None:
            value = metric_value(result, self.score_attribute)
            score = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        ref = CheckpointRef(trial.trial_id, self.store.relative(path), trial.iteration, trial.time_total_s,
                            int(index or 0), score)
        trial.checkpoints.append(ref)
        trial.latest = ref
        trial.next_checkpoint_index = ref.index + 1
        self._set_dirty(trial, False)
        self._save_due = True
        self.retention.note(trial)  # pruned just before the next state save
        return ref

    def retire(self, trial: Trial, reason: str) -> None:
        """End a trial that is not running, before the loop starts (a resume that does not continue it)."""
        trial.status = TrialStatus.TERMINATED
        trial.restart = None
        self.waiting.pop(trial.trial_id, None)
        self._set_dirty(trial, False)
        self._save_due = True
        self.emit(TrialComplete, trial_id=trial.trial_id, iteration=trial.iteration, reason=reason,
                  was_running=False)
        self._apply(self.scheduler.on_trial_complete(trial.trial_id, self.population))

    def _terminate(self, trial: Trial, reason: str, in_flight: bool = False) -> None:
        """End a trial; ``in_flight``: it is inside an iteration (no message of it is unanswered)."""
        if self.checkpoint_at_end and self.saves_on_request and trial.has_worker and trial.dirty \
                and trial.restart is None and not in_flight:
            self._request_checkpoint(trial, "end")
        was_running = trial.trial_id in self.running
        trial.status = TrialStatus.TERMINATED
        self.running.discard(trial.trial_id)
        self.waiting.pop(trial.trial_id, None)
        self._set_dirty(trial, False)
        self._save_due = True
        if trial.has_worker:
            self.executor.send(trial.trial_id, STOP)
            trial.has_worker = False
        self.emit(TrialComplete, trial_id=trial.trial_id, iteration=trial.iteration, reason=reason,
                  was_running=was_running)
        if self.callbacks:
            self.callbacks.call("on_trial_complete", iteration=self.step, trials=self.views, trial=TrialView(trial))

    # -- decisions -------------------------------------------------------------------------------------
    def _apply(self, decision: Decision) -> None:
        for note in decision.notes:
            self._note(note)
        for perturbation in decision.perturbations:
            self._perturb(perturbation)
        for trial_id in decision.stop:  # other trials the scheduler ends (the reporter ends through its action)
            trial = self.by_id[trial_id]
            if not trial.is_finished:
                self._terminate(trial, "scheduler")
                self._apply(self.scheduler.on_trial_complete(trial_id, self.population))

    def _note(self, note: DecisionNote) -> None:
        self.emit(EVENT_TYPES[EventKind(note.kind)], trial_id=note.trial_id, message=note.message, **note.data)
        self.log(note.message)

    def _perturb(self, p: Perturbation) -> None:
        target = self.by_id[p.target]
        if p.donor is not None:
            self.emit(Exploit, trial_id=p.target, donor=p.donor, target_iteration=p.target_iteration,
                      target_tag=target.orig_tag, donor_tag=self.by_id[p.donor].orig_tag,
                      donor_iteration=p.checkpoint.iteration, checkpoint=p.checkpoint.path,
                      target_score=p.target_score, donor_score=p.donor_score, old_config=p.old_config,
                      donor_config=p.donor_config, time_attr=p.time_attr, time_value=p.time_value)
            if self.verbose >= 2:
                self.log(f"[PopulationBasedTraining] [Exploit] Cloning trial {p.donor} (score = "
                         f"{_score_text(p.donor_score)}) into trial {p.target} (score = {_score_text(p.target_score)})")
        self.emit(Explore, trial_id=p.target, donor=p.donor, iteration=p.checkpoint.iteration,
                  target_iteration=p.target_iteration,
                  changes=[{"param": c.param, "old": c.old, "op": c.op, "new": c.new} for c in p.changes],
                  new_config=p.new_config)
        if self.verbose >= 2:
            self.log(f"[PopulationBasedTraining] [Explore] Perturbed the hyperparameter config of trial"
                     f"{p.target}:\n{summarize_changes(p.changes)}\n")
        if self.scheduler.writes_policy_log and p.donor is not None:
            row = [target.orig_tag, self.by_id[p.donor].orig_tag, p.target_iteration, p.checkpoint.iteration,
                   p.donor_config, p.new_config]
            policy_log.append_exploit(self.store, p.target, p.donor, row)
        target.config = p.new_config
        values = ",".join(f"{c.param}={format_tag_value(c.new)}" for c in p.changes)
        target.tag = f"{target.orig_tag}@perturbed[{values}]"
        target.restart = PendingRestart(p.checkpoint, "exploit" if p.donor is not None else "explore")
        self._set_dirty(target, False)  # decided: the rows up to the decision and the restart are its recovery point
        self._save_due = True

    # -- checkpoints and state -------------------------------------------------------------------------
    def _record_deleted(self, ref: CheckpointRef) -> None:
        self.emit(CheckpointDeleted, trial_id=ref.trial_id, checkpoint=ref.path, iteration=ref.iteration)

    def _maybe_save(self) -> None:
        """Save when a recovery point advanced (a checkpoint registered, a trial finished, a decision taken).

        ``RunConfig(state_save_period_s)``: None (the default) saves each one at once while saving takes at
        most 5% of the run time, and otherwise at the first message after it is back under 5%; 0 saves
        each one at once; a number saves at most that often and (as Ray's automatic period) rarely enough
        that one save's cost is at most 5% of the time between saves. A save that waits is never lost: it
        is made at the next message, and at the end of the run."""
        if not self._save_due:
            return
        period = self.run_config.state_save_period_s
        now = time.monotonic()
        if period is None:
            allowed = self._save_time_total <= 0.05 * (now - self._wall_start)
        elif period > 0:
            allowed = now - self._last_save >= max(period, 20 * self._save_cost)
        else:
            allowed = True
        if allowed:
            self.save_state()

    @staticmethod
    def _copy_of(trial: Trial) -> Trial:
        """The trial as it is now, for its recovery point (what later reports change is copied)."""
        cls = type(trial)
        snapshot = cls.__new__(cls)  # copy.copy's result, without its reduce protocol (3x slower)
        snapshot.__dict__.update(trial.__dict__)
        snapshot.last_result = dict(trial.last_result) if trial.last_result is not None else None
        return snapshot

    def recovery_records(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Each trial's recovery point: its record (``Trial.to_dict()``) and its rows in result.jsonl.

        A trial that has not reported since its latest checkpoint, its end, or a decision about it is at
        its recovery point now. One that has (or that started the restart a decision gave it) is recorded
        as it was at that point (a resume restarts it from its latest checkpoint, or carries out the
        decision again, and drops its rows since), with the checkpoints it has now (retention may have
        retired some since; it added none, or it would be at a new recovery point) and its latest (the
        same checkpoint, or the donor's once a decided restart began)."""
        records, rows = [], {}
        for trial in self.trials:
            point = self._recovery.get(trial.trial_id)
            if point is None:
                records.append(trial.to_dict())
                rows[trial.trial_id] = self._rows[trial.trial_id]
                continue
            snapshot, snapshot_rows = point
            record = snapshot.to_dict()
            record["checkpoints"] = [c.to_dict() for c in trial.checkpoints]
            record["latest"] = trial.latest.to_dict() if trial.latest else None  # the same, or a decision's donor
            records.append(record)
            rows[trial.trial_id] = snapshot_rows
        return records, rows

    def save_state(self, durable: bool = False) -> None:
        """Write ``state.json`` (a ``pbtlab.rundir.records.RunState``: each trial at its recovery point, the
        scheduler as it is now), then delete checkpoints it no longer names."""
        started = time.monotonic()
        self.retention.prune_noted(self.trials)  # before the state: it names no checkpoint retired now
        records, rows = self.recovery_records()
        self.store.save_state({
            "format_version": FORMAT_VERSION,
            "trials": records,
            "scheduler": self.scheduler.state_dict(),
            "next_seq": self._seq,
            "saved_at": time.time(),
            "elapsed_s": self.executor.clock() - self.start_time,
            "rows_written": rows,
            "recovery": recovery_summary(records, rows),
        }, durable=durable)
        self.retention.after_state_save()
        self._save_due = False
        self._last_save = time.monotonic()
        self._save_cost = self._last_save - started
        self._save_time_total += self._save_cost
