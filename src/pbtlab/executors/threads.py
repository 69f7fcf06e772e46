"""A trial's function in a thread, and the two wake-up signals that pass control between it and its driver.

Used by the in-process executor (one :class:`ThreadWorker` per trial, in the driver's process) and by
the Ray executor (one per actor, in the actor's process). The driver calls :meth:`ThreadWorker.step`
with a command and gets the trial's next message back; meanwhile the driver is blocked, so exactly
one of the two threads runs at any moment.

On Linux, the two threads meet on one CPU: waking a thread on another CPU costs 20-50 µs more on a VM
(measured: 4.70 s against 4.05 s for 25,600 reports of 256 trials).

How they meet depends on how many trial threads one driver wakes (:class:`HandoffPolicy`):

- Many (more than :data:`FEW_TRIALS`): the kernel spreads the wake-ups of a thread that wakes many others
  over the CPUs, so the threads pin themselves (:func:`sleep_beside`): before it wakes the other thread, a
  thread moves itself to the CPU the other one sleeps on, and goes to sleep there; once woken, each gives
  itself back its own CPU affinity. The signals are locks.
- Few: the kernel starts a woken thread on its waker's CPU by itself, and pinning would cost six system
  calls per report. The signals are eventfds (:class:`EventSignal`): a thread wakes the other by writing to
  it with the GIL released, so the woken thread runs at once, where a lock is released with the GIL held
  and the woken thread finds the GIL taken, sleeps again, and the two switch back and forth. Each woken
  thread checks where it runs; after :attr:`HandoffPolicy.MISSES` wake-ups on another CPU than its waker's,
  the handoffs pin as with many trials, all on one CPU, and each worker goes over to locks. A process uses
  at most a quarter of its open-file limit for eventfds; beyond that, and on other systems, the signals
  are locks.

Measured on a 2-CPU VM (a report's round trip between one trial thread and its driver: 7 µs with eventfds
and no pinning, against 19 µs pinned with locks; whole runs of the tutorial's PBT, trainable included: 2
trials 32.6 against 35.1 ms, 8 trials 105.1 against 118.3 ms; at 64 trials the kernel spreads the wake-ups
and the eventfds without pinning lost 25 µs a report; pinned, eventfds were no faster than locks). A thread
changes only its own affinity, and only while it hands over and sleeps, so a trial's function and the
threads it starts run with the usual one.
``PBTLAB_SAME_CPU_HANDOFF=0`` turns pinning off, ``=1`` pins at every handoff; ``PBTLAB_EVENTFD_HANDOFF=0``
uses locks everywhere.

    >>> from pbtlab import tune
    >>> from pbtlab.session import CONTINUE, STOP, StartSpec
    >>> def trainable(config):
    ...     for step in range(2):
    ...         tune.report({"step": step})
    >>> worker = ThreadWorker(trainable, StartSpec("t0", {}, str(getfixture("tmp_path")), None, 0))
    >>> worker.step(None).metrics, worker.step(CONTINUE).metrics
    ({'step': 0}, {'step': 1})
    >>> worker.step(STOP) is EXITED
    True
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable
from typing import Any

from pbtlab.session import Command, CommandKind, StartSpec, WorkerMessage, run_trial

__all__ = ["EventSignal", "Exited", "EXITED", "HandoffPolicy", "restore_affinity", "sleep_beside", "ThreadWorker"]


class Exited(enum.Enum):
    """What :meth:`ThreadWorker.step` returns once the trial's thread has returned (after ``STOP``)."""

    EXITED = "exited"


EXITED = Exited.EXITED

#: Whether handoffs may move threads to one CPU (Linux; ``PBTLAB_SAME_CPU_HANDOFF=0`` turns it off, ``=1`` makes
#: every handoff do it, where by default :class:`HandoffPolicy` decides).
_same_cpu_setting = os.environ.get("PBTLAB_SAME_CPU_HANDOFF", "").strip()
_same_cpu = hasattr(os, "sched_setaffinity") and _same_cpu_setting != "0"
_current_cpu: Callable[[], int] | None = None  # libc's sched_getcpu, once looked up


def _this_cpu() -> int:
    """The CPU this thread runs on (libc's ``sched_getcpu``), or -1 where it cannot be read."""
    global _current_cpu
    if _current_cpu is None:
        try:
            import ctypes

            function = ctypes.CDLL(None).sched_getcpu
            function.restype, function.argtypes = ctypes.c_int, []
            _current_cpu = function
        except (OSError, AttributeError, ImportError):
            _current_cpu = _no_cpu
    return _current_cpu()


def _no_cpu() -> int:
    return -1


#: Up to this many trial threads per driver, handoffs start without pinning, over eventfds (module docstring).
FEW_TRIALS = 8


class HandoffPolicy:
    """How a driver and its ``trials`` trial threads hand over: whether each handoff pins the two threads to one
    CPU (``pin``, :func:`sleep_beside`), and whether new workers' signals are eventfds (``eventfds``).

    With few trials (:data:`FEW_TRIALS`), not at first, over eventfds: each woken thread tells where it runs
    (:meth:`woke`), and after :attr:`MISSES` wake-ups on another CPU than its waker's every handoff pins, for
    the rest of the run. With more, every handoff pins, over locks (see the module's docstring).

        >>> policy = HandoffPolicy(trials=2)
        >>> for _ in range(HandoffPolicy.MISSES):
        ...     policy.woke(waker_cpu=0, cpu=1)
        >>> policy.pin, HandoffPolicy(trials=64).pin
        (True, True)
    """

    #: Wake-ups on another CPU than the waker's before handoffs pin.
    MISSES = 4

    def __init__(self, trials: int = 1) -> None:
        few = trials <= FEW_TRIALS and _same_cpu_setting != "1"
        # without pinning (turned off, not Linux), sleep_beside does nothing, and nothing is watched
        self.pin = not few or not _same_cpu
        self.eventfds = few and _eventfd
        self.misses = 0
        self.home: int | None = None  # once pinning after misses, the one CPU handoffs meet on

    def woke(self, waker_cpu: int | None, cpu: int | None = None) -> None:
        """A thread woken by one that ran on ``waker_cpu`` now runs on ``cpu`` (None: this thread's CPU)."""
        if waker_cpu is None or waker_cpu < 0:
            return
        if (_this_cpu() if cpu is None else cpu) != waker_cpu:
            self.misses += 1
            if self.misses >= self.MISSES:
                # from now on every thread meets on the waker's CPU: trial threads that woke up elsewhere
                # meanwhile move there at their next report, rather than the driver moving to each of them
                self.pin, self.home = True, waker_cpu


class EventSignal:
    """A wake-up signal from one thread to another over a Linux eventfd, used as a lock is: ``acquire`` waits
    for the signal (and takes it), ``release`` gives it, writing with the GIL released (see the module's
    docstring). It holds a file descriptor until :meth:`close`, or until it is garbage (a worker whose thread
    ended after a Ctrl-C, its last message never taken).

        >>> signal = EventSignal()
        >>> signal.release(); signal.acquire(); signal.close()
    """

    __slots__ = ("fd",)

    def __init__(self) -> None:
        global _signals_open
        self.fd = os.eventfd(0, os.EFD_CLOEXEC)
        _signals_open += 1

    def acquire(self) -> None:
        os.eventfd_read(self.fd)

    def release(self) -> None:
        os.eventfd_write(self.fd, 1)

    def close(self) -> None:
        global _signals_open
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            _signals_open -= 1

    def __del__(self) -> None:
        self.close()


_eventfd = hasattr(os, "eventfd") and os.environ.get("PBTLAB_EVENTFD_HANDOFF", "1").strip() != "0"
_signals_open = 0  # open EventSignals (made on the driver's thread; a garbage one may be closed on another)
_signal_limit: int | None = None  # at most this many at once: a quarter of the open-file limit


def _signal_pair(eventfds: bool) -> tuple[Any, Any]:
    """Two signals, both taken (``acquire`` waits for the other side's ``release``): to the worker and to the
    driver. With ``eventfds``, eventfds while this process's budget for them allows; else locks."""
    global _signal_limit
    if eventfds:
        if _signal_limit is None:
            soft = os.sysconf("SC_OPEN_MAX")  # the open-file limit (getrlimit's soft one), without `resource`
            _signal_limit = 1 << 16 if soft < 0 else soft // 4
        if _signals_open + 2 <= _signal_limit:
            try:
                return EventSignal(), EventSignal()
            except OSError:  # out of file descriptors after all (the first one, if made, is closed as garbage)
                pass
    to_worker, to_driver = threading.Lock(), threading.Lock()
    to_worker.acquire()
    to_driver.acquire()
    return to_worker, to_driver


def _close_signals(*signals: Any) -> None:
    for signal in signals:
        if type(signal) is EventSignal:
            signal.close()


def sleep_beside(cpu: int | None) -> tuple[set[int] | None, int | None]:
    """Before this thread wakes another that sleeps on ``cpu`` (None: not known) and goes to sleep itself:
    let this thread run only on that CPU (else on the one it runs on), so that the woken thread starts
    where this one stops. Returns this thread's affinity, for :func:`restore_affinity` once it is woken,
    and the CPU it sleeps on; ``(None, None)`` where nothing changed (not Linux, one CPU allowed, turned off).

        >>> own, cpu = sleep_beside(None)
        >>> restore_affinity(own)
    """
    if not _same_cpu:
        return None, None
    own = os.sched_getaffinity(0)
    if len(own) < 2:
        return None, None
    if cpu is None or cpu not in own:
        cpu = _this_cpu()
        if cpu not in own:
            return None, None
    try:
        os.sched_setaffinity(0, (cpu,))
    except OSError:  # e.g. a cpuset that changed under the process
        return None, None
    return own, cpu


def restore_affinity(own: set[int] | None) -> None:
    """Give this thread back the affinity :func:`sleep_beside` returned (None: nothing to do)."""
    if own is not None:
        try:
            os.sched_setaffinity(0, own)
        except OSError:
            pass


class ThreadWorker:
    """A trial's thread; :meth:`step` hands it control with a command and returns its next message.

    It is the trial's :class:`~pbtlab.session.Channel`: the thread calls :meth:`exchange` from inside
    ``tune.report``. The thread starts parked; the first ``step(None)`` runs it to its first message, and
    a first ``step(STOP)`` ends it without running the function. ``policy`` says how the two hand over
    (:class:`HandoffPolicy`, shared by the workers of one run; by default, as for a single trial).
    """

    def __init__(self, trainable: Callable[..., Any], spec: StartSpec, chdir: bool = False,
                 policy: HandoffPolicy | None = None) -> None:
        self._policy = policy if policy is not None else HandoffPolicy()  # an executor shares one among its workers
        self._to_worker, self._to_driver = _signal_pair(self._policy.eventfds and not self._policy.pin)
        self._retired: tuple[Any, ...] = ()  # eventfds given up for locks, closed at the next handoff
        self._command: Command | None = None
        self._message: WorkerMessage | Exited | None = None
        self._driver_cpu: int | None = None  # where each thread sleeps during a handoff (see sleep_beside)
        self._worker_cpu: int | None = None
        # The new thread starts on this thread's CPU and sleeps there until its first turn (it inherits the
        # one-CPU affinity, and gives itself back this thread's own once woken): Thread.start() waits for it
        # to run, and a thread the OS starts or wakes on the other CPU can wait there for milliseconds (right
        # after numpy's import, OpenBLAS's threads spin on it).
        own, self._worker_cpu = sleep_beside(None)
        try:
            self._thread = threading.Thread(target=self._main, args=(trainable, spec, chdir, own, self._to_worker),
                                            name=f"pbtlab-trial-{spec.trial_id}", daemon=True)
            self._thread.start()
        finally:
            restore_affinity(own)

    # worker side ---------------------------------------------------------------------------
    def _main(self, trainable: Callable[..., Any], spec: StartSpec, chdir: bool, affinity: set[int] | None,
              first_turn: Any) -> None:
        first_turn.acquire()  # the signal it was made with, even if the driver has since given it locks
        restore_affinity(affinity)
        try:
            if self._command is not None and self._command.kind is CommandKind.STOP:
                return  # stopped before its first turn: the function never runs
            run_trial(trainable, spec, self, chdir=chdir)
        finally:
            self._message = EXITED
            try:
                self._to_driver.release()
            except RuntimeError:  # the driver was interrupted mid-handoff (Ctrl-C): nobody waits for this
                pass

    def exchange(self, message: WorkerMessage) -> Command:
        """Worker side: hand ``message`` to the driver and block until it answers."""
        self._message = message
        policy = self._policy
        if policy.pin:
            own, self._worker_cpu = sleep_beside(self._driver_cpu if policy.home is None else policy.home)
        else:
            own, self._worker_cpu = None, _this_cpu()
        # Which signal to wait on is read before the driver is woken: woken through an eventfd, the driver can
        # run at once, before this thread waits, and give it locks for its next turn (_use_locks) while
        # waking it through the eventfd it had (it would otherwise wait on the new lock for good).
        to_worker = self._to_worker
        self._to_driver.release()
        to_worker.acquire()
        if own is not None:
            restore_affinity(own)
        elif not policy.pin:
            policy.woke(self._driver_cpu)
        assert self._command is not None  # internal invariant: the driver always answers with a command
        return self._command

    # driver side ---------------------------------------------------------------------------
    def step(self, command: Command | None) -> WorkerMessage | Exited:
        """Driver side: hand control to the trial with ``command`` (None at start); return its next message,
        or :data:`EXITED` once its thread has returned."""
        self._command = command
        policy = self._policy
        to_worker = self._to_worker
        if policy.pin:
            own, self._driver_cpu = sleep_beside(self._worker_cpu if policy.home is None else policy.home)
            if type(to_worker) is EventSignal:
                self._use_locks()
        else:
            own, self._driver_cpu = None, _this_cpu()
        try:
            to_worker.release()
            self._to_driver.acquire()
        finally:  # also when Ctrl-C interrupts the wait
            restore_affinity(own)
        if own is None and not policy.pin:
            policy.woke(self._worker_cpu)
        if self._retired:  # the worker has woken from the eventfd it slept on, and left it
            _close_signals(*self._retired)
            self._retired = ()
        message = self._message
        assert message is not None  # internal invariant: set before the worker releases the driver
        if message is EXITED:  # the thread has returned: nothing waits on its signals any more
            _close_signals(self._to_worker, self._to_driver)
        return message

    def _use_locks(self) -> None:
        """Once handoffs pin, hand over through locks (pinned, eventfds measured slower): before the worker,
        parked on its eventfd, is woken through it, give both sides new locks; it uses them from its next
        report on. The eventfds are closed at the next handoff, once the worker has left them."""
        self._retired = (self._to_worker, self._to_driver)
        self._to_worker, self._to_driver = _signal_pair(eventfds=False)
