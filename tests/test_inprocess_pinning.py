"""CPU affinity in-process: ``InProcessExecutor(pin_cpu=...)`` pins the driver and trial threads to one CPU for the
run; by default, each handoff between them meets on one CPU and only the sleeping thread stays there."""

from __future__ import annotations

import os
import threading

import pytest

from pbtlab import tune
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.errors import ConfigError
from pbtlab.executors import threads
from pbtlab.executors.inprocess import InProcessExecutor
from pbtlab.session import STOP, StartSpec
from pbtlab.tuner import Tuner

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")


def test_trials_run_pinned_and_the_driver_gets_its_cpus_back(storage):
    before = os.sched_getaffinity(0)
    cpu = min(before)
    seen = []

    def trainable(config):
        for step in range(3):
            seen.append(os.sched_getaffinity(0))
            tune.report({"score": step})

    results = Tuner(trainable, param_space={"x": tune.grid_search([1, 2])}, tune_config=TuneConfig(seed=0),
                    run_config=RunConfig(storage_path=storage, verbose=0,
                                         executor=InProcessExecutor(pin_cpu=cpu))).fit()
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    assert seen == [{cpu}] * 6
    assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize("bad", [-1, 10_000, "0", True, 1.5])
def test_pin_cpu_must_be_an_allowed_cpu(bad):
    with pytest.raises(ConfigError, match=r"pin_cpu=...\) must be one of the CPUs this process may use"):
        InProcessExecutor(pin_cpu=bad)


# -- the default: each handoff meets on one CPU, and only while it lasts --------------------------------------

needs_two_cpus = pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                                    reason="needs a process allowed on two CPUs or more")


@needs_two_cpus
def test_sleep_beside_pins_only_this_thread_and_restore_gives_its_affinity_back(monkeypatch):
    before = os.sched_getaffinity(0)
    own, cpu = threads.sleep_beside(None)  # not known where the other sleeps: here
    assert own == before and cpu in before and os.sched_getaffinity(0) == {cpu}
    threads.restore_affinity(own)
    assert os.sched_getaffinity(0) == before
    other = max(before)
    own, cpu = threads.sleep_beside(other)  # where the other thread sleeps
    assert (own, cpu, os.sched_getaffinity(0)) == (before, other, {other})
    threads.restore_affinity(own)
    own, cpu = threads.sleep_beside(10_000)  # a CPU this thread may not use: here instead
    assert cpu in before and os.sched_getaffinity(0) == {cpu}
    threads.restore_affinity(own)
    monkeypatch.setattr(threads, "_same_cpu", False)  # PBTLAB_SAME_CPU_HANDOFF=0
    assert threads.sleep_beside(other) == (None, None) and os.sched_getaffinity(0) == before
    assert os.sched_getaffinity(0) == before


def test_sleep_beside_does_nothing_in_a_process_pinned_to_one_cpu():
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        assert threads.sleep_beside(None) == (None, None)
        assert os.sched_getaffinity(0) == {min(before)}
    finally:
        os.sched_setaffinity(0, before)


def _affinity_run(storage, steps: int = 4):
    """A 2-trial run whose trainable records, at each step: its own affinity, that of a thread it starts, and
    how many CPUs the driver (asleep in the handoff) may use. Returns those and the run's handoff policy."""
    driver = threading.get_native_id()
    seen = []

    def trainable(config):
        for step in range(steps):
            started: list[set[int]] = []
            helper = threading.Thread(target=lambda: started.append(os.sched_getaffinity(0)))
            helper.start()
            helper.join()
            seen.append((os.sched_getaffinity(0), started[0], len(os.sched_getaffinity(driver))))
            tune.report({"score": step})

    executor = InProcessExecutor()
    results = Tuner(trainable, param_space={"x": tune.grid_search([1, 2])}, tune_config=TuneConfig(seed=0),
                    run_config=RunConfig(storage_path=storage, verbose=0, executor=executor)).fit()
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    return seen, executor._handoffs


@needs_two_cpus
def test_with_many_trials_the_driver_sleeps_on_one_cpu_while_a_trial_and_its_threads_keep_the_process_affinity(
        storage, monkeypatch):
    monkeypatch.setattr(threads, "FEW_TRIALS", 0)  # 2 trials count as many
    before = os.sched_getaffinity(0)
    seen, policy = _affinity_run(storage)
    assert seen == [(before, before, 1)] * 8  # the driver, asleep in the handoff, is on one CPU
    assert policy.pin and not policy.eventfds
    assert os.sched_getaffinity(0) == before


@needs_two_cpus
def test_with_few_trials_nobody_is_pinned_while_woken_threads_run_beside_their_wakers(storage, monkeypatch):
    before = os.sched_getaffinity(0)
    monkeypatch.setattr(threads, "_this_cpu", lambda: min(before))  # every thread woken where its waker ran
    open_before = threads._signals_open
    seen, policy = _affinity_run(storage)
    assert seen == [(before, before, len(before))] * 8
    assert (policy.pin, policy.eventfds, policy.misses) == (False, True, 0)
    assert threads._signals_open == open_before  # the trials' eventfds were closed as their threads ended


@needs_two_cpus
def test_with_few_trials_wake_ups_on_another_cpu_make_the_handoffs_pin(storage, monkeypatch):
    before = sorted(os.sched_getaffinity(0))
    calls = iter(range(10**6))
    monkeypatch.setattr(threads, "_this_cpu", lambda: before[next(calls) % 2])  # every wake-up on the other CPU
    open_before, fds_before = threads._signals_open, set(os.listdir("/proc/self/fd"))
    made = []
    real_pair = threads._signal_pair
    monkeypatch.setattr(threads, "_signal_pair", lambda eventfds: made.append(real_pair(eventfds)) or made[-1])
    seen, policy = _affinity_run(storage, steps=6)
    assert policy.pin and policy.misses == threads.HandoffPolicy.MISSES and policy.home in before
    asleep = [cpus for _, _, cpus in seen]
    assert asleep[0] == len(before) and asleep[-4:] == [1] * 4  # pinned once the misses added up
    assert all(own == set(before) and started == set(before) for own, started, _ in seen)
    # each trial started on eventfds and went over to locks once pinned; the eventfds are all closed
    kinds = [tuple(type(signal).__name__ for signal in pair) for pair in made]
    assert kinds.count(("EventSignal", "EventSignal")) == 2 and kinds.count(("lock", "lock")) == 2, kinds
    assert threads._signals_open == open_before and set(os.listdir("/proc/self/fd")) == fds_before


@needs_two_cpus
def test_ctrl_c_in_a_handoff_gives_the_driver_its_affinity_back(tmp_path):
    class InterruptedLock:
        def __init__(self):
            self.released = threading.Event()

        def acquire(self):
            raise KeyboardInterrupt

        def release(self):
            self.released.set()

    before = os.sched_getaffinity(0)
    worker = threads.ThreadWorker(lambda config: None, StartSpec("t0", {}, str(tmp_path), None, 0))
    interrupted = worker._to_driver = InterruptedLock()  # Ctrl-C arrives while the driver waits for the trial
    with pytest.raises(KeyboardInterrupt):
        worker.step(None)
    assert os.sched_getaffinity(0) == before
    assert interrupted.released.wait(10)  # the trial's last message, handed to nobody; then end its thread
    worker._to_driver = threading.Lock()
    worker._to_driver.acquire()
    assert worker.step(STOP) is threads.EXITED
    assert os.sched_getaffinity(0) == before


@needs_two_cpus
def test_a_trial_thread_starts_and_waits_for_its_first_turn_on_the_drivers_cpu(tmp_path):
    """Thread.start() waits for the new thread to run: it starts beside the driver, where no other thread (such
    as OpenBLAS's, spinning after numpy's import) can hold it up, and sleeps there until its first turn."""
    before = os.sched_getaffinity(0)
    seen = []

    def trainable(config):
        seen.append(os.sched_getaffinity(0))

    worker = threads.ThreadWorker(trainable, StartSpec("t0", {}, str(tmp_path), None, 0))
    assert os.sched_getaffinity(0) == before  # the driver has its own back
    parked = os.sched_getaffinity(worker._thread.native_id)
    assert len(parked) == 1 and parked == {worker._worker_cpu}  # asleep, waiting for its first turn
    message = worker.step(None)
    assert seen == [before]  # woken: the trial's function runs with the process's affinity
    assert type(message).__name__ == "FinishedMessage"
    assert worker.step(STOP) is threads.EXITED and os.sched_getaffinity(0) == before


needs_eventfd = pytest.mark.skipif(not hasattr(os, "eventfd"), reason="eventfd is Linux-only")


@needs_eventfd
def test_a_few_trials_worker_hands_over_through_eventfds_and_closes_them_when_its_thread_ends(tmp_path):
    def trainable(config):
        for step in range(3):
            tune.report({"step": step})

    before, open_before = set(os.listdir("/proc/self/fd")), threads._signals_open
    worker = threads.ThreadWorker(trainable, StartSpec("t0", {}, str(tmp_path), None, 0),
                                  policy=threads.HandoffPolicy(trials=2))
    assert type(worker._to_worker) is type(worker._to_driver) is threads.EventSignal
    assert len(set(os.listdir("/proc/self/fd")) - before) == 2
    from pbtlab.session import CONTINUE
    assert [worker.step(None).metrics, worker.step(CONTINUE).metrics] == [{"step": 0}, {"step": 1}]
    assert worker.step(STOP) is threads.EXITED
    assert set(os.listdir("/proc/self/fd")) == before and threads._signals_open == open_before


@needs_eventfd
def test_past_its_budget_of_file_descriptors_a_worker_uses_locks(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "_signal_limit", 1)  # not even one pair
    worker = threads.ThreadWorker(lambda config: None, StartSpec("t0", {}, str(tmp_path), None, 0),
                                  policy=threads.HandoffPolicy(trials=2))
    assert not isinstance(worker._to_worker, threads.EventSignal)
    assert type(worker.step(None)).__name__ == "FinishedMessage"
    assert worker.step(STOP) is threads.EXITED


def test_many_trials_hand_over_through_locks_and_pin():
    policy = threads.HandoffPolicy(trials=threads.FEW_TRIALS + 1)
    assert (policy.pin, policy.eventfds) == (True, False)


@needs_eventfd
def test_a_worker_whose_last_message_nobody_took_closes_its_eventfds_once_dropped(tmp_path):
    """As after a Ctrl-C in the handoff: the trial is told to stop, and its thread ends, but the driver never
    takes the message saying so. Once the worker is dropped, its eventfds are closed all the same."""
    import gc

    before, open_before = set(os.listdir("/proc/self/fd")), threads._signals_open
    worker = threads.ThreadWorker(lambda config: tune.report({"a": 1}), StartSpec("t0", {}, str(tmp_path), None, 0),
                                  policy=threads.HandoffPolicy(trials=2))
    assert worker.step(None).metrics == {"a": 1}
    worker._command = STOP
    worker._to_worker.release()  # the trial stops; nobody waits for its last message
    worker._thread.join(10)
    assert not worker._thread.is_alive() and len(set(os.listdir("/proc/self/fd")) - before) == 2
    del worker
    gc.collect()
    assert set(os.listdir("/proc/self/fd")) == before and threads._signals_open == open_before


@needs_eventfd
def test_a_worker_given_locks_while_it_hands_over_still_wakes(tmp_path):
    """Woken through an eventfd, the driver can run before the worker starts waiting for its next turn, and give
    it locks then: the worker waits on the signal it had when it woke the driver, which is the one released."""
    from pbtlab.session import CONTINUE

    def trainable(config):
        for step in range(3):
            tune.report({"step": step})

    policy = threads.HandoffPolicy(trials=2)
    worker = threads.ThreadWorker(trainable, StartSpec("t0", {}, str(tmp_path), None, 0), policy=policy)
    go = threading.Event()

    class HeldAfterWaking:  # the worker is held between waking the driver and waiting for its next turn
        def __init__(self, inner):
            self.inner = inner

        def release(self):
            self.inner.release()
            go.wait(10)

        def acquire(self):
            self.inner.acquire()

    worker._to_driver = HeldAfterWaking(worker._to_driver)
    assert worker.step(None).metrics == {"step": 0}  # the worker is now held, not yet waiting
    policy.pin = True  # so the next step gives the worker locks
    threading.Timer(0.2, go.set).start()
    done = []
    driver = threading.Thread(target=lambda: done.append(worker.step(CONTINUE)), daemon=True)
    driver.start()
    driver.join(10)
    assert done and done[0].metrics == {"step": 1}
    assert not isinstance(worker._to_worker, threads.EventSignal)
    assert worker.step(CONTINUE).metrics == {"step": 2} and worker.step(STOP) is threads.EXITED
