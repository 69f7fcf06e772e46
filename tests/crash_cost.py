"""Run ``crash_driver.py`` twice (SIGKILLed at a kill point, then restored) and measure what the crash cost.

Shared by ``tests/test_chaos_matrix.py`` and ``bench/crash_cost.py``.

    >>> lost_iterations({"t0": 7, "t1": 30}, {"t0": 6, "t1": 30}, finished={"t1"})
    {'t0': 1}
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_driver.py")


@dataclasses.dataclass
class CrashRun:
    """What one kill-and-restore did: per trial, the iterations acknowledged before the kill (``before``),
    whether the state at the kill says it finished, its rows kept then, and the iterations run after."""

    path: str
    before: dict[str, list[int]]  # trial -> steps acknowledged before the kill, in order
    after: dict[str, list[int]]  # trial -> steps acknowledged after the restore
    state_at_kill: dict
    results_at_kill: dict[str, bytes]  # trial -> its result.jsonl as the kill left it
    killed: bool
    restored_rc: int

    @property
    def finished_at_kill(self) -> set[str]:
        return {tid for tid, point in self.state_at_kill["recovery"].items() if point["finished"]}

    @property
    def rows_kept(self) -> dict[str, int]:
        return {tid: int(n) for tid, n in self.state_at_kill["rows_written"].items()}

    def rerun(self) -> int:
        """Iterations run before the kill whose work was not kept (each had to run again)."""
        done = {tid: len(steps) for tid, steps in self.before.items()}
        return sum(lost_iterations(done, self.rows_kept, self.finished_at_kill).values())

    def rerun_by_step(self) -> int:
        """Executions after the restore of a (trial, step) that had run before the kill (FIFO: steps are unique)."""
        return sum(len(set(self.after.get(tid, [])) & set(steps)) for tid, steps in self.before.items())

    def floor(self, every: int) -> int:
        """The least any engine can re-run: each unfinished trial's iterations since its last checkpoint."""
        total = 0
        for tid, steps in self.before.items():
            if tid in self.finished_at_kill or not steps:
                continue
            total += steps[-1] % every if every else steps[-1]
        return total


def lost_iterations(done: Mapping[str, int], kept: Mapping[str, int], finished: set[str]) -> dict[str, int]:
    """Per unfinished trial, the iterations it ran that its kept rows do not hold."""
    return {tid: max(0, n - kept.get(tid, 0)) for tid, n in done.items() if tid not in finished}


def read_ran(log_dir: str) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    by_phase: dict[int, dict[str, list[int]]] = {1: collections.defaultdict(list), 2: collections.defaultdict(list)}
    with open(os.path.join(log_dir, "ran.log")) as handle:
        for line in handle:
            phase, trial_id, step = line.split()
            by_phase[int(phase)][trial_id].append(int(step))
    return dict(by_phase[1]), dict(by_phase[2])


def wait_for_exit(log_dir: str, timeout_s: float = 60.0) -> None:
    """Wait until every process that ran a trial before the kill has ended (they notice the driver died)."""
    path = os.path.join(log_dir, "pids")
    pids = {int(p) for p in open(path).read().split()} if os.path.exists(path) else set()
    deadline = time.monotonic() + timeout_s
    while pids and time.monotonic() < deadline:
        for pid in list(pids):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                pids.discard(pid)
        time.sleep(0.05)
    if pids:
        raise AssertionError(f"trial processes {sorted(pids)} outlived the killed driver by {timeout_s} s")


def drive(log_dir: str, storage: str, name: str, args: Sequence[str], phase: int, kill_at: int,
          timeout_s: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, DRIVER, log_dir, storage, name, *args, "--phase", str(phase),
               "--kill-at", str(kill_at)]
    env = dict(os.environ)
    if "ray" not in args and "ray-tune" not in args:  # Ray's sockets need its short /tmp/ray paths
        # A SIGKILL leaves the trainables' open temporary directories behind: keep them in the test's folder.
        env["TMPDIR"] = os.path.join(log_dir, "tmp")
        os.makedirs(env["TMPDIR"], exist_ok=True)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)


def kill_and_restore(workdir: str, args: Sequence[str], kill_at: int, name: str = "run") -> CrashRun:
    """Start the run, SIGKILL its driver at ``kill_at`` iterations, wait for its trials to end, restore it."""
    log_dir, storage = os.path.join(workdir, "log"), os.path.join(workdir, "runs")
    first = drive(log_dir, storage, name, args, 1, kill_at)
    killed = first.returncode == -9
    if not killed:
        raise AssertionError(f"the driver was not killed (rc {first.returncode}):\n{first.stderr[-3000:]}")
    wait_for_exit(log_dir)
    path = os.path.join(storage, name)
    state = _state_at_kill(path)
    results = {}
    for trial_id in state["rows_written"]:
        with open(os.path.join(path, trial_id, "result.jsonl"), "rb") as handle:
            results[trial_id] = handle.read()
    second = drive(log_dir, storage, name, args, 2, 0)
    if second.returncode != 0:
        raise AssertionError(f"the restored run failed (rc {second.returncode}):\n{second.stderr[-3000:]}")
    before, after = read_ran(log_dir)
    return CrashRun(path, before, after, state, results, killed, second.returncode)


def _state_at_kill(path: str) -> dict:
    state_file = os.path.join(path, "state.json")
    if not os.path.exists(state_file):  # Ray Tune: no pbtlab state
        return {"recovery": {}, "rows_written": {}}
    with open(state_file) as handle:
        return json.load(handle)
