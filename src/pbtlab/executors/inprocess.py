"""The default executor: every trial's function runs in a thread of this process, one at a time.

Only one trial thread runs at any moment; the driver hands control to it and waits for its next
message, so a run is as deterministic as the trainable (and the seed) make it. A paused trial costs
nothing: its thread is simply parked inside ``tune.report``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from pbtlab.session import Command, CommandKind, StartSpec, WorkerMessage, run_trial


class _Exited:
    """The worker thread has returned (after STOP)."""


_EXITED = _Exited()


class _ThreadWorker:
    """A trial thread and the two locks that pass control back and forth."""

    def __init__(self, trainable: Callable[..., Any], spec: StartSpec) -> None:
        self._to_worker = threading.Lock()
        self._to_worker.acquire()
        self._to_driver = threading.Lock()
        self._to_driver.acquire()
        self._command: Command | None = None
        self._message: Any = None
        self._thread = threading.Thread(target=self._main, args=(trainable, spec),
                                        name=f"pbtlab-trial-{spec.trial_id}", daemon=True)
        self._thread.start()

    # worker side ---------------------------------------------------------------------------
    def _main(self, trainable: Callable[..., Any], spec: StartSpec) -> None:
        self._to_worker.acquire()
        try:
            run_trial(trainable, spec, self)
        finally:
            self._message = _EXITED
            self._to_driver.release()

    def exchange(self, message: WorkerMessage) -> Command:
        self._message = message
        self._to_driver.release()
        self._to_worker.acquire()
        assert self._command is not None
        return self._command

    # driver side ---------------------------------------------------------------------------
    def step(self, command: Command | None) -> Any:
        """Hand control to the trial with ``command`` (None at start); return its next message."""
        self._command = command
        self._to_worker.release()
        self._to_driver.acquire()
        return self._message


class InProcessExecutor:
    """Runs trials as threads of this process, strictly one at a time (the reference executor)."""

    name = "inprocess"

    def __init__(self) -> None:
        self._trainable: Callable[..., Any] | None = None
        self._workers: dict[str, _ThreadWorker] = {}
        self._runnable: deque[tuple[str, Command | None]] = deque()

    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None:
        self._trainable = trainable

    def default_concurrency(self, num_trials: int) -> int:
        return max(num_trials, 1)

    def start(self, spec: StartSpec) -> None:
        assert self._trainable is not None
        self._workers[spec.trial_id] = _ThreadWorker(self._trainable, spec)
        self._runnable.append((spec.trial_id, None))

    def send(self, trial_id: str, command: Command) -> None:
        if command.kind is CommandKind.STOP:
            worker = self._workers.pop(trial_id, None)  # a queued turn of it is skipped in wait()
            if worker is not None:
                worker.step(command)
            return
        self._runnable.append((trial_id, command))

    def wait(self) -> tuple[str, WorkerMessage]:
        trial_id, command = self._runnable.popleft()
        while trial_id not in self._workers:  # stopped after it was queued
            trial_id, command = self._runnable.popleft()
        message = self._workers[trial_id].step(command)
        if message is _EXITED:  # the function returned after a command other than STOP
            self._workers.pop(trial_id, None)
            raise RuntimeError(f"trial {trial_id} worker exited unexpectedly")
        return trial_id, message

    def has_runnable(self) -> bool:
        return bool(self._runnable)

    def shutdown(self) -> None:
        for trial_id in list(self._workers):
            self.send(trial_id, Command(CommandKind.STOP))
        self._runnable.clear()
