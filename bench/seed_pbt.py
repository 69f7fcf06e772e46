"""Seed benchmark: the tutorial's 2-trial PBT experiment as a whole process vs a bare numpy loop.

Both sides are timed as whole processes (interpreter start, imports, work, exit):

- pbtlab: the tutorial's own code (``tests/tutorial_code.py``: the tutorial with its imports swapped) runs
  ``run_pbt_2(seed=0)`` with its default verbosity: 2 trials x 100 iterations, synchronous PBT every 4
  iterations, 25 checkpoints per trial, results, events and checkpoints written to disk.
- bare loop: ``import numpy`` and the same arithmetic (2 trials x 100 gradient steps of the toy problem).
- for information, the bare loop with the tutorial trainable's own file work added (a temporary directory
  every step, a pickled checkpoint every 4): what any tool running the tutorial's code pays on top of the
  bare loop, so the part that is pbtlab's is the difference between this row and pbtlab's.
- for information, when greenlet is installed (``pbtlab[fast]``), the same tutorial code with trials as
  greenlets (``pbtlab.config.DEFAULT_EXECUTOR = "greenlets"``: the executor a RunConfig that names none gets).

The goal (issue 19): pbtlab at most 2.0x the bare loop's whole-process time, with Ray's default loggers on
(result.json, progress.csv and, as tensorboardX is installed in the test environment, TensorBoard event
files; the check below fails if any is missing). Ray Tune needs about 134 s.

Children run with bytecode caching on, as an installed package does (``PYTHONDONTWRITEBYTECODE`` is
removed from their environment; the uncounted first run of each writes the caches).

    python bench/seed_pbt.py [--runs 7] [--tmpfs] [--check] [--instructions] [--against REV]

``--against REV`` adds another revision's pbtlab (its ``src`` from ``git archive``, as ``bench/scaling.py
--against`` takes it) to the rotation, running the same tutorial code, and prints its row and the paired
differences with this tree's run by run.

``--check`` exits with status 1 when the ratio is above the goal (timings are never asserted in tests).
``--instructions`` also counts the instructions each whole process executes, under valgrind's callgrind
(installed separately: ``apt-get install valgrind``): one run each, OpenBLAS on one thread and a fixed hash
seed, so the count repeats within about 0.01% from run to run, where wall times move by several percent. It
is not the goal's figure (a syscall, a thread switch or a cache miss counts as nothing), but it tells whether
a change to pbtlab took work out of the process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _machine import io_stall, machine  # bench/ is on the path when a benchmark runs as a script
from scaling import check_imported, checkout_source, source_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
GOAL = 2.0
TMPFS = "/dev/shm"

PBTLAB_RUN = """
import sys
sys.path.insert(0, {tests!r})
import pbtlab.config
pbtlab.config.DEFAULT_EXECUTOR = {executor!r}
import tutorial_code
results, scheduler = tutorial_code.run_pbt_2(seed=0, storage_path={storage!r})
print("pbtlab imported from", pbtlab.__file__)
"""

BARE_LOOP = """
import numpy as np

def Q(theta):
    return 1.2 - (3 / 4 * theta[0] ** 2 + theta[1] ** 2)

for h0 in (0.0, 1.0):
    h = np.array([h0, 1.0 - h0])
    theta = np.array([0.9, 0.9])
    lr = 0.05
    for step in range(100):
        theta_grad = -2 * h * theta
        theta_grad[0] *= 3 / 4
        theta = theta + lr * theta_grad
        q = Q(theta)
"""

#: The bare loop plus the file work the tutorial's trainable itself does: a temporary directory every step and a
#: pickled checkpoint in it every 4 steps (what pbtlab's side pays whatever the tool).
BARE_LOOP_WITH_FILES = BARE_LOOP.replace("import numpy as np", "import os, pickle, tempfile\nimport numpy as np") + """
        with tempfile.TemporaryDirectory() as directory:
            if (step + 1) % 4 == 0:
                with open(os.path.join(directory, "checkpoint.pkl"), "wb") as handle:
                    pickle.dump({"h": h, "train_step": step + 1, "theta": theta}, handle)
"""

IMPORT_TIME = """
import time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
import pbtlab
from pbtlab import tune, Tuner, TuneConfig
from pbtlab.schedulers import PopulationBasedTraining
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


CPU: dict[str, list[float]] = {}


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: The children's environment: as an installed package runs (bytecode caches written and used).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_process(code: str, label: str | None = None, source: str | None = None) -> tuple[float, str]:
    """Wall time of ``python -c code`` as a whole process, and its stdout (CPU time recorded under label);
    ``source``: a ``src`` folder whose pbtlab it imports, ahead of the installed one."""
    env = source_env(CHILD_ENV, source)
    cpu = _child_cpu()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, check=True, env=env)
    elapsed = time.perf_counter() - start
    if label:
        CPU.setdefault(label, []).append(_child_cpu() - cpu)
    return elapsed, done.stdout


def run_pbtlab(storage_root: str, executor: str, index: int, timed: bool = True,
               source: str | None = None) -> tuple[float, str]:
    """The tutorial's code as a whole process (``executor``: the default its RunConfig gets; ``source``: another
    ``src`` folder's pbtlab); its wall time and where it wrote its run."""
    storage = os.path.join(storage_root, f"{executor}{'-against' if source else ''}{index}")
    elapsed, out = run_process(PBTLAB_RUN.format(tests=TESTS, storage=storage, executor=executor),
                               f"pbtlab {executor}{' against' if source else ''}" if timed else None, source)
    check_imported(out.rsplit("pbtlab imported from ", 1)[-1].strip(), source)
    return elapsed, storage


def verify(storage: str) -> str:
    """Check (outside the timing) that the last run left its results and checkpoints on disk."""
    (name,) = os.listdir(storage)
    path = os.path.join(storage, name)
    with open(os.path.join(path, "experiment.json"), encoding="utf-8") as handle:
        trial_ids = json.load(handle)["trial_ids"]
    summary = []
    for trial_id in trial_ids:
        with open(os.path.join(path, trial_id, "result.jsonl"), encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
        files = os.listdir(os.path.join(path, trial_id))
        checkpoints = [d for d in files if d.startswith("checkpoint_")]
        assert len(rows) == 100 and rows[-1]["Q"] >= 1.19, (trial_id, len(rows), rows[-1]["Q"])
        assert {"result.json", "progress.csv"} <= set(files), files
        if tensorboard_expected():
            assert any(name.startswith("events.out.tfevents.") for name in files), files
        summary.append(f"{trial_id}: {len(rows)} rows, {len(checkpoints)} checkpoints, Q={rows[-1]['Q']:.4f}")
    with open(os.path.join(path, "events.jsonl"), encoding="utf-8") as handle:
        exploits = sum('"event": "exploit"' in line for line in handle)
    assert exploits == 24, exploits
    return "; ".join(summary) + f"; {exploits} exploits"


def instructions(code: str, tmpdir: str) -> int:
    """Instructions executed by ``python -c code`` as a whole process, counted by callgrind."""
    env = dict(CHILD_ENV, OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0", TMPDIR=tmpdir)
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c",
                           code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True, env=env)
    counts = [line.split()[-1] for line in done.stderr.splitlines() if "Collected :" in line]
    if not counts:
        raise RuntimeError(f"callgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(counts[-1])


def tensorboard_expected() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboardX") is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each (median reported; default 7)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if the ratio is above {GOAL}")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each whole process's instructions under valgrind's callgrind (one run each)")
    parser.add_argument("--against", metavar="REV",
                        help="also time another revision's pbtlab (its src from git archive) in the rotation, and "
                             "print the paired differences with this tree's")
    parser.add_argument("--tmpfs", action="store_true",
                        help=f"the runs and every child's TMPDIR on {TMPFS} (the trainable's temporary directories "
                             "and pbtlab's files in memory; the bare loop writes no files either way)")
    args = parser.parse_args(argv)

    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions: valgrind is not installed (apt-get install valgrind)")
    load_before = os.getloadavg()
    if args.tmpfs:
        if not os.path.isdir(TMPFS):
            parser.error(f"--tmpfs: {TMPFS} does not exist on this machine")
        CHILD_ENV["TMPDIR"] = TMPFS
    storage_root = tempfile.mkdtemp(prefix="pbtlab_bench_", dir=TMPFS if args.tmpfs else None)
    against: list[float] = []
    try:
        source = None
        if args.against:
            source = checkout_source(args.against, tempfile.mkdtemp(dir=storage_root))
            run_pbtlab(storage_root, "inprocess", 0, timed=False, source=source)
        # one warm-up of each, not counted, then the timed runs in rotation, so that the machine's drift
        # (its speed moves by tens of percent within a minute) falls on every row alike
        run_process(BARE_LOOP)
        run_process(BARE_LOOP_WITH_FILES)
        executors = ["inprocess"] + (["greenlets"] if importlib.util.find_spec("greenlet") is not None else [])
        for executor in executors:
            run_pbtlab(storage_root, executor, 0, timed=False)
        bare: list[float] = []
        bare_files: list[float] = []
        times: dict[str, list[float]] = {executor: [] for executor in executors}
        last_storage: dict[str, str] = {}
        for i in range(1, args.runs + 1):
            bare.append(run_process(BARE_LOOP, "bare")[0])
            bare_files.append(run_process(BARE_LOOP_WITH_FILES)[0])
            for executor in executors:
                elapsed, last_storage[executor] = run_pbtlab(storage_root, executor, i)
                times[executor].append(elapsed)
            if source is not None:
                against.append(run_pbtlab(storage_root, "inprocess", i, source=source)[0])
        checked = verify(last_storage["inprocess"])
        for executor in executors[1:]:
            verify(last_storage[executor])
        pbt, greenlets = times["inprocess"], times.get("greenlets", [])
        numpy_import, pbtlab_import = [], []
        for _ in range(args.runs):
            _, out = run_process(IMPORT_TIME)
            a, b = map(float, out.split())
            numpy_import.append(a)
            pbtlab_import.append(b)
        bare_import, _ = run_process("import numpy")
        whole_import = [run_process("import pbtlab")[0] for _ in range(args.runs)]
        counted: dict[str, int] = {}
        if args.instructions:
            scratch = tempfile.mkdtemp(dir=storage_root)
            counted["bare"] = instructions(BARE_LOOP, scratch)
            counted["pbtlab"] = instructions(
                PBTLAB_RUN.format(tests=TESTS, storage=os.path.join(scratch, "run"), executor="inprocess"), scratch)
    finally:
        shutil.rmtree(storage_root, ignore_errors=True)

    bare_med, pbt_med = statistics.median(bare), statistics.median(pbt)
    ratio = pbt_med / bare_med
    rows = [
        ("bare numpy loop (whole process)", bare_med, min(bare), max(bare)),
        ("bare loop + the trainable's temp dirs and pickles", statistics.median(bare_files), min(bare_files),
         max(bare_files)),
        ("pbtlab tutorial 2-trial PBT (whole process)", pbt_med, min(pbt), max(pbt)),
    ] + ([("  the same, trials as greenlets (informative)", statistics.median(greenlets), min(greenlets),
           max(greenlets))] if greenlets else []) + ([
        (f"  the same with {args.against}'s pbtlab", statistics.median(against), min(against), max(against))]
        if against else []) + [
        ("python -c 'import pbtlab' (whole process)", statistics.median(whole_import), min(whole_import),
         max(whole_import)),
        ("  import numpy (in process)", statistics.median(numpy_import), min(numpy_import), max(numpy_import)),
        ("  import pbtlab after numpy (in process)", statistics.median(pbtlab_import), min(pbtlab_import),
         max(pbtlab_import)),
    ]
    width = max(len(r[0]) for r in rows)
    stall = io_stall()
    load_after = os.getloadavg()
    where = f", runs and TMPDIR on {TMPFS}" if args.tmpfs else ""
    print(f"Seed benchmark (python bench/seed_pbt.py --runs {args.runs}{' --tmpfs' if args.tmpfs else ''}"
          f"{f' --against {args.against}' if args.against else ''}): "
          f"tutorial 2-trial PBT, {args.runs} runs each (median, min, max), in rotation; {machine()}{where}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)"
          + (f"; {stall}" if stall else ""))
    print(f"{'what':<{width}}  {'median s':>9}  {'min s':>7}  {'max s':>7}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 7}  {'-' * 7}")
    for label, med, low, high in rows:
        print(f"{label:<{width}}  {med:9.3f}  {low:7.3f}  {high:7.3f}")
    verdict = "within" if ratio <= GOAL else "ABOVE"
    print(f"{'ratio pbtlab / bare loop (wall)':<{width}}  {ratio:8.2f}x  ({verdict} the goal of {GOAL}x)")
    print(f"{'ratio pbtlab / bare loop with the same file work':<{width}}  "
          f"{pbt_med / statistics.median(bare_files):8.2f}x  (informative: the goal is against the bare loop)")
    cpu_bare, cpu_pbt = statistics.median(CPU["bare"]), statistics.median(CPU["pbtlab inprocess"])
    print(f"{'CPU s (user+sys): bare loop / pbtlab':<{width}}  {cpu_bare:9.3f}  {cpu_pbt:7.3f}  "
          f"ratio {cpu_pbt / cpu_bare:.2f}x (less sensitive to other load on the machine)")
    if counted:
        print(f"{'instructions (callgrind): bare loop / pbtlab':<{width}}  {counted['bare'] / 1e6:8.1f}M  "
              f"{counted['pbtlab'] / 1e6:.1f}M  ratio {counted['pbtlab'] / counted['bare']:.3f}x "
              "(one run each; repeats within about 0.01%; not the goal's figure)")
    if against:
        differences = [(ours - theirs) * 1e3 for ours, theirs in zip(pbt, against)]
        print(f"{f'this tree against {args.against}, run by run (ms)':<{width}}  "
              f"{statistics.median(differences):+8.1f}   median; {sum(d < 0 for d in differences)} of "
              f"{len(differences)} runs faster here; ratio with {args.against}'s: "
              f"{statistics.median(against) / bare_med:.2f}x")
    print(f"checked: {checked}" + ("; TensorBoard event files written" if tensorboard_expected() else
                                    "; tensorboardX not installed: no TensorBoard files (as in Ray)"))
    return 1 if args.check and ratio > GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
