"""What a driver crash costs: iterations re-run after a SIGKILL, pbtlab's three executors and Ray Tune side by side.

    python bench/crash_cost.py [--repeats 3] [--kill-at 80] [--every 3] [--engines "pbtlab process,Ray Tune"]

The same script (``tests/crash_driver.py``) runs on each: 4 function trials at different speeds (0.2, 0.3,
1.2 and 1.6 s an iteration: the kill comes after Ray Tune's first experiment-state save, which it makes 10 s
into a run), 30 iterations each, a checkpoint every ``--every`` iterations, FIFO.
The driver is SIGKILLed when the trials together have run ``--kill-at`` iterations (counted when a report
returns to the trial), then the run is restored with ``Tuner.restore(path, trainable)``. Printed per
engine, as the median over ``--repeats`` runs (and every run):

- re-run: iterations run after the restore that had already run before the kill;
- floor: what no engine can avoid, each unfinished trial's iterations since its last checkpoint;
- finished re-run: trials that had finished before the kill and ran again;
- duplicate rows: rows whose ``training_iteration`` a trial's result file already had.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
sys.path.insert(0, TESTS)


def _tests_module(name: str) -> types.ModuleType:
    """``tests/<name>.py``, loaded by its path: this script's own name is ``crash_cost`` too, so ``import crash_cost``
    finds this script wherever it is imported as a module (``pytest bench`` collecting it)."""
    spec = importlib.util.spec_from_file_location(f"tests_{name}", os.path.join(TESTS, f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


kill_and_restore = _tests_module("crash_cost").kill_and_restore

ITERATIONS = 30
ENGINES = {
    "pbtlab in-process": ["--executor", "inprocess"],
    "pbtlab process": ["--executor", "process"],
    "pbtlab ray": ["--executor", "ray"],
    "Ray Tune": ["--framework", "ray-tune"],
}


def result_files(path: str) -> list[str]:
    """Each trial's result file: pbtlab's ``result.jsonl``, Ray Tune's ``result.json``."""
    found = []
    for folder, _, files in os.walk(path):
        for name in files:
            if name in ("result.jsonl", "result.json") and "checkpoint_" not in folder:
                found.append(os.path.join(folder, name))
    return found


def duplicate_rows(path: str) -> int:
    duplicates = 0
    for file in result_files(path):
        with open(file) as handle:
            iterations = [json.loads(line)["training_iteration"] for line in handle if line.strip()]
        duplicates += len(iterations) - len(set(iterations))
    return duplicates


def measure(args: list[str], kill_at: int, every: int, delays: str) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as workdir:
        run = kill_and_restore(workdir, [*args, "--every", str(every), "--delays", delays], kill_at)
        finished = {tid for tid, steps in run.before.items() if steps and steps[-1] == ITERATIONS}
        floor = sum((steps[-1] % every if every else steps[-1])
                    for tid, steps in run.before.items() if tid not in finished)
        return {"rerun": run.rerun_by_step(), "floor": floor,
                "finished_rerun": sum(1 for tid in finished if run.after.get(tid)),
                "duplicates": duplicate_rows(run.path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kill-at", type=int, default=80)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--delays", default="0.2,0.3,1.2,1.6", help="seconds an iteration, per trial")
    options = parser.parse_args()
    rows = collections.OrderedDict()
    for engine in options.engines.split(","):
        runs = [measure(ENGINES[engine], options.kill_at, options.every, options.delays) for _ in range(options.repeats)]
        rows[engine] = runs
        print(f"{engine}: {runs}", flush=True)
    print()
    print(f"4 trials x {ITERATIONS} iterations, a checkpoint every {options.every}, driver SIGKILLed at "
          f"{options.kill_at} iterations; median of {options.repeats} runs (each run in brackets)")
    print(f"{'engine':<18} {'re-run':>14} {'floor':>14} {'finished re-run':>18} {'duplicate rows':>16}")
    for engine, runs in rows.items():
        cells = []
        for key in ("rerun", "floor", "finished_rerun", "duplicates"):
            values = [r[key] for r in runs]
            cells.append(f"{statistics.median(values):g} {values}")
        print(f"{engine:<18} {cells[0]:>14} {cells[1]:>14} {cells[2]:>18} {cells[3]:>16}")


if __name__ == "__main__":
    main()
