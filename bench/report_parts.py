"""Where pbtlab's time per report goes, without a sampling profiler: the wall time spent inside each part of the
driver and of ``tune.report``, per report, in one run of the tutorial's PBT.

    python bench/report_parts.py [--population 1024] [--iterations 100] [--switch greenlets] [--tmpfs]
    python bench/report_parts.py --population 16 --iterations 6400 --interval 1000 --tmpfs
                                    # the same reports with no checkpoint and no PBT decision: the floor of a report

Each part is a method wrapped with a timer for the run (``time.perf_counter`` before and after, about 0.3 µs
per call on top of what the method costs); the figures are inclusive (a part's time contains the parts it
calls, e.g. ``Controller._on_report`` contains the scheduler's and the callbacks'). The run is the set-up of
``bench/scaling.py`` (the tutorial's trainable, synchronous PBT every 4 iterations, default loggers on, in
process); with ``--tmpfs`` the run and the trainable's temporary directories are on ``/dev/shm``. A sampling
profiler slows the run down unevenly (py-spy's figures in docs/scaling.md were 1.5-2x these); this does not
show what happens between the parts, but what it shows is what the run spent.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

#: (module, class, method, label) of each part, in the order they are printed (outer parts first).
PARTS = [
    ("pbtlab.engine.controller", "Controller", "_handle", "the driver's handling of a message (all below)"),
    ("pbtlab.engine.controller", "Controller", "_on_report", "  a report"),
    ("pbtlab.engine.controller", "Controller", "_report_to_callbacks", "    callbacks (the default loggers)"),
    ("pbtlab.rundir.store", "ExperimentStore", "append_result", "    the row: encoded and buffered"),
    ("pbtlab.schedulers.pbt", "PopulationBasedTraining", "on_trial_result", "    PBT: on_trial_result"),
    ("pbtlab.schedulers.pbt", "PopulationBasedTraining", "_run_barrier", "      PBT: the barrier's decisions"),
    ("pbtlab.engine.controller", "Controller", "_apply", "    carrying out decisions (events, policy logs)"),
    ("pbtlab.engine.controller", "Controller", "_add_checkpoint", "    registering checkpoints"),
    ("pbtlab.engine.controller", "Controller", "_maybe_save", "    state saves (the 5% budget)"),
    ("pbtlab.engine.controller", "Controller", "emit", "  events (anywhere)"),
    ("pbtlab.rundir.store", None, "dumps", "  JSON lines: rows and events (anywhere)"),
    ("pbtlab.rundir.store", "ExperimentStore", "_pass_to_readers", "  rows passed to the loggers (anywhere)"),
    ("pbtlab.loggers.offload", "LoggerProcess", "send", "    sent to the loggers' helper"),
    ("pbtlab.engine.controller", "Controller", "_fill_slots", "starting and restarting trials"),
    ("pbtlab.engine.controller", "Controller", "_launch", "  a (re)start"),
    ("pbtlab.executors.inprocess", "InProcessExecutor", "wait", "the trial's turn (its function, tune.report)"),
    ("pbtlab.session", "TrialSession", "_persist", "  the trial's checkpoint moved into the run"),
]


def run(population: int, iterations: int, switch: str, storage: str, interval: int = 4) -> None:
    import importlib

    spent: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    clock = time.perf_counter
    for module, cls, method, label in PARTS:
        owner = getattr(importlib.import_module(module), cls) if cls else importlib.import_module(module)
        original = getattr(owner, method)

        def timed(*args: Any, _original: Any = original, _label: str = label, **kwargs: Any) -> Any:
            start = clock()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] += clock() - start
                calls[_label] += 1

        setattr(owner, method, functools.wraps(original)(timed) if cls else timed)  # a function: where it is called

    from pbtlab.examples.runs import run_toy_pbt
    from pbtlab.executors.inprocess import InProcessExecutor

    start, cpu = time.perf_counter(), time.process_time()
    run_toy_pbt(population=population, seed=0, iterations=iterations, perturbation_interval=interval, synch=True,
                storage_path=storage, name="parts", executor=InProcessExecutor(greenlets=switch == "greenlets"))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    reports = population * iterations
    from _machine import machine  # bench/ is on the path when a benchmark runs as a script
    from scaling import bare_trainable_work

    bare = min(bare_trainable_work(population, iterations, interval)[0] for _ in range(2))
    print(f"Where a report's time goes (python bench/report_parts.py --population {population} --iterations "
          f"{iterations} --interval {interval} --switch {switch}{' --tmpfs' if storage.startswith('/dev/shm') else ''}"
          f"): the tutorial's trainable and PBT; {machine()}; load average {os.getloadavg()[0]:.2f}")
    print(f"the whole run: {wall:.2f} s wall, {cpu:.2f} s CPU, {reports} reports: {wall / reports * 1e6:.1f} µs "
          f"per report (the trainable's own work included); the same work in a bare loop (bench/scaling.py's): "
          f"{bare / reports * 1e6:.1f} µs; pbtlab's cost as bench/scaling.py counts it: "
          f"{(wall - bare) / reports * 1e6:.1f} µs")
    width = max(len(label) for *_, label in PARTS)
    print(f"{'part (inclusive)':<{width}}  {'µs/report':>9}  {'calls':>8}  {'µs/call':>8}")
    for *_, label in PARTS:
        if calls[label]:
            print(f"{label:<{width}}  {spent[label] / reports * 1e6:9.1f}  {calls[label]:8d}  "
                  f"{spent[label] / calls[label] * 1e6:8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--population", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--interval", type=int, default=4,
                        help="perturbation and checkpoint interval (one past --iterations: no checkpoint, no decision)")
    parser.add_argument("--switch", choices=["threads", "greenlets"], default="greenlets")
    parser.add_argument("--tmpfs", action="store_true", help="the run and TMPDIR on /dev/shm")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run(args.population, args.iterations, args.switch, args.storage, args.interval)
        return 0
    scratch = "/dev/shm" if args.tmpfs else None
    env = dict(os.environ, **({"TMPDIR": scratch} if scratch else {}))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    storage = tempfile.mkdtemp(prefix="pbtlab_parts_", dir=scratch)
    try:  # a fresh process, as bench/scaling.py runs each experiment
        subprocess.run([sys.executable, os.path.abspath(__file__), "--one", "--population", str(args.population),
                        "--iterations", str(args.iterations), "--interval", str(args.interval), "--switch", args.switch,
                        "--storage", storage],
                       check=True, env=env)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
