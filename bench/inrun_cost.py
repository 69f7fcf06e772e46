"""Why the same work costs more inside a run than in a microbenchmark: one result row's JSON line, timed alone
and inside runs whose trainables make more or fewer system calls.

    python bench/inrun_cost.py [--runs 3] [--reports 4000] [--population 2]

Each run is a fresh process. In it, ``pbtlab.rundir.store.dumps`` encodes a fixed result row (the tutorial's
20 fields) in a loop, alone; then a run of ``--population`` trials (synchronous PBT every 4 iterations for the
tutorial's trainable, FIFO for the others) with greenlets goes, and at every report the store encodes
that same row once more, timed (besides the row it writes). The trainables differ only in what they do
between reports:

- ``no system calls``: a numpy step and ``tune.report``;
- ``os.getpid() x10``: ten trivial system calls;
- ``TemporaryDirectory``: a temporary directory made and removed (``mkdir``, ``rmdir`` and their checks);
- ``the tutorial's trainable``: ``pbtlab.examples.toy.train_func`` (a temporary directory every step, a
  pickled checkpoint every 4, moved into the run).

The run and the temporary directories are on tmpfs (``/dev/shm``) where it exists, so the disk's speed is
not what is measured. Prints the median µs per encoding of each, and its ratio to the encoding alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

KINDS = ["alone", "no system calls", "os.getpid() x10", "TemporaryDirectory", "the tutorial's trainable"]

ROW = {"Q": 0.3637320754503899, "theta0": 0.9, "theta1": 0.4782969, "h0": 0.0, "h1": 1.0, "train_step": 6,
       "training_iteration": 6, "time_this_iter_s": 0.0015487319979001768, "time_total_s": 0.004646727000363171,
       "timestamp": 1796396020, "trial_id": "b6589_00000", "iterations_since_restore": 6,
       "time_since_restore": 0.004646727000363171, "done": False,
       "config": {"lr": 0.05, "h0": 0.0, "h1": 1.0, "num_training_iterations": 100, "checkpoint_interval": 4},
       "restored_from": None, "checkpoint_dir_name": None}


def one(kind: str, reports: int, scratch: str, population: int) -> float:
    """µs per encoding of ROW, in this process, for ``kind``."""
    import numpy as np

    from pbtlab import tune
    from pbtlab.rundir import store
    from pbtlab.rundir.store import ExperimentStore

    row = dict(ROW, Q=np.float64(ROW["Q"]), theta0=np.float64(ROW["theta0"]), theta1=np.float64(ROW["theta1"]))
    if kind == "alone":
        for _ in range(200):
            store.dumps(row)
        start = time.perf_counter()
        for _ in range(reports):
            store.dumps(row)
        return (time.perf_counter() - start) / reports * 1e6

    spent = [0.0, 0]
    append_result = ExperimentStore.append_result

    def timed_append(self: ExperimentStore, trial_id: str, result: dict) -> None:
        start = time.perf_counter()
        store.dumps(row)
        spent[0] += time.perf_counter() - start
        spent[1] += 1
        append_result(self, trial_id, result)

    ExperimentStore.append_result = timed_append  # type: ignore[method-assign]
    iterations = max(reports // population, 1)

    def light(config: dict) -> None:
        theta = np.array([0.9, 0.9])
        for step in range(iterations):
            theta = theta * 0.99
            if kind == "os.getpid() x10":
                for _ in range(10):
                    os.getpid()
            elif kind == "TemporaryDirectory":
                with tempfile.TemporaryDirectory():
                    pass
            tune.report({"Q": theta[0], "theta0": theta[0], "theta1": theta[1], "h0": 0.0, "h1": 1.0,
                         "train_step": step})

    from pbtlab.executors.inprocess import InProcessExecutor

    executor = InProcessExecutor(greenlets=True)
    if kind == "the tutorial's trainable":
        from pbtlab.examples.runs import run_toy_pbt

        run_toy_pbt(population=population, seed=0, iterations=iterations, perturbation_interval=4, synch=True,
                    storage_path=scratch, name="inrun", executor=executor)
    else:
        from pbtlab import TuneConfig, Tuner

        Tuner(light, param_space={"x": tune.uniform(0, 1)}, tune_config=TuneConfig(seed=0, num_samples=population),
              run_config=tune.RunConfig(storage_path=scratch, name="inrun", verbose=0, executor=executor)).fit()
    return spent[0] / spent[1] * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per kind (median; default 3)")
    parser.add_argument("--reports", type=int, default=4000, help="reports per run (default 4000)")
    parser.add_argument("--population", type=int, default=2, help="trials per run (default 2)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.reports, args.scratch, args.population)))
        return 0
    tmpfs = "/dev/shm" if os.path.isdir("/dev/shm") else None
    env = dict(os.environ, **({"TMPDIR": tmpfs} if tmpfs else {}))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(args.runs):  # the kinds alternate, so the machine's drift falls on all alike
        for kind in KINDS:
            with tempfile.TemporaryDirectory(dir=tmpfs) as scratch:
                command = [sys.executable, os.path.abspath(__file__), "--one", kind, "--reports", str(args.reports),
                           "--population", str(args.population), "--scratch", scratch]
                out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
            times[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    from _machine import machine  # bench/ is on the path when a benchmark runs as a script

    print(f"One result row's JSON line, alone and inside {args.population}-trial runs (python bench/inrun_cost.py "
          f"--runs {args.runs} --reports {args.reports} --population {args.population}); {machine()}; "
          f"run and TMPDIR on {tmpfs or 'the default disk'}; load average {os.getloadavg()[0]:.2f}")
    alone = statistics.median(times["alone"])
    width = max(len(kind) for kind in KINDS)
    print(f"{'between reports, the trainable does':<{width}}  {'µs per row':>10}  {'runs':>22}  vs alone")
    for kind in KINDS:
        median = statistics.median(times[kind])
        runs = ", ".join(f"{t:.1f}" for t in times[kind])
        print(f"{kind:<{width}}  {median:10.1f}  {runs:>22}  {median / alone:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
