"""pbtlab's own cost per report, and peak memory, of in-process PBT with 2, 64 and 1,024 trials.

    python bench/scaling.py                 # 2, 64, 1,024 trials, 100 iterations, median of 3 runs each
    python bench/scaling.py --quick         # 1 run each
    python bench/scaling.py --populations 2 64 1024 --repeats 5
    python bench/scaling.py --switch threads    # only the default in-process executor (trials as threads)
    python bench/scaling.py --populations 1024 --switch greenlets --helper on off --tmpfs
                                            # the loggers' helper process on and off, runs alternating, on tmpfs
    python bench/scaling.py --populations 1024 --switch greenlets --helper on rows --tmpfs
                                            # result rows encoded by the driver, or by the helper
    python bench/scaling.py --populations 1024 --switch greenlets --tmpfs --num-to-keep 4
                                            # with CheckpointConfig(num_to_keep=4), as Ray's pbt_function.py
    python bench/scaling.py --populations 1024 --tmpfs --repeats 6 --against HEAD~3
                                            # this tree's pbtlab against another revision's, runs alternating

The set-up (issue 19): the tutorial's trainable (``pbtlab.examples.toy.train_func``: a gradient step on
the toy problem, a temporary directory every step and a pickled checkpoint every 4) with the tutorial's
synchronous PBT every 4 iterations (``pbtlab.examples.runs.run_toy_pbt``), in-process, with Ray's default
loggers on (result.json, progress.csv, and TensorBoard files where tensorboardX is installed).

Every run is a fresh Python process. In it, a bare loop does the same trainable work without pbtlab
(the same numpy step, result dict, temporary directory and pickle, trials x iterations times) before
and after ``run_toy_pbt`` runs; the faster of the two counts (the temporary directories dominate it,
and their cost drifts with the disk's other traffic). pbtlab's cost per report is ``(fit wall - bare wall) / reports``: everything
pbtlab does (starting trials, handing control to each trial and back, adopting checkpoints into the
run directory, the scheduler, the result rows, events and logger files, state saves). Peak memory is
the process's maximum resident set size (``ru_maxrss``); ``base`` is the same just before the fit.

Each population runs twice by default: trials as threads (``InProcessExecutor()``, the default) and as
greenlets of the driver's thread (``InProcessExecutor(greenlets=True)``, ``pbtlab[fast]``), the ``switch``
column.

Goal (issue 19): at most 30 µs per report at 1,024 trials, peak memory at most 300 MB.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _machine import io_stall, machine  # bench/ is on the path when a benchmark runs as a script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADER = ["mode", "switch", "helper", "code", "trials", "reports", "exploits", "fit s", "bare s", "µs/report", "CPU µs/report", "handoff µs",
          "peak MB", "base MB"]


def bare_trainable_work(population: int, iterations: int, interval: int) -> tuple[float, float]:
    """The trainable's own work for every report of the run, without pbtlab; returns its wall and CPU time."""
    import pickle

    import numpy as np

    from pbtlab.examples.runs import initial_h0
    from pbtlab.examples.toy import Q, get_init_theta, grad_Qhat

    start, cpu = time.perf_counter(), time.process_time()
    for h0 in initial_h0(population):
        h1 = 1.0 - h0
        h = np.array([h0, h1]).astype(float)
        lr = 0.05
        theta = get_init_theta()
        for train_step in range(1, iterations + 1):
            theta = theta + lr * np.asarray(grad_Qhat(theta, h)["theta"])
            result = {"Q": Q(theta), "theta0": theta[0], "theta1": theta[1], "h0": h0, "h1": h1,
                      "train_step": train_step}
            with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
                if train_step % interval == 0:
                    with open(os.path.join(temp_checkpoint_dir, "checkpoint.pkl"), "wb") as handle:
                        pickle.dump({"h": h, "train_step": train_step, "theta": theta}, handle)
            del result
    return time.perf_counter() - start, time.process_time() - cpu


def _one(population: int, synch: bool, iterations: int, interval: int, storage: str, switch: str,
         num_to_keep: int | None = None) -> dict:
    """Run the bare loop, then the experiment, in this process; return its figures."""
    import resource

    from pbtlab.config import CheckpointConfig
    from pbtlab.examples.runs import run_toy_pbt
    from pbtlab.executors.inprocess import InProcessExecutor

    bare, bare_cpu = bare_trainable_work(population, iterations, interval)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), time.process_time()
    results = run_toy_pbt(population=population, seed=0, iterations=iterations, perturbation_interval=interval,
                          synch=synch, storage_path=storage, name="scaling",
                          executor=InProcessExecutor(greenlets=switch == "greenlets"),
                          checkpoint_config=CheckpointConfig(num_to_keep=num_to_keep) if num_to_keep else None)
    wall, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    again, again_cpu = bare_trainable_work(population, iterations, interval)  # the disk's speed drifts: the
    bare, bare_cpu = min(bare, again), min(bare_cpu, again_cpu)              # faster of before and after
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = 0
    for r in results:
        with open(os.path.join(r.path, "result.jsonl"), "rb") as handle:
            rows += sum(1 for _ in handle)
        assert {"result.json", "progress.csv"} <= set(os.listdir(r.path))
    import pbtlab

    return {"population": population, "synch": synch, "wall_s": wall, "bare_s": bare, "fit_cpu_s": fit_cpu,
            "pbtlab": os.path.realpath(pbtlab.__file__),
            "bare_cpu_s": bare_cpu, "reports": rows,
            "exploits": len(results.events_of("exploit")), "peak_mb": peak, "base_mb": base,
            "handoff_us": _handoff_us(population, storage, switch)}


def _handoff_us(population: int, storage: str, switch: str, rounds: int = 20_000) -> float:
    """The in-process executor's floor: one report's round trip between the driver and a trial thread
    (two lock handoffs, the OS waking each thread) with ``population`` parked trial threads, and nothing
    else (no scheduler, no store): a trainable that only calls ``tune.report({})``."""
    from pbtlab import tune
    from pbtlab.executors.inprocess import InProcessExecutor
    from pbtlab.session import CONTINUE, STOP, StartSpec

    def only_reports(config):
        while True:
            tune.report({})

    executor = InProcessExecutor(greenlets=switch == "greenlets")
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


def run_fresh(population: int, synch: bool, iterations: int, interval: int, pin: bool, switch: str,
              helper: str = "on", tmpfs: bool = False, num_to_keep: int | None = None,
              source: str | None = None) -> dict:
    """One experiment in a fresh process; ``source``: a ``src`` folder whose pbtlab it imports (None: this tree's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE",
                                                           "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")}
    env = source_env(env, source)  # the loggers' helper gets the same path
    env["PBTLAB_LOGGER_PROCESS"] = "0" if helper == "off" else "1"
    env["PBTLAB_ROW_WRITER"] = "1" if helper == "rows" else "0"
    scratch = "/dev/shm" if tmpfs else None
    if scratch:
        env["TMPDIR"] = scratch  # the trainable's temporary directories too
    with tempfile.TemporaryDirectory(prefix="pbtlab_scaling_", dir=scratch) as storage:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", str(population), "--mode",
             "sync" if synch else "async", "--iterations", str(iterations), "--interval", str(interval),
             "--storage", storage, "--switch", switch] + (["--pin"] if pin else [])
            + (["--num-to-keep", str(num_to_keep)] if num_to_keep else []),
            check=True, capture_output=True, text=True, env=env)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    check_imported(figures["pbtlab"], source)
    return figures


def source_env(env: dict[str, str], source: str | None) -> dict[str, str]:
    """``env`` for a child that imports pbtlab from the ``src`` folder ``source``, ahead of the installed (editable)
    one; ``env`` itself for None (this tree's)."""
    if source is None:
        return env
    return dict(env, PYTHONPATH=os.pathsep.join([source] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))


def check_imported(path: str, source: str | None) -> None:
    """Stop the benchmark when a child meant to run ``source``'s pbtlab imported it from ``path`` elsewhere."""
    if source is not None and not os.path.realpath(path).startswith(os.path.realpath(source) + os.sep):
        raise RuntimeError(f"--against: the run imported pbtlab from {path}, not from {source}")


def checkout_source(revision: str, into: str) -> str:
    """``revision``'s ``src`` folder (git archive) under ``into``; returns its path. A clear error when this is not
    a git checkout or the revision is unknown."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", revision, "src"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"--against {revision}: git archive failed: {archive.stderr.decode(errors='replace').strip()}"
                         " (give a commit, branch or tag of this checkout, e.g. HEAD~1)")
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    source = os.path.realpath(os.path.join(into, "src"))
    for tree in (source, os.path.join(ROOT, "src")):  # bytecode caches first, as an installed package has them:
        subprocess.run([sys.executable, "-m", "compileall", "-q", tree], check=True)  # no run pays for compiling
    return source


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
    parser.add_argument("--modes", nargs="+", default=["sync"], choices=["sync", "async"])
    parser.add_argument("--switch", nargs="+", default=["threads", "greenlets"], choices=["threads", "greenlets"],
                        help="how the in-process executor passes control: trial threads (the default executor) "
                             "or greenlets (InProcessExecutor(greenlets=True))")
    parser.add_argument("--pin", action="store_true",
                        help="run each experiment pinned to one CPU (os.sched_setaffinity): the in-process executor "
                             "runs one thread at a time, and waking a thread on another CPU is slow, above all in VMs")
    parser.add_argument("--helper", nargs="+", default=["on"], choices=["on", "rows", "off"],
                        help="the default loggers' helper process (PBTLAB_LOGGER_PROCESS): on (it writes progress.csv "
                             "and TensorBoard files), rows (and result.jsonl rows: PBTLAB_ROW_WRITER=1), off; with "
                             "several, their runs alternate, so the machine's drift falls on each alike")
    parser.add_argument("--tmpfs", action="store_true",
                        help="the run and the trainable's temporary directories in /dev/shm (TMPDIR): pbtlab's own "
                             "cost without the disk's, which on a shared VM varies by 2x between runs")
    parser.add_argument("--num-to-keep", type=int, default=None,
                        help="CheckpointConfig(num_to_keep=N) (Ray's pbt_function.py keeps 4; the tutorial keeps all)")
    parser.add_argument("--against", metavar="REV",
                        help="also run another revision's pbtlab (its src folder, from git archive), alternating with "
                             "this tree's run by run, and print the paired differences: the machine's drift falls on "
                             "both alike")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="sync", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        if args.pin:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(json.dumps(_one(args.one, args.mode == "sync", args.iterations, args.interval, args.storage,
                              args.switch[0], args.num_to_keep)))
        return 0
    repeats = 1 if args.quick else args.repeats
    print(f"pbtlab scaling (python bench/scaling.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}): "
          f"the tutorial's trainable and PBT, in-process, default loggers on, {args.iterations} iterations per "
          f"trial, checkpoint and perturbation every {args.interval}; median of {repeats} fresh process(es) each; "
          f"{machine()}{', pinned to one CPU' if args.pin else ''}"
          f"{f', num_to_keep={args.num_to_keep}' if args.num_to_keep else ''}{', run and TMPDIR on /dev/shm' if args.tmpfs else ''}; load average {os.getloadavg()[0]:.2f} at start"
          + (f"; {stall}" if (stall := io_stall()) else ""))
    with tempfile.TemporaryDirectory(prefix="pbtlab_against_") as scratch:
        codes = {"here": None}
        if args.against:
            codes = {args.against: checkout_source(args.against, scratch), "here": None}
        rows, pairs = measure(args, repeats, codes)
    print(f"load average {os.getloadavg()[0]:.2f} at the end" + (f"; {stall}" if (stall := io_stall()) else ""))
    print()
    print(table(HEADER, rows))
    if pairs:
        print(f"\nhere against {args.against}, run by run (alternating; negative: here is faster):")
        print(table(["mode", "switch", "helper", "trials", "µs/report, each pair", "median", "pairs faster"], pairs))
    print("\nµs/report: (fit wall - bare wall) / reports, pbtlab's own cost (goal: <= 30 at 1,024 trials). CPU µs/report:\n"
          "the same with CPU time (all threads; less sensitive to other load, blind to waiting). fit/bare s:\n"
          "the experiment and the same trainable work without pbtlab, in the same process. handoff: the thread round\n"
          "trip alone (a trainable that only reports, as many parked threads), part of the cost. peak/base MB: max\n"
          "RSS of the run's process, and before the fit (goal: peak <= 300). code: this tree, or --against's revision.")
    return 0


def measure(args: argparse.Namespace, repeats: int, codes: dict[str, str | None]) -> tuple[list[list[str]],
                                                                                            list[list[str]]]:
    """Every setting's runs, alternating helper settings and code versions run by run; the table's rows, and
    with two code versions the paired differences (here minus the other, per repeat)."""
    rows, pairs = [], []
    for mode, population, switch in itertools.product(args.modes, args.populations, args.switch):
        by_variant: dict[tuple[str, str], list[dict]] = {(h, c): [] for h in args.helper for c in codes}
        for repeat in range(repeats):  # alternating: helper on, off, on, off, ...; the code order flips each time
            for helper in args.helper:
                for code in (list(codes) if repeat % 2 == 0 else list(codes)[::-1]):
                    by_variant[helper, code].append(run_fresh(
                        population, mode == "sync", args.iterations, args.interval, args.pin, switch, helper,
                        args.tmpfs, args.num_to_keep, codes[code]))
        for (helper, code), runs in by_variant.items():
            overhead = statistics.median((r["wall_s"] - r["bare_s"]) / r["reports"] * 1e6 for r in runs)
            cpu_overhead = statistics.median((r["fit_cpu_s"] - r["bare_cpu_s"]) / r["reports"] * 1e6 for r in runs)
            rows.append([mode, switch, helper, code, population, runs[0]["reports"], runs[0]["exploits"],
                         f"{statistics.median(r['wall_s'] for r in runs):.2f}",
                         f"{statistics.median(r['bare_s'] for r in runs):.2f}", f"{overhead:.1f}",
                         f"{cpu_overhead:.1f}", f"{statistics.median(r['handoff_us'] for r in runs):.1f}",
                         f"{statistics.median(r['peak_mb'] for r in runs):.0f}",
                         f"{statistics.median(r['base_mb'] for r in runs):.0f}"])
            print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
        if len(codes) == 2:
            other = next(code for code in codes if code != "here")
            for helper in args.helper:
                differences = [(h["wall_s"] - h["bare_s"] - o["wall_s"] + o["bare_s"]) / h["reports"] * 1e6
                               for h, o in zip(by_variant[helper, "here"], by_variant[helper, other])]
                pairs.append([mode, switch, helper, population, " ".join(f"{d:+.1f}" for d in differences),
                              f"{statistics.median(differences):+.1f}",
                              f"{sum(d < 0 for d in differences)} of {len(differences)}"])
    return rows, pairs


if __name__ == "__main__":
    sys.exit(main())
