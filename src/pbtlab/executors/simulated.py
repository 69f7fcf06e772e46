"""The simulated executor: trials played from functions on a virtual clock, so long runs take seconds.

No trainable runs. A trial is described by three functions of ``(config, iteration, state)``, where
``iteration`` counts from 1 and ``state`` is the trial's state before the iteration:

- ``duration``: how many virtual seconds the iteration takes (a number, or a function);
- ``update``: the trial's state after the iteration (default: the state does not change);
- ``result``: the metrics the trial reports at the end of the iteration, computed from the new state
  (None: the function returns there instead of reporting).

Every trial that was started or answered runs at once, in virtual time: its next message is due
``duration`` seconds after the command, and ``wait()`` returns the messages in the order they are due
(ties in the order the commands were sent), advancing the clock (``now``) to each. The controller reads
the run's clock from the executor (``clock()``), so ``TuneConfig(time_budget_s)`` and ``elapsed_s`` are in
virtual seconds too, and ``poll(timeout)`` lets virtual time pass without a message.

A checkpoint is the trial's state at an iteration: ``checkpoint_<index:06d>/simulated_state.json`` in the
trial's directory holds ``{"iteration": ..., "state": ...}`` (so states must be JSON values). A trial
reports one every ``checkpoint_every`` iterations and answers ``SAVE`` with one; a start or ``RESTART``
from a checkpoint (an exploit, a retry, a resumed run) continues from its iteration and state. An
exception raised by ``duration``, ``update`` or ``result`` fails the trial like an error in a trainable
(an ``ErrorMessage``, retried by ``FailureConfig``).

The run directory is a real one (rows, events, checkpoints, state). For large populations, turn off the
per-trial logger files (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``): they cost more than the simulation.

The executor also checks the protocol of ``executors/base.py``: a second command while one is
outstanding, a command to a trial without a worker, or ``CONTINUE`` after the function returned raises
``ExecutorError``. Every command it gets is logged in ``sent`` with the virtual time.

Pass ``simulator.trainable`` as the Tuner's trainable (nothing calls it; it lets the scheduler ask for
checkpoints with ``SAVE``, as a class trainable does):

    >>> from pbtlab import RunConfig, TuneConfig, Tuner, tune
    >>> simulator = SimulatedExecutor(
    ...     result=lambda config, iteration, state: {"score": state},
    ...     update=lambda config, iteration, state: state + config["lr"],
    ...     duration=lambda config, iteration, state: 10.0 * config["lr"], initial_state=0.0)
    >>> results = Tuner(simulator.trainable, param_space={"lr": tune.grid_search([1.0, 2.0])},
    ...                 tune_config=TuneConfig(metric="score", mode="max", seed=0),
    ...                 run_config=RunConfig(storage_path=str(getfixture("tmp_path")), executor=simulator,
    ...                                      stop={"training_iteration": 3}, verbose=0)).fit()
    >>> [r.metrics["score"] for r in results], simulator.now  # the slower trial ends at 3 x 20 s
    ([3.0, 6.0], 60.0)
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import json
import math
import os
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from pbtlab.errors import ConfigError, ExecutorError, describe
from pbtlab.executors.base import Executor
from pbtlab.session import (
    Command,
    CommandKind,
    ErrorMessage,
    FinishedMessage,
    ReportMessage,
    SavedMessage,
    StartSpec,
    WorkerMessage,
)

__all__ = ["STATE_FILE", "SentCommand", "SimulatedExecutor", "simulated_trial"]

#: The file a simulated checkpoint holds: ``{"iteration": int, "state": <JSON value>}``.
STATE_FILE = "simulated_state.json"

#: A function of ``(config, iteration, state)``.
TrialFunction = Callable[[Mapping[str, Any], int, Any], Any]


def simulated_trial(config: Mapping[str, Any]) -> None:
    """The trainable that stands for simulated trials (``SimulatedExecutor.trainable``); never called."""
    raise ExecutorError("simulated_trial stands for trials played by a SimulatedExecutor; run it with "
                        "RunConfig(executor=SimulatedExecutor(...))")


simulated_trial.saves_on_request = True  # type: ignore[attr-defined]  # the simulator answers SAVE


@dataclasses.dataclass(frozen=True, slots=True)
class SentCommand:
    """A command the simulator got, at virtual time ``time``: ``kind`` is "start", "continue",
    "restart", "save" or "stop"; ``checkpoint`` the one a start or restart restores (None: from scratch)."""

    time: float
    trial_id: str
    kind: str
    checkpoint: str | None = None


@dataclasses.dataclass(slots=True)
class _Worker:
    """A simulated trial's worker: where its function is, and whether a command is outstanding."""

    spec: StartSpec
    iteration: int = 0
    state: Any = None
    next_index: int = 0
    generation: int = 0  # bumped by every command: a due message of an older generation is dropped
    outstanding: bool = False
    ended: str | None = None  # "returned" or "failed": the function no longer runs (RESTART/SAVE/STOP only)


@dataclasses.dataclass(frozen=True, slots=True)
class _Report:
    """An iteration's outcome, applied when its message is delivered (a STOP before then discards it)."""

    iteration: int
    state: Any
    metrics: dict[str, Any]
    seconds: float


_SAVE = object()  # outcome of SAVE: the checkpoint is written when the answer is delivered
_Outcome = _Report | WorkerMessage | object


class SimulatedExecutor(Executor):
    """Plays trials from ``result`` / ``update`` / ``duration`` functions on a virtual clock (module docstring).

    ``initial_state``: a trial's state before its first iteration (a value, or a function of the
    config). ``iterations``: the function returns after this many iterations (None: it reports until
    stopped). ``checkpoint_every``: report a checkpoint at every n-th iteration (0: never; SAVE still
    works). ``concurrency``: trials run at once when ``TuneConfig(max_concurrent_trials)`` is not set
    (None: all of them).
    """

    name = "simulated"

    def __init__(self, result: TrialFunction, *, update: TrialFunction | None = None,
                 duration: float | TrialFunction = 1.0, initial_state: Any = None, iterations: int | None = None,
                 checkpoint_every: int = 1, concurrency: int | None = None) -> None:
        if not callable(result):
            raise ConfigError(f"SimulatedExecutor(result=...) must be a function (config, iteration, state) -> "
                              f"metrics, got {describe(result)}")
        if update is not None and not callable(update):
            raise ConfigError(f"SimulatedExecutor(update=...) must be a function (config, iteration, state) -> "
                              f"new state, or None, got {describe(update)}")
        if not callable(duration):
            _check_seconds(duration, "SimulatedExecutor(duration=...) must be a function or a finite number of "
                                     "seconds >= 0")
        for argument, value, least in (("iterations", iterations, 1), ("concurrency", concurrency, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ConfigError(f"SimulatedExecutor({argument}=...) must be an int >= {least} or None, "
                                  f"got {describe(value)}")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 0:
            raise ConfigError(f"SimulatedExecutor(checkpoint_every=...) must be an int >= 0 (0: never), "
                              f"got {describe(checkpoint_every)}")
        self.result = result
        self.update = update
        self.duration = duration
        self.initial_state = initial_state
        self.iterations = iterations
        self.checkpoint_every = checkpoint_every
        self.concurrency = concurrency
        #: The virtual clock, in seconds; it only moves forward.
        self.now = 0.0
        #: Every command, in the order it came (the controller's side of the protocol, for tests).
        self.sent: list[SentCommand] = []
        self.is_shut_down = False
        self._workers: dict[str, _Worker] = {}
        self._due: list[tuple[float, int, str, int, _Outcome]] = []  # (due, order, trial_id, generation, outcome)
        self._order = 0
        self._set_up = False

    @property
    def trainable(self) -> Callable[[Mapping[str, Any]], None]:
        """What to pass as the Tuner's trainable (it is never called)."""
        return simulated_trial

    # -- the executor interface ------------------------------------------------------------------------
    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None:
        """Start a run (the trainable is not used). The clock keeps its time across runs."""
        self._workers.clear()
        self._due.clear()
        self._set_up = True
        self.is_shut_down = False

    def default_concurrency(self, num_trials: int) -> int:
        return self.concurrency or max(num_trials, 1)

    def clock(self) -> float:
        return self.now

    def start(self, spec: StartSpec) -> None:
        if not self._set_up:
            raise ExecutorError("SimulatedExecutor.start() before setup()")
        if spec.trial_id in self._workers:
            raise ExecutorError(f"SimulatedExecutor.start(): trial {spec.trial_id} has a worker already; "
                                "send it a RESTART command to start its function again")
        self._log(spec.trial_id, "start", spec.checkpoint_path)
        worker = _Worker(spec)
        self._workers[spec.trial_id] = worker
        self._begin(worker, spec)

    def send(self, trial_id: str, command: Command) -> None:
        worker = self._workers.get(trial_id)
        kind = command.kind
        if worker is None:
            raise ExecutorError(f"SimulatedExecutor.send({trial_id!r}, {kind.name}): the trial has no worker "
                                "(it was never started, or it was stopped)")
        if kind is CommandKind.STOP:  # allowed at any time: a message not yet delivered is dropped
            self._log(trial_id, "stop")
            worker.generation += 1
            del self._workers[trial_id]
            return
        if worker.outstanding:
            raise ExecutorError(
                f"SimulatedExecutor.send({trial_id!r}, {kind.name}) while the trial's previous command is "
                "outstanding (its message has not been returned by wait() or poll()); the protocol allows one "
                "command at a time, and STOP at any time")
        if kind is CommandKind.RESTART:
            spec = command.spec
            if spec is None or spec.trial_id != trial_id:
                raise ExecutorError(f"SimulatedExecutor.send({trial_id!r}, RESTART) needs the trial's StartSpec, "
                                    f"got {describe(spec)}")
            self._log(trial_id, "restart", spec.checkpoint_path)
            self._begin(worker, spec)
        elif kind is CommandKind.SAVE:
            self._log(trial_id, "save")
            self._schedule(worker, 0.0, _SAVE)
        else:
            if worker.ended is not None:
                raise ExecutorError(f"SimulatedExecutor.send({trial_id!r}, CONTINUE) after the trial's function "
                                    f"{worker.ended}; only RESTART, SAVE or STOP may follow")
            self._log(trial_id, "continue")
            self._run_iteration(worker)

    def wait(self) -> tuple[str, WorkerMessage]:
        if self._next_due() is None:
            raise ExecutorError("SimulatedExecutor.wait() was called while no trial is running: every trial's "
                                "last message was already returned; start() a trial or send() a command first")
        due, _, trial_id, _, outcome = heapq.heappop(self._due)
        self.now = max(self.now, due)
        worker = self._workers[trial_id]
        worker.outstanding = False
        return trial_id, self._deliver(worker, outcome)

    def poll(self, timeout: float | None) -> tuple[str, WorkerMessage] | None:
        """The next message if it is due within ``timeout`` virtual seconds; else let them pass and return None."""
        if timeout is None:
            return self.wait()
        due = self._next_due()
        if due is not None and due > self.now + timeout:
            self.now += timeout
            return None
        return self.wait()

    def shutdown(self) -> None:
        for worker in self._workers.values():
            worker.generation += 1
        self._workers.clear()
        self._due.clear()
        self.is_shut_down = True

    # -- playing trials ------------------------------------------------------------------------------------
    def _log(self, trial_id: str, kind: str, checkpoint: str | None = None) -> None:
        self.sent.append(SentCommand(self.now, trial_id, kind, checkpoint))

    def _schedule(self, worker: _Worker, seconds: float, outcome: _Outcome) -> None:
        worker.generation += 1
        worker.outstanding = True
        self._order += 1
        heapq.heappush(self._due, (self.now + seconds, self._order, worker.spec.trial_id, worker.generation, outcome))

    def _next_due(self) -> float | None:
        """When the next live message is due (messages of stopped or restarted workers are dropped)."""
        while self._due:
            _, _, trial_id, generation, _ = self._due[0]
            worker = self._workers.get(trial_id)
            if worker is not None and worker.generation == generation:
                return self._due[0][0]
            heapq.heappop(self._due)
        return None

    def _begin(self, worker: _Worker, spec: StartSpec) -> None:
        """(Re)start the trial's function from ``spec``: its checkpoint, or the initial state."""
        worker.spec = spec
        worker.next_index = spec.next_checkpoint_index
        worker.ended = None
        try:
            if spec.checkpoint_path is not None:
                with open(os.path.join(spec.checkpoint_path, STATE_FILE), encoding="utf-8") as handle:
                    saved = json.load(handle)
                worker.iteration, worker.state = int(saved["iteration"]), saved["state"]
            else:
                worker.iteration = 0
                worker.state = (self.initial_state(spec.config) if callable(self.initial_state)
                                else copy.deepcopy(self.initial_state))
        except Exception as error:  # a trainable that cannot load its checkpoint fails at its start
            worker.ended = "failed"
            self._schedule(worker, 0.0, _error_message(error))
            return
        self._run_iteration(worker)

    def _run_iteration(self, worker: _Worker) -> None:
        """Compute the trial's next iteration now; its message is due when the iteration's time has passed."""
        if self.iterations is not None and worker.iteration >= self.iterations:
            self._schedule(worker, 0.0, FinishedMessage())
            return
        config, iteration, state = worker.spec.config, worker.iteration + 1, worker.state
        seconds = 0.0
        try:
            if callable(self.duration):
                seconds = _check_seconds(self.duration(config, iteration, state),
                                         f"SimulatedExecutor(duration=...) must give a finite number of seconds "
                                         f">= 0, for iteration {iteration} of trial {worker.spec.trial_id}")
            else:
                seconds = float(self.duration)
            new_state = self.update(config, iteration, state) if self.update is not None else state
            metrics = self.result(config, iteration, new_state)
        except ConfigError:
            raise
        except Exception as error:  # the trial's function raised during this iteration
            self._schedule(worker, seconds, _error_message(error))
            return
        if metrics is None:
            self._schedule(worker, seconds, FinishedMessage())
        elif not isinstance(metrics, Mapping):
            raise ConfigError(f"SimulatedExecutor(result=...) must return a dict of metrics or None, got "
                              f"{describe(metrics)} for iteration {iteration} of trial {worker.spec.trial_id}")
        else:
            self._schedule(worker, seconds, _Report(iteration, new_state, dict(metrics), seconds))

    def _deliver(self, worker: _Worker, outcome: _Outcome) -> WorkerMessage:
        """The message a due outcome becomes; a report moves the trial on and writes its checkpoint."""
        if isinstance(outcome, _Report):
            worker.iteration, worker.state = outcome.iteration, outcome.state
            path = index = None
            if self.checkpoint_every and outcome.iteration % self.checkpoint_every == 0:
                path, index = self._write_checkpoint(worker)
            return ReportMessage(outcome.metrics, path, index, outcome.seconds)
        if outcome is _SAVE:
            return SavedMessage(*self._write_checkpoint(worker))
        if isinstance(outcome, FinishedMessage):
            worker.ended = "returned"
        elif isinstance(outcome, ErrorMessage):
            worker.ended = "failed"
        assert isinstance(outcome, (FinishedMessage, ErrorMessage))  # internal invariant
        return outcome

    def _write_checkpoint(self, worker: _Worker) -> tuple[str, int]:
        """Write the trial's iteration and state as its next checkpoint; return (path, index)."""
        try:
            text = json.dumps({"iteration": worker.iteration, "state": worker.state})
        except (TypeError, ValueError) as error:
            raise ConfigError(f"SimulatedExecutor: the state of trial {worker.spec.trial_id} at iteration "
                              f"{worker.iteration} must be a JSON value (numbers, strings, lists, dicts) to be "
                              f"checkpointed, got {describe(worker.state)}: {error}") from None
        index = worker.next_index
        worker.next_index += 1
        path = os.path.join(worker.spec.trial_dir, f"checkpoint_{index:06d}")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, STATE_FILE), "w", encoding="utf-8") as handle:
            handle.write(text)
        return path, index


def _check_seconds(value: Any, problem: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{problem}, got {describe(value)}")
    return float(value)


def _error_message(error: Exception) -> ErrorMessage:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return ErrorMessage(type(error).__name__, str(error), text, False)
