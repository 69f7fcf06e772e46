"""The default executor: every trial's function runs in a thread of this process, one at a time.

Only one trial thread runs at any moment; the driver hands control to it and waits for its next
message, so a run is as deterministic as the trainable (and the seed) make it. A paused trial costs
nothing: its thread is simply parked inside ``tune.report``.

Shared by all trials (unlike the process and Ray executors, which give each trial its own worker):

- the working directory: trials are not moved into their trial directories, so a relative path such as
  ``my_model/`` is the same folder for every trial. Write per-trial files under
  ``tune.get_context().get_trial_dir()``.
- the machine: trials run one at a time, so ``tune.with_resources`` does not limit them (the resources
  are recorded and reported by ``tune.get_context().get_trial_resources()``, but no GPU ids or thread
  counts are set).
- standard output: ``RunConfig(log_to_file=...)`` routes what a trial's function writes to
  ``sys.stdout``/``sys.stderr`` into its files (see :mod:`pbtlab.executors.output`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pbtlab._optional import require
from pbtlab.errors import ConfigError, ExecutorError, describe
from pbtlab.executors.base import Executor
from pbtlab.executors.output import OutputRouter
from pbtlab.executors.threads import EXITED, HandoffPolicy, ThreadWorker
from pbtlab.session import Command, CommandKind, StartSpec, WorkerMessage

if TYPE_CHECKING:
    from pbtlab.executors.greenlets import GreenletWorker

__all__ = ["greenlet_executor", "InProcessExecutor"]


class InProcessExecutor(Executor):
    """Runs trials as threads of this process, strictly one at a time (the reference executor).

    Each report hands control from the trial's thread to the driver's and back. On Linux the two
    threads meet on one CPU for each handoff (:func:`~pbtlab.executors.threads.sleep_beside`): waking a
    thread on another CPU can cost 50-300 µs on a VM. ``pin_cpu=N`` instead keeps the driver and every
    trial thread on CPU N for the whole run, with no affinity changes per report (and the loggers' helper
    process on that CPU too). Threads a trial starts inherit that pin, so leave it off when a trial's own
    computation is multi-threaded (Linux only).

    ``greenlets=True`` runs every trial as a greenlet of the driver's thread instead (``pbtlab[fast]``): a
    report then switches stacks in under a microsecond, with no thread to wake. Trials then also share
    what C libraries keep per thread, such as PyTorch's autocast and current CUDA device (its grad mode is
    carried across switches; see :mod:`pbtlab.executors.greenlets`): leave it off for trainables that
    report from inside ``torch.autocast(...)`` or ``torch.inference_mode()``.

    All trials share this process's working directory: use ``tune.get_context().get_trial_dir()`` for
    per-trial files (see the module docstring).

        >>> from pbtlab import tune
        >>> run_config = tune.RunConfig(executor=InProcessExecutor(pin_cpu=0))
    """

    name = "inprocess"

    def __init__(self, pin_cpu: int | None = None, greenlets: bool = False) -> None:
        if not isinstance(greenlets, bool):
            raise ConfigError(f"InProcessExecutor(greenlets=...) must be True or False, got {describe(greenlets)}")
        if greenlets:
            require("greenlet", "fast", "InProcessExecutor(greenlets=True)")
        self.greenlets = greenlets
        self.name = "greenlets" if greenlets else "inprocess"  # experiment.json: a resume rebuilds the same kind
        if pin_cpu is not None:
            if not hasattr(os, "sched_setaffinity"):
                raise ConfigError("InProcessExecutor(pin_cpu=...) needs Linux (os.sched_setaffinity); use pin_cpu=None")
            allowed = sorted(os.sched_getaffinity(0))
            if isinstance(pin_cpu, bool) or not isinstance(pin_cpu, int) or pin_cpu not in allowed:
                raise ConfigError(
                    f"InProcessExecutor(pin_cpu=...) must be one of the CPUs this process may use, {allowed}, "
                    f"or None; got {describe(pin_cpu)}")
        self.pin_cpu = pin_cpu
        self._saved_affinity: set[int] | None = None
        self._trainable: Callable[..., Any] | None = None
        self._workers: dict[str, ThreadWorker | GreenletWorker] = {}
        self._runnable: deque[tuple[str, Command | None]] = deque()
        self._output = OutputRouter()
        self._handoffs = HandoffPolicy()  # shared by the run's trial threads (see pbtlab.executors.threads)

    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None:
        self._trainable = trainable
        self._handoffs = HandoffPolicy(max_concurrent)  # how this run's trial threads hand over (executors.threads)
        if self.pin_cpu is not None:
            # On Linux, pid 0 means the calling thread; trial threads started later inherit the pin.
            self._saved_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {self.pin_cpu})

    def default_concurrency(self, num_trials: int) -> int:
        return max(num_trials, 1)

    def start(self, spec: StartSpec) -> None:
        assert self._trainable is not None
        if spec.log_to_file != (None, None):
            self._output.install()  # until shutdown
        if self.greenlets:
            from pbtlab.executors.greenlets import GreenletWorker  # imported by the runs that use it

            self._workers[spec.trial_id] = GreenletWorker(self._trainable, spec)
        else:
            self._workers[spec.trial_id] = ThreadWorker(self._trainable, spec, policy=self._handoffs)
        self._runnable.append((spec.trial_id, None))

    def send(self, trial_id: str, command: Command) -> None:
        if command.kind is CommandKind.STOP:
            worker = self._workers.pop(trial_id, None)  # a queued turn of it is skipped in wait()
            if worker is not None:
                worker.step(command)
            return
        self._runnable.append((trial_id, command))

    def wait(self) -> tuple[str, WorkerMessage]:
        while self._runnable:
            trial_id, command = self._runnable.popleft()
            if trial_id in self._workers:  # else: stopped after it was queued
                break
        else:
            raise ExecutorError("InProcessExecutor.wait() was called while no trial is running: every trial's last "
                                "message was already returned; start() a trial or send() a command first")
        message = self._workers[trial_id].step(command)
        if message is EXITED:  # the function returned after a command other than STOP
            self._workers.pop(trial_id, None)
            raise ExecutorError(f"trial {trial_id} worker exited unexpectedly")
        return trial_id, message

    def shutdown(self) -> None:
        for trial_id in list(self._workers):
            self.send(trial_id, Command(CommandKind.STOP))
        self._runnable.clear()
        self._output.restore()
        if self._saved_affinity is not None:
            os.sched_setaffinity(0, self._saved_affinity)
            self._saved_affinity = None


def greenlet_executor() -> InProcessExecutor:
    """``RunConfig(executor="greenlets")``: ``InProcessExecutor(greenlets=True)``.

        >>> greenlet_executor().name
        'greenlets'
    """
    return InProcessExecutor(greenlets=True)
