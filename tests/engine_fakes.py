"""A scripted fake executor: drives the controller without running any trainable.

Each trial follows a script, a function ``step(trial_id, start_iteration, n) -> message`` called for
the ``n``-th message since the trial's last (re)start, or a list of steps used in order. Steps are
plain tuples: ``("report", metrics, checkpoint?)``, ``("error", text)`` or ``("finish",)``. The fake
writes a checkpoint directory when a step asks for one, as a real trial would, and remembers every
command and start, so tests can assert what the controller told the trials.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from typing import Any

from pbtlab.session import (
    Command,
    CommandKind,
    ErrorMessage,
    FinishedMessage,
    ReportMessage,
    StartSpec,
    WorkerMessage,
)

Step = tuple[Any, ...]
Script = Callable[[str, int, int], Step]


def counting_script(metric: Callable[[str, int], float], checkpoint_every: int = 1, stop_at: int | None = None
                    ) -> Script:
    """Report ``metric(trial_id, iteration)`` at every iteration, checkpointing every ``checkpoint_every``."""
    def step(trial_id: str, start_iteration: int, n: int) -> Step:
        iteration = start_iteration + n + 1
        if stop_at is not None and iteration > stop_at:
            return ("finish",)
        return ("report", {"score": metric(trial_id, iteration)}, iteration % checkpoint_every == 0)
    return step


class FakeExecutor:
    """Implements the executor contract (``pbtlab.executors.base``) from scripts, in one thread."""

    name = "fake"

    def __init__(self, script: Script, concurrency: int = 1) -> None:
        self.script = script
        self.concurrency = concurrency
        self.queue: collections.deque[tuple[str, WorkerMessage]] = collections.deque()
        self.specs: dict[str, StartSpec] = {}
        self.progress: dict[str, int] = {}  # messages since the (re)start
        self.start_iteration: dict[str, int] = {}
        self.checkpoint_index: dict[str, int] = {}
        self.log: list[tuple[str, str, Any]] = []  # (trial_id, what, detail)
        self.shut_down = False

    # the contract ---------------------------------------------------------------------------
    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None:
        self.log.append(("-", "setup", max_concurrent))

    def default_concurrency(self, num_trials: int) -> int:
        return self.concurrency

    def start(self, spec: StartSpec) -> None:
        self._begin(spec)
        self.log.append((spec.trial_id, "start", spec.checkpoint_path))
        self._advance(spec.trial_id)

    def send(self, trial_id: str, command: Command) -> None:
        if command.kind is CommandKind.STOP:
            self.log.append((trial_id, "stop", None))
            return
        if command.kind is CommandKind.RESTART:
            assert command.spec is not None
            self._begin(command.spec)
            self.log.append((trial_id, "restart", command.spec.checkpoint_path))
        else:
            self.log.append((trial_id, "continue", None))
        self._advance(trial_id)

    def wait(self) -> tuple[str, WorkerMessage]:
        if not self.queue:
            raise RuntimeError("FakeExecutor.wait() with no trial running")
        return self.queue.popleft()

    def shutdown(self) -> None:
        self.shut_down = True

    # scripting ------------------------------------------------------------------------------
    def _begin(self, spec: StartSpec) -> None:
        self.specs[spec.trial_id] = spec
        self.progress[spec.trial_id] = 0
        self.checkpoint_index[spec.trial_id] = spec.next_checkpoint_index
        start = 0
        if spec.checkpoint_path is not None:
            with open(os.path.join(spec.checkpoint_path, "iteration"), encoding="utf-8") as handle:
                start = int(handle.read())
        self.start_iteration[spec.trial_id] = start

    def _advance(self, trial_id: str) -> None:
        n = self.progress[trial_id]
        self.progress[trial_id] = n + 1
        step = self.script(trial_id, self.start_iteration[trial_id], n)
        self.queue.append((trial_id, self._message(trial_id, step)))

    def _message(self, trial_id: str, step: Step) -> WorkerMessage:
        kind = step[0]
        if kind == "finish":
            return FinishedMessage()
        if kind == "error":
            return ErrorMessage("RuntimeError", step[1], "Traceback: scripted", False)
        metrics, with_checkpoint = dict(step[1]), step[2]
        if not with_checkpoint:
            return ReportMessage(metrics, None, None, 0.5)
        index = self.checkpoint_index[trial_id]
        self.checkpoint_index[trial_id] = index + 1
        path = os.path.join(self.specs[trial_id].trial_dir, f"checkpoint_{index:06d}")
        os.makedirs(path, exist_ok=True)
        iteration = self.start_iteration[trial_id] + self.progress[trial_id]
        with open(os.path.join(path, "iteration"), "w", encoding="utf-8") as handle:
            handle.write(str(iteration))
        return ReportMessage(metrics, path, index, 0.5)
