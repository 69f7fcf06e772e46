"""Where pbtlab's cost per report goes at a large population, by taking parts out of the run one at a time.

    python bench/report_budget.py                        # 1,024 trials x 50 iterations, greenlets, tmpfs, 1 round
    python bench/report_budget.py --population 256 --iterations 100 --rounds 3 --switch threads

The set-up is ``bench/scaling.py``'s (the tutorial's trainable and synchronous PBT every 4 iterations, in process,
default loggers on; cost per report = ``(fit wall - bare wall) / reports``, the bare loop measured in the same
process before and after). Each row runs in a fresh process with one more part taken out than the row above it,
so the difference between two rows is what that part costs:

1. the tutorial's PBT, as ``bench/scaling.py`` runs it;
2. no exploits: ``quantile_fraction=0`` (PBT still pauses every trial at each barrier and resumes it);
3. no PBT: ``FIFOScheduler`` (every report is simply continued);
4. no default loggers (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``: no progress.csv, TensorBoard or helper process);
5. no state saves during the run (``Controller._maybe_save`` replaced; the final save stays);
6. no controller: the executor alone drives the trainable (``start``, ``wait``, ``send(CONTINUE)``): what is
   left is the trial's side (``tune.report``, the checkpoint's move into its folder, the switch).

The rows of a round run one after another, and rounds repeat, so the machine's drift falls on each alike; the
figures are medians over rounds. Runs and the trainable's temporary directories are in ``/dev/shm``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _machine import machine  # bench/ is on the path when a benchmark runs as a script

STEPS = [
    ("pbt", "the tutorial's PBT (bench/scaling.py's run)", "exploits (quantile_fraction 0.5)"),
    ("no_exploits", "PBT with quantile_fraction=0: no exploits", "PBT's barriers: pausing and resuming every trial"),
    ("fifo", "FIFOScheduler: no PBT", "the default loggers (progress.csv, TensorBoard, their helper)"),
    ("no_loggers", "FIFO, loggers off", "state saves during the run (state.json, flushing rows)"),
    ("no_saves", "FIFO, loggers off, no state saves", "the controller's handling of a plain report"),
    ("executor", "the executor alone drives the trainable", "the trial's side: tune.report, checkpoint move, switch"),
]


def one(step: str, population: int, iterations: int, interval: int, switch: str, storage: str) -> dict:
    """Run one step in this process; return its fit and bare times."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from scaling import bare_trainable_work

    from pbtlab.executors.inprocess import InProcessExecutor

    bare, _ = bare_trainable_work(population, iterations, interval)
    if step == "executor":
        fit = _executor_only(population, iterations, interval, switch, storage)
    else:
        from pbtlab.examples.runs import run_toy_pbt, toy_scheduler

        scheduler = None
        if step == "no_exploits":
            scheduler = toy_scheduler(interval, True, quantile_fraction=0.0)
        elif step in ("fifo", "no_loggers", "no_saves"):
            from pbtlab.schedulers.fifo import FIFOScheduler

            scheduler = FIFOScheduler()
        if step == "no_saves":
            from pbtlab.engine.controller import Controller

            Controller._maybe_save = lambda self: None  # type: ignore[method-assign]
        start = time.perf_counter()
        run_toy_pbt(population=population, seed=0, iterations=iterations, perturbation_interval=interval, synch=True,
                    storage_path=storage, name="budget", executor=InProcessExecutor(greenlets=switch == "greenlets"),
                    scheduler=scheduler)
        fit = time.perf_counter() - start
    again, _ = bare_trainable_work(population, iterations, interval)
    return {"fit_s": fit, "bare_s": min(bare, again), "reports": population * iterations}


def _executor_only(population: int, iterations: int, interval: int, switch: str, storage: str) -> float:
    """The trainable under the executor, answered CONTINUE at every report by a loop with nothing else in it."""
    from pbtlab.examples.runs import initial_h0
    from pbtlab.examples.toy import train_func
    from pbtlab.executors.inprocess import InProcessExecutor
    from pbtlab.session import CONTINUE, StartSpec

    executor = InProcessExecutor(greenlets=switch == "greenlets")
    executor.setup(train_func, population)
    start = time.perf_counter()
    for index, h0 in enumerate(initial_h0(population)):
        trial_dir = os.path.join(storage, f"t{index}")
        os.makedirs(trial_dir)
        config = {"lr": 0.05, "h0": h0, "h1": 1.0 - h0, "checkpoint_interval": interval}
        executor.start(StartSpec(f"t{index}", config, trial_dir, None, 0))
    for _ in range(population * iterations):
        trial_id, _message = executor.wait()
        executor.send(trial_id, CONTINUE)
    elapsed = time.perf_counter() - start
    executor.shutdown()
    return elapsed


def run_fresh(step: str, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"}
    env["TMPDIR"] = "/dev/shm"
    if step in ("no_loggers", "no_saves"):
        env["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    storage = tempfile.mkdtemp(prefix="pbtlab_budget_", dir="/dev/shm")
    try:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", step, "--population", str(args.population),
             "--iterations", str(args.iterations), "--interval", str(args.interval), "--switch", args.switch,
             "--storage", storage], check=True, capture_output=True, text=True, env=env)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--interval", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--switch", default="greenlets", choices=["threads", "greenlets"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.population, args.iterations, args.interval, args.switch, args.storage)))
        return 0
    if not os.path.isdir("/dev/shm"):
        parser.error("needs /dev/shm (Linux) for the runs and the trainable's temporary directories")
    cost: dict[str, list[float]] = {step: [] for step, _, _ in STEPS}
    for _ in range(args.rounds):
        for step, _, _ in STEPS:
            figures = run_fresh(step, args)
            cost[step].append((figures["fit_s"] - figures["bare_s"]) / figures["reports"] * 1e6)
    print(f"Where a report's cost goes (python bench/report_budget.py --population {args.population} --iterations "
          f"{args.iterations} --rounds {args.rounds} --switch {args.switch}): {machine()}; "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'run':<48} {'µs/report':>10}  {'what the step below took out':<62} {'µs':>6}")
    medians = [statistics.median(cost[step]) for step, _, _ in STEPS]
    for index, (step, label, part) in enumerate(STEPS):
        below = medians[index + 1] if index + 1 < len(medians) else 0.0
        print(f"{label:<48} {medians[index]:>10.1f}  {part:<62} {medians[index] - below:>6.1f}")
    print("µs/report: (fit wall - bare wall) / reports, median over rounds; the last column is this row minus the "
          "next (the last row's own figure for the trial's side).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
