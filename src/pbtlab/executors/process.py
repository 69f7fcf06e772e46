"""Local worker processes: one process per trial, alive across exploits, many trials at once.

    >>> from pbtlab import tune, Tuner, TuneConfig
    >>> def trainable(config):
    ...     for step in range(3):
    ...         tune.report({"score": config["x"] * step})
    >>> results = Tuner(trainable, param_space={"x": tune.grid_search([1, 2])},
    ...                 tune_config=TuneConfig(metric="score", mode="max", seed=0),
    ...                 run_config=tune.RunConfig(storage_path=getfixture("tmp_path"), verbose=0,
    ...                                           executor="process")).fit()
    >>> results.get_best_result().config["x"]
    2

Each trial's function runs in its own process through :func:`pbtlab.session.run_trial`, talking to the
driver over a pipe: one message per report, one command back. A PBT exploit sends ``RESTART`` with the
donor's checkpoint and the new config, and the same process restarts the function in place; a new
process is started only for a new trial or after a worker died. As many trials run at once as
fit the declared CPUs and GPUs (one CPU per trial unless ``tune.with_resources`` says otherwise), and at
most ``TuneConfig(max_concurrent_trials=...)``; a paused trial's process stays
parked inside ``tune.report`` (idle, but it keeps its memory), so a population of N trials uses N
processes. For very large populations of light trials use the in-process executor.

Start method. ``fork`` (the default where the OS has it, i.e. Linux) starts a worker in milliseconds
and runs any trainable, including lambdas, closures and functions defined in a notebook, because
nothing is pickled. ``spawn`` and ``forkserver`` (the only choices on macOS/Windows, and safer when
the driver runs threads of its own, e.g. a GPU runtime) start a fresh interpreter, so the trainable
must be picklable: a function defined at module level of an importable module (a script guarded by
``if __name__ == "__main__":`` is fine). Choose with ``ProcessExecutor(start_method="spawn")``. A run that
would fork while another tool's threads run in the driver (Ray after ``ray.init()``) gets a
``RuntimeWarning`` saying so (:func:`pbtlab.compat.fork_hazard`): a worker can hang on a lock one of them held.

The driver side (one record per trial, dispatch order, retries on a fresh worker) is
:class:`~pbtlab.executors.dispatch.DispatchExecutor`'s; this module is the transport: a process and a
pipe per trial. A worker that dies (killed, segfault, ``os._exit``) is reported to the controller as an
:class:`~pbtlab.session.ErrorMessage` with ``error_type="WorkerDied"``, so ``FailureConfig(max_failures)``
retries it; the retry starts a new process from the trial's latest checkpoint. Checkpoints are
directories in the experiment folder, which every worker on this machine sees: nothing is copied
between workers.

Resources. ``ProcessExecutor(num_cpus=None, gpu_ids=None)`` declares the machine: by default the cores
this process may use and the GPUs it sees (``CUDA_VISIBLE_DEVICES``, else the NVIDIA devices found).
A trial starts only when its resources fit next to the running trials' (never oversubscribed; the
others wait, and a paused trial gives its share back). Each worker process runs with
``CUDA_VISIBLE_DEVICES`` set to the GPU ids it was given (two trials of 0.5 GPU share one id; a trial
without GPUs sees none) and ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` (and
``torch.set_num_threads`` when torch is imported) equal to its CPUs. A paused trial's process keeps
its GPU ids: it resumes on the same devices, so it waits until they have room again.

Warm up in the driver. A forked worker inherits everything the driver imported and initialised, and
nothing else: a library's lazy first-use work is paid again by every worker that needs it. With torch,
the first optimizer imports ``torch._dynamo`` (1.3-1.6 s of CPU here), so 4 workers would pay 4 times.
When the driver has imported torch, ``ProcessExecutor(warm_up_torch=True)`` (the default, fork only)
imports ``torch._dynamo`` once before the first fork, so every worker inherits it. Do the same for other
libraries' first-use work (one step of a tiny model before ``Tuner.fit()``); see docs/real_models.md.

Working directory and output. Each trial's function runs inside its trial directory, so relative paths
(``open("model.pt", "wb")``, ``my_model/``) are per trial. With ``RunConfig(log_to_file=...)`` the
worker's file descriptors 1 and 2 go to the trial's log files (C extensions' output included).
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import time
import traceback
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from pbtlab import compat
from pbtlab.errors import ConfigError, describe
from pbtlab.executors.dispatch import DispatchExecutor, WorkerLost, WorkerRecord
from pbtlab.executors.pool import Allocation, ResourcePool, visible_gpu_ids, worker_environment
from pbtlab.progress import logger
from pbtlab.resources import Resources
from pbtlab.session import (
    Command,
    CommandKind,
    ErrorMessage,
    StartSpec,
    WorkerMessage,
    redirect_descriptors,
    run_trial,
)

__all__ = ["available_cores", "ProcessExecutor", "ProcessWorker", "START_METHODS"]

START_METHODS = ("fork", "spawn", "forkserver")


def available_cores() -> int:
    """Cores this process may use (honours CPU affinity, e.g. ``taskset`` or a container's cpuset)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # macOS, Windows
        return max(os.cpu_count() or 1, 1)


def _default_start_method() -> str:
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


# -- worker side ------------------------------------------------------------------------------------
class _PipeChannel:
    """The worker's end of the pipe: send a message, block for the driver's command."""

    def __init__(self, conn: multiprocessing.connection.Connection, driver_pid: int) -> None:
        self.conn = conn
        self.driver_pid = driver_pid
        # Our parent: the driver with fork and spawn, the fork server with forkserver (which exits with the
        # driver); either way it changes when the driver is gone.
        self.parent_pid = os.getppid()

    def driver_gone(self) -> bool:
        """Has the driver died (our parent changed, or the driver's process no longer exists)?"""
        if os.getppid() != self.parent_pid:
            return True
        try:
            os.kill(self.driver_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # pragma: no cover - the pid was reused by another user's process
            return True
        return False

    def exchange(self, message: WorkerMessage) -> Command:
        self.conn.send(message)
        # Wake up now and then while parked: if the driver died without stopping us, exit rather than
        # linger (a forked sibling may hold the driver's end of our pipe open, so EOF alone is not enough).
        while not self.conn.poll(2.0):
            if self.driver_gone():
                os._exit(1)
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            os._exit(1)


def _set_up_process(spec: StartSpec) -> None:
    """The trial's environment: GPU ids and thread counts (before the trainable is loaded), log files."""
    environment = worker_environment(Allocation(spec.resources or Resources(), spec.gpu_ids))
    os.environ.update(environment)
    torch = sys.modules.get("torch")  # imported by the driver before the fork: its pool is already sized
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(int(environment["OMP_NUM_THREADS"]))
    if spec.log_to_file != (None, None):
        redirect_descriptors(spec)


def _worker_main(conn: multiprocessing.connection.Connection, driver_end: Any, trainable: Any,
                 pickled: bool, spec: StartSpec, driver_pid: int) -> None:
    """Entry point of a worker process: load the trainable, run the trial until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it stops us
    if driver_end is not None:  # fork: close our copy of the driver's end, so EOF means the driver is gone
        driver_end.close()
    _set_up_process(spec)
    channel = _PipeChannel(conn, driver_pid)
    try:
        fn = pickle.loads(trainable) if pickled else trainable
    except BaseException as error:  # noqa: BLE001 - reported to the driver, which stops the trial
        channel.conn.send(ErrorMessage(
            type(error).__name__, f"the worker process could not load the trainable: {error}",
            traceback.format_exc(), True))
        return
    run_trial(fn, spec, channel, chdir=True)
    conn.close()


# -- driver side ------------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True, eq=False, kw_only=True)
class ProcessWorker(WorkerRecord):
    """A trial's worker process and the driver's end of its pipe."""

    process: Any
    conn: multiprocessing.connection.Connection


def _describe_exit(pid: int | None, exitcode: int | None) -> str:
    if exitcode is None:
        return f"process {pid} closed its pipe"
    if exitcode < 0:
        try:
            return f"process {pid} was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"process {pid} was killed by signal {-exitcode}"
    return f"process {pid} exited with code {exitcode}"


_LIVE_PROCESSES: weakref.WeakSet[Any] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """A driver that exits without ``shutdown()`` (e.g. killed mid-run) must not leave workers behind.

    Registered after ``multiprocessing`` is imported, so it runs before multiprocessing joins its children.
    """
    leftovers = [p for p in list(_LIVE_PROCESSES) if p.is_alive()]
    for process in leftovers:
        process.kill()
    for process in leftovers:
        process.join(timeout=1.0)


def _warm_up_torch() -> None:
    """If the driver imported torch, import ``torch._dynamo`` now: the first optimizer of every forked
    worker would otherwise import it itself (1.3-1.6 s of CPU each)."""
    if "torch" not in sys.modules or "torch._dynamo" in sys.modules:
        return
    try:
        importlib.import_module("torch._dynamo")
    except Exception:  # noqa: BLE001 - a torch without dynamo: nothing for the workers to inherit either
        logger.debug("torch._dynamo could not be imported for the warm-up", exc_info=True)


class ProcessExecutor(DispatchExecutor[ProcessWorker]):
    """Runs each trial in its own local process; as many at once as fit (and up to ``max_concurrent``).

    Args:
        num_cpus: the CPUs trials may use together (default: the cores this process may use); a trial
            asks for one unless ``tune.with_resources`` says otherwise.
        gpu_ids: the GPU ids trials may use, e.g. ``["0", "1"]`` (default: ``CUDA_VISIBLE_DEVICES``, else
            the NVIDIA devices found, else none).
        start_method: "fork" (default on Linux: fast, any trainable), "spawn" or "forkserver"
            (the trainable must be picklable). See the module docstring.
        stop_grace_s: at shutdown, how long a worker still inside the user's code may take to reach its
            next ``tune.report`` and stop cleanly before it is killed.
        warm_up_torch: with ``fork``, when the driver has imported torch, import ``torch._dynamo`` (what
            the first optimizer imports) once in the driver, so that workers inherit it (see the module doc).
    """

    name = "process"
    _assigns_gpus = True

    def __init__(self, start_method: str | None = None, stop_grace_s: float = 2.0, *,
                 num_cpus: float | None = None, gpu_ids: list[str] | tuple[str, ...] | None = None,
                 warm_up_torch: bool = True) -> None:
        if start_method is not None and start_method not in START_METHODS:
            raise ConfigError(f"ProcessExecutor(start_method=...) must be one of {', '.join(START_METHODS)} or None, "
                              f"got {describe(start_method)}")
        if start_method is not None and start_method not in multiprocessing.get_all_start_methods():
            raise ConfigError(f"ProcessExecutor(start_method={start_method!r}) is not available on this system; "
                              f"it has {', '.join(multiprocessing.get_all_start_methods())}")
        if isinstance(stop_grace_s, bool) or not isinstance(stop_grace_s, (int, float)) or stop_grace_s < 0:
            raise ConfigError(f"ProcessExecutor(stop_grace_s=...) must be a number >= 0, got {describe(stop_grace_s)}")
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float))
                                     or not num_cpus > 0):
            raise ConfigError(f"ProcessExecutor(num_cpus=...) must be a number > 0 or None, got {describe(num_cpus)}")
        if gpu_ids is not None and (isinstance(gpu_ids, str) or not isinstance(gpu_ids, (list, tuple))
                                    or not all(isinstance(g, (str, int)) and not isinstance(g, bool) for g in gpu_ids)
                                    or len(set(map(str, gpu_ids))) != len(gpu_ids)):
            raise ConfigError(f"ProcessExecutor(gpu_ids=...) must be a list of distinct device ids such as "
                              f"['0', '1'], or None, got {describe(gpu_ids)}")
        if not isinstance(warm_up_torch, bool):
            raise ConfigError(f"ProcessExecutor(warm_up_torch=...) must be True or False, got {describe(warm_up_torch)}")
        super().__init__()
        self.warm_up_torch = warm_up_torch
        self.num_cpus = float(num_cpus) if num_cpus is not None else float(available_cores())
        self.gpu_ids = [str(g) for g in gpu_ids] if gpu_ids is not None else visible_gpu_ids()
        self._pool = ResourcePool(self.num_cpus, self.gpu_ids)
        self.start_method = start_method or _default_start_method()
        self.stop_grace_s = float(stop_grace_s)
        self._context = multiprocessing.get_context(self.start_method)
        self._trainable: Any = None
        self._pickled = False
        self._stopping: list[Any] = []  # processes told to stop, to reap
        self.processes_started = 0

    # -- protocol ----------------------------------------------------------------------------------
    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None:
        if self.start_method == "fork":
            hazard = compat.fork_hazard()
            if hazard:
                warnings.warn(f"ProcessExecutor(start_method='fork'): {hazard}", RuntimeWarning, stacklevel=2)
            self._trainable, self._pickled = trainable, False
            if self.warm_up_torch:
                _warm_up_torch()
            return
        try:
            self._trainable = pickle.dumps(trainable)
        except Exception as error:  # noqa: BLE001 - any pickling failure means the same thing to the user
            raise ConfigError(
                f"ProcessExecutor(start_method={self.start_method!r}) must send the trainable to a new Python "
                f"process, but {describe(trainable)} cannot be pickled ({error}). Define it with `def` at module "
                "level of an importable module, or use start_method='fork' (Linux) or executor='inprocess'"
            ) from None
        self._pickled = True

    def default_concurrency(self, num_trials: int) -> int:
        return max(1, num_trials)  # what runs at once is what fits the declared CPUs and GPUs (see fits)

    def shutdown(self) -> None:
        super().shutdown()
        self._reap(self.stop_grace_s)

    # -- transport: a process and a pipe per trial ---------------------------------------------------
    def _launch(self, spec: StartSpec) -> ProcessWorker:
        driver_end, worker_end = self._context.Pipe(duplex=True)
        forked = self.start_method == "fork"
        process = self._context.Process(  # type: ignore[attr-defined]
            target=_worker_main, name=f"pbtlab-trial-{spec.trial_id}", daemon=False,
            args=(worker_end, driver_end if forked else None, self._trainable, self._pickled, spec, os.getpid()))
        process.start()
        worker_end.close()
        self.processes_started += 1
        _LIVE_PROCESSES.add(process)
        return ProcessWorker(spec.trial_id, process=process, conn=driver_end)

    def _deliver(self, worker: ProcessWorker, command: Command) -> None:
        try:
            worker.conn.send(command)
        except OSError:
            raise WorkerLost(self._bury(worker)) from None

    def _collect(self, busy: list[ProcessWorker], timeout: float | None) -> list[ProcessWorker]:
        handles: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(multiprocessing.connection.wait(handles, timeout))
        with_message = [w for w in busy if w.conn in ready]  # messages first (a pipe at EOF counts here too)
        return with_message or [w for w in busy if w.process.sentinel in ready]

    def _receive(self, worker: ProcessWorker) -> WorkerMessage:
        if worker.conn.poll():  # ready, or it wrote its last message just before exiting
            try:
                return worker.conn.recv()
            except (EOFError, OSError):
                pass
        raise WorkerLost(self._bury(worker))

    def _retire(self, worker: ProcessWorker, final: bool) -> None:
        if not worker.dead:
            try:
                worker.conn.send(Command(CommandKind.STOP))
            except OSError:
                pass
        worker.conn.close()
        self._stopping.append(worker.process)
        self._reap(0.0)

    # -- helpers -------------------------------------------------------------------------------------
    def _bury(self, worker: ProcessWorker) -> str:
        """Join a worker process that is gone or going; say how it ended."""
        worker.process.join(timeout=1.0)
        return _describe_exit(worker.process.pid, worker.process.exitcode)

    def _reap(self, grace_s: float) -> None:
        """Join stopped workers; after ``grace_s`` seconds kill those still running the user's code."""
        if grace_s > 0 and self._stopping:
            deadline = time.monotonic() + grace_s
            for process in self._stopping:
                process.join(timeout=max(deadline - time.monotonic(), 0.0))
            for process in self._stopping:
                if process.is_alive():
                    process.kill()
                    process.join(timeout=1.0)
        alive = []
        for process in self._stopping:
            if process.is_alive():
                alive.append(process)
            else:
                process.join(timeout=0)
        self._stopping = alive
