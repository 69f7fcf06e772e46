"""Is pbtlab's PB2 statistically like Ray's? Ray's own ``pb2_example.py``, run unmodified on both.

    python bench/pb2_faithfulness.py                     # Ray 5 runs, pbtlab 10 runs, baseline 10 runs
    python bench/pb2_faithfulness.py --ray-runs 3 --pbtlab-runs 5 --baseline-runs 0

The example ships in the Ray wheel (``ray/tune/examples/pb2_example.py``: PB2 over ``lr`` in
[0.0001, 0.02] on ``pbt_function``, 8 trials, 30 iterations, a perturbation every 5). It runs as a whole
process in a fresh directory:

- Ray Tune: ``python pb2_example.py`` (Ray's PB2);
- pbtlab: ``python -m pbtlab.cli run pb2_example.py`` (the same script; ``ray.tune.schedulers.pb2`` is pbtlab's PB2);
- a baseline without PB2: the same trainable, trials and budget with lr fixed at the example's starting 0.0001
  (a short script of ours, run with ``pbtlab run``), to show how much PB2 changes the outcome at all.

Neither side is seeded (the example's trainable draws from the global ``random``/``np.random``), so every run
is an independent sample. For each run the bench reads every trial's last ``mean_accuracy`` from the run
directory and prints, per side, the median and interquartile range of (a) the best trial's final accuracy per
run and (b) every trial's final accuracy pooled over runs, with the two-sided Mann-Whitney U test's p-value
(scipy) for "the two samples come from the same distribution". A small p (< 0.05) would say the two PB2s
behave differently on this problem; a large p says the data cannot tell them apart.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def example_path() -> str:
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("Ray is not installed: pip install 'pbtlab[ray]' (the example ships in the Ray wheel)")
    return os.path.join(spec.submodule_search_locations[0], "tune", "examples", "pb2_example.py")


def final_accuracies(root: str) -> list[float]:
    """Every trial's last reported mean_accuracy under ``root`` (Ray's result.json or pbtlab's result.jsonl)."""
    finals = []
    for directory in sorted({os.path.dirname(p) for p in glob.glob(os.path.join(root, "**", "result.json*"),
                                                                    recursive=True)}):
        for name in ("result.jsonl", "result.json"):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                with open(path) as f:
                    rows = [json.loads(line) for line in f if line.strip()]
                rows = [r for r in rows if "mean_accuracy" in r]
                if rows:
                    finals.append(float(rows[-1]["mean_accuracy"]))
                break
    return finals


#: The baseline: the example's trainable and budget without PB2 (lr stays at the example's 0.0001), on pbtlab.
BASELINE = """
from ray import tune
from ray.tune.examples.pbt_function import pbt_function

tune.Tuner(
    pbt_function,
    param_space={"lr": 0.0001, "some_other_factor": 1, "checkpoint_interval": 5},
    tune_config=tune.TuneConfig(metric="mean_accuracy", mode="max", num_samples=8),
    run_config=tune.RunConfig(name="no_pb2", stop={"training_iteration": 30}, verbose=False),
).fit()
"""


def run_once(command: list[str]) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as home:
        if "BASELINE.py" in command:
            with open(os.path.join(home, "BASELINE.py"), "w") as f:
                f.write(BASELINE)
        env = {**os.environ, "HOME": home, "RAY_USAGE_STATS_ENABLED": "0"}
        started = time.perf_counter()
        done = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            raise RuntimeError(f"{' '.join(command)} failed: {lines[-1] if lines else done.returncode}")
        finals = final_accuracies(home)
    if len(finals) != 8:
        raise RuntimeError(f"{' '.join(command)}: expected 8 trials' results, found {len(finals)}")
    return finals, elapsed


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return median, q1, q3


def p_value(a: list[float], b: list[float]) -> float:
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ray-runs", type=int, default=5)
    parser.add_argument("--pbtlab-runs", type=int, default=10)
    parser.add_argument("--baseline-runs", type=int, default=10, help="runs without PB2 (0: skip)")
    args = parser.parse_args()
    example = example_path()
    sides = {
        "Ray Tune PB2": ([sys.executable, example], args.ray_runs),
        "pbtlab PB2 (pbtlab run)": ([sys.executable, "-m", "pbtlab.cli", "run", example], args.pbtlab_runs),
        "no PB2: lr stays 0.0001 (pbtlab run)": ([sys.executable, "-m", "pbtlab.cli", "run", "BASELINE.py"],
                                                 args.baseline_runs),
    }
    sides = {label: side for label, side in sides.items() if side[1] > 0}
    samples: dict[str, tuple[list[float], list[float], list[float]]] = {}
    for label, (command, runs) in sides.items():
        best, pooled, seconds = [], [], []
        for i in range(runs):
            finals, elapsed = run_once(command)
            best.append(max(finals))
            pooled.extend(finals)
            seconds.append(elapsed)
            print(f"{label} run {i + 1}/{runs}: best {max(finals):.1f}, trials {[round(x, 1) for x in finals]}, "
                  f"{elapsed:.0f} s", flush=True)
        samples[label] = (best, pooled, seconds)
    print(f"\npb2_example.py (8 trials x 30 iterations, lr in [0.0001, 0.02]); python {sys.version.split()[0]}\n")
    print("| | runs | best trial's final mean_accuracy: median [IQR] | every trial's final: median [IQR] "
          "| wall s (median) |")
    print("|---|---|---|---|---|")
    for label, (best, pooled, seconds) in samples.items():
        m, q1, q3 = quartiles(best)
        pm, pq1, pq3 = quartiles(pooled)
        print(f"| {label} | {len(best)} | {m:.1f} [{q1:.1f}, {q3:.1f}] | {pm:.1f} [{pq1:.1f}, {pq3:.1f}] "
              f"| {statistics.median(seconds):.0f} |")
    labels = list(samples)
    print("\nMann-Whitney U, two-sided (best per run; every trial):")
    for other in labels[1:]:
        (a_best, a_pooled, _), (b_best, b_pooled, _) = samples[labels[0]], samples[other]
        print(f"- {labels[0]} vs {other}: p = {p_value(a_best, b_best):.3f}; p = {p_value(a_pooled, b_pooled):.3f}")
    if len(labels) == 3:
        (a_best, a_pooled, _), (b_best, b_pooled, _) = samples[labels[1]], samples[labels[2]]
        print(f"- {labels[1]} vs {labels[2]}: p = {p_value(a_best, b_best):.3f}; p = {p_value(a_pooled, b_pooled):.3f}")


if __name__ == "__main__":
    main()
