"""Per-report overhead and peak memory of in-process PBT for populations of 2, 64 and 1,024 trials.

    python bench/scaling.py                 # 100 iterations per trial, median of 3 runs each
    python bench/scaling.py --quick         # 1 run each
    python bench/scaling.py --populations 2 64 1024 4096 --iterations 100 --repeats 5

Every run is a fresh Python process (so peak memory is that run's alone). The trainable does almost
nothing: it computes a score, and every ``interval`` steps writes a one-file checkpoint, as a PBT
trainable must. It times its own code (everything between two ``tune.report`` calls, including
writing its checkpoint into a temporary directory); the overhead is the rest of the run's wall time,
i.e. everything pbtlab does (starting trials, handing control to each trial and back, copying
checkpoints into the experiment, the scheduler, writing results and events, state saves), divided by
the number of reports. Peak memory is the process's maximum resident set size (``ru_maxrss``), and
``base`` is the same measure just before ``Tuner.fit`` (Python, numpy and pbtlab loaded).

Goal (issue 4): at most 30 µs per report at 1,024 trials and peak memory under 300 MB, flat as the
population grows. Ratios compare each population with the 2-trial run of the same mode from this run.
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

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = ["mode", "trials", "reports", "exploits", "wall s", "µs/report", "vs 2 trials", "handoff µs", "rest µs",
          "peak MB", "base MB"]


def _one(population: int, synch: bool, iterations: int, interval: int, storage: str) -> dict:
    """Run one experiment in this process; return its figures."""
    import resource

    from pbtlab import tune
    from pbtlab.config import RunConfig, TuneConfig
    from pbtlab.schedulers import PopulationBasedTraining
    from pbtlab.tuner import Tuner

    user_time = [0.0]

    def trainable(config):
        mark = time.perf_counter()
        step, score = 0, 0.0
        checkpoint = tune.get_checkpoint()
        if checkpoint:
            with open(os.path.join(checkpoint.path, "state")) as handle:
                step, score = (float(x) for x in handle.read().split())
                step = int(step)
        while True:
            step += 1
            score += config["rate"]
            if step % interval == 0:
                with tempfile.TemporaryDirectory() as tmp:
                    with open(os.path.join(tmp, "state"), "w") as handle:
                        handle.write(f"{step} {score}")
                    user_time[0] += time.perf_counter() - mark
                    tune.report({"score": score}, checkpoint=tune.Checkpoint.from_directory(tmp))
                    mark = time.perf_counter()
            else:
                user_time[0] += time.perf_counter() - mark
                tune.report({"score": score})
                mark = time.perf_counter()

    scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=interval,
                                        hyperparam_mutations={"rate": tune.uniform(0.0, 1.0)}, synch=synch)
    tuner = Tuner(trainable, param_space={"rate": tune.uniform(0.0, 1.0)},
                  tune_config=TuneConfig(num_samples=population, metric="score", mode="max", seed=0,
                                         scheduler=scheduler),
                  run_config=RunConfig(storage_path=storage, name="scaling", verbose=0,
                                       stop={"training_iteration": iterations}))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reports = sum(int(r.metrics.get("training_iteration", 0)) for r in results)
    # rows that were exploited away are not in training_iteration; count what was written
    rows = 0
    for r in results:
        with open(os.path.join(r.path, "result.jsonl"), "rb") as handle:
            rows += sum(1 for _ in handle)
    return {"population": population, "synch": synch, "wall_s": wall, "user_s": user_time[0], "reports": rows,
            "final_iterations": reports, "exploits": len(results.events_of("exploit")),
            "peak_mb": peak, "base_mb": base, "handoff_us": _handoff_us(population, storage)}


def _handoff_us(population: int, storage: str, rounds: int = 20_000) -> float:
    """The in-process executor's floor: one report's round trip between the driver and a trial thread
    (two lock handoffs, the OS waking each thread) with ``population`` parked trial threads, and nothing
    else (no scheduler, no store): a trainable that only calls ``tune.report({})``."""
    from pbtlab import tune
    from pbtlab.executors.inprocess import InProcessExecutor
    from pbtlab.session import CONTINUE, STOP, StartSpec

    def only_reports(config):
        while True:
            tune.report({})

    executor = InProcessExecutor()
    executor.setup(only_reports, population)
    ids = [f"t{i}" for i in range(population)]
    for trial_id in ids:
        executor.start(StartSpec(trial_id, {}, storage, None, 0))
    for _ in ids:
        executor.wait()
    steps = max(rounds // population, 2) * population
    start = time.perf_counter()
    for k in range(steps):
        executor.send(ids[k % population], CONTINUE)
        executor.wait()
    elapsed = time.perf_counter() - start
    for trial_id in ids:
        executor.send(trial_id, STOP)
    return elapsed / steps * 1e6


def run_fresh(population: int, synch: bool, iterations: int, interval: int, pin: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="pbtlab_scaling_") as storage:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", str(population), "--mode",
             "sync" if synch else "async", "--iterations", str(iterations), "--interval", str(interval),
             "--storage", storage] + (["--pin"] if pin else []),
            check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--populations", type=int, nargs="+", default=[2, 64, 1024])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--interval", type=int, default=4, help="perturbation (and checkpoint) interval")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run per setting")
    parser.add_argument("--modes", nargs="+", default=["sync", "async"], choices=["sync", "async"])
    parser.add_argument("--pin", action="store_true",
                        help="run each experiment pinned to one CPU (os.sched_setaffinity): the in-process executor "
                             "runs one thread at a time, and waking a thread on another CPU is slow, above all in VMs")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="sync", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        if args.pin:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(json.dumps(_one(args.one, args.mode == "sync", args.iterations, args.interval, args.storage)))
        return 0
    repeats = 1 if args.quick else args.repeats
    print(f"pbtlab scaling: in-process PBT, {args.iterations} iterations per trial, checkpoint and perturbation "
          f"every {args.interval}; median of {repeats} fresh process(es) each; {os.cpu_count()} cores"
          f"{', pinned to one CPU' if args.pin else ''}; load average {os.getloadavg()[0]:.1f} at start")
    rows = []
    for mode in args.modes:
        reference = None
        for population in args.populations:
            runs = [run_fresh(population, mode == "sync", args.iterations, args.interval, args.pin)
                    for _ in range(repeats)]
            overhead = statistics.median((r["wall_s"] - r["user_s"]) / r["reports"] * 1e6 for r in runs)
            wall = statistics.median(r["wall_s"] for r in runs)
            peak = statistics.median(r["peak_mb"] for r in runs)
            base = statistics.median(r["base_mb"] for r in runs)
            handoff = statistics.median(r["handoff_us"] for r in runs)
            reference = reference or overhead
            rows.append([mode, population, runs[0]["reports"], runs[0]["exploits"], f"{wall:.2f}",
                         f"{overhead:.1f}", f"{overhead / reference:.2f}x", f"{handoff:.1f}",
                         f"{overhead - handoff:.1f}", f"{peak:.0f}", f"{base:.0f}"])
            print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(HEADER, rows))
    print("\nµs/report: wall time minus the trainable's own time, per report. handoff: of which the thread round\n"
          "trip alone (measured separately with as many parked threads). rest: controller, scheduler, store,\n"
          "checkpoint copies. peak/base MB: max RSS of the run's process, and before Tuner.fit.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
