"""Ray Tune's own PBT examples at full length, as whole processes on Ray Tune and on pbtlab (`pbtlab run`).

    python bench/ray_examples.py                          # full runs: Ray once, pbtlab 3 times each
    python bench/ray_examples.py --repeats 5 --ray-repeats 3
    python bench/ray_examples.py --smoke-test             # the examples' --smoke-test runs (quick)

Each example runs from the installed Ray wheel (``ray/tune/examples/``), unmodified:

- Ray Tune: ``python EXAMPLE.py``;
- pbtlab in-process: ``python -m pbtlab.cli run EXAMPLE.py``;
- pbtlab process executor: ``python -m pbtlab.cli run --executor process EXAMPLE.py``.

The examples: ``pbt_function.py`` (8 trials, 1,000 iterations), ``pbt_example.py`` (the class API, 8
trials, 1,000 iterations), ``pb2_example.py`` (8 trials, 30 iterations; Ray's PB2 needs GPy) and
``pbt_convnet_function_example.py`` (4 trials of a small convnet until one reaches 0.96 accuracy or 100
iterations). The convnet reads MNIST through torchvision from ``~/data``; no download happens here: the
bench writes an MNIST-format data set there first (``tests/mnist_digits.py``: scikit-learn's 8x8 digits,
upscaled to 28x28, the four idx files torchvision looks for). Where torchvision does not import (no build
matches a CPU-only torch from PyPI), both tools run with the tests' torchvision stand-in, and the table
says so. That row needs torch and scikit-learn.

Wall time is the whole process (interpreter start, imports, Ray start-up, the run, shutdown). Every
process runs in a fresh temporary directory with HOME pointed there, so Ray's ``~/ray_results`` and
pbtlab's results never accumulate. "best" is the highest ``mean_accuracy`` in any trial's
``result.json`` (both tools write it). Figures are medians of the repeats; ratios divide Ray Tune's
median by pbtlab's from the same invocation. A run that fails is reported with its last error line,
never timed.
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

EXAMPLES = ("pbt_function.py", "pbt_example.py", "pb2_example.py", "pbt_convnet_function_example.py")
CONVNET = "pbt_convnet_function_example.py"
TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
METRIC = "mean_accuracy"


def convnet_setup() -> tuple[list[str], str]:
    """PYTHONPATH entries for the convnet's processes (the tests' torchvision stand-in where the real
    torchvision does not import) and a note for the table ("" with the real one)."""
    sys.path.insert(0, TESTS)
    from mnist_digits import torchvision_path

    extra = torchvision_path()
    note = "" if not extra else ("torchvision does not import here (no build matches this CPU-only torch), so both "
                                 "tools use the tests' stand-in (tests/fixtures/torchvision_standin: MNIST files, "
                                 "ToTensor, Normalize)")
    return extra, note


def best_metric(home: str) -> float | None:
    best = None
    for path in glob.glob(os.path.join(home, "**", "result.json"), recursive=True):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    value = json.loads(line).get(METRIC)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, (int, float)) and (best is None or value > best):
                    best = float(value)
    return best


def examples_dir() -> str:
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("Ray is not installed: pip install 'pbtlab[ray]' (the examples ship in the Ray wheel)")
    return os.path.join(spec.submodule_search_locations[0], "tune", "examples")


def time_process(command: list[str], example: str) -> tuple[float | None, float | None, str]:
    """Seconds and best metric for one whole process in a fresh HOME (None and the last error line if it failed)."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "RAY_USAGE_STATS_ENABLED": "0"}
        if example == CONVNET:
            from mnist_digits import write_mnist_from_digits

            write_mnist_from_digits(os.path.join(home, "data"))  # where torchvision looks: ~/data/MNIST/raw
            extra, _ = convnet_setup()
            env["PYTHONPATH"] = os.pathsep.join([*extra, *filter(None, [env.get("PYTHONPATH")])])
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed packages run
        started = time.perf_counter()
        done = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        best = best_metric(home)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, None, lines[-1] if lines else f"exit code {done.returncode}"
    return elapsed, best, ""


def measure(name: str, command: list[str], example: str, repeats: int) -> tuple[float | None, float | None, str]:
    times, bests = [], []
    for index in range(repeats):
        seconds, best, error = time_process(command, example)
        if seconds is None:
            print(f"  {name}: failed ({error})", flush=True)
            return None, None, error
        times.append(seconds)
        if best is not None:
            bests.append(best)
        print(f"  {name} run {index + 1}/{repeats}: {seconds:.2f} s, best {METRIC} {best}", flush=True)
    return statistics.median(times), (statistics.median(bests) if bests else None), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke-test", action="store_true", help="the examples' --smoke-test runs instead of full")
    parser.add_argument("--repeats", type=int, default=3, help="pbtlab runs per example and executor (default 3)")
    parser.add_argument("--ray-repeats", type=int, default=1, help="Ray Tune runs per example (default 1)")
    parser.add_argument("--skip-ray", action="store_true", help="time pbtlab only")
    parser.add_argument("--examples", nargs="+", default=list(EXAMPLES), choices=EXAMPLES)
    args = parser.parse_args()

    folder = examples_dir()
    flags = ["--smoke-test"] if args.smoke_test else []
    load_before = os.getloadavg()[0]
    rows = []
    notes: list[str] = []
    for example in args.examples:
        path = os.path.join(folder, example)
        print(f"{example} {' '.join(flags)}", flush=True)
        if example == CONVNET:
            note = convnet_setup()[1]
            if note:
                notes.append(f"{example}: {note}.")
                print(f"  {note}", flush=True)
        ray = (None, None, "skipped") if args.skip_ray else measure(
            "Ray Tune", [sys.executable, path, *flags], example, args.ray_repeats)
        inprocess = measure("pbtlab in-process", [sys.executable, "-m", "pbtlab.cli", "run", path, *flags],
                            example, args.repeats)
        process = measure("pbtlab process", [sys.executable, "-m", "pbtlab.cli", "run", "--executor", "process",
                                             path, *flags], example, args.repeats)
        rows.append((example, ray, inprocess, process))

    def cell(result: tuple[float | None, float | None, str] | None) -> str:
        if result is None:
            return "-"
        seconds, best, error = result
        if seconds is None:
            return f"failed: {error[:60]}" if error and error != "skipped" else "skipped"
        return f"{seconds:.1f} s (best {best:.3f})" if best is not None else f"{seconds:.1f} s"

    def ratio(ray: tuple[float | None, float | None, str] | None,
              ours: tuple[float | None, float | None, str] | None) -> str:
        if ray is None or ours is None or ray[0] is None or ours[0] is None:
            return "-"
        return f"{ray[0] / ours[0]:.1f}x"

    import platform

    mode = "--smoke-test" if args.smoke_test else "full run"
    print(f"\n`python bench/ray_examples.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}` "
          f"({time.strftime('%Y-%m-%d', time.gmtime())}; {platform.machine()}, {os.cpu_count()} CPUs; load average "
          f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at the end)\n")
    print(f"| example ({mode}) | Ray Tune | pbtlab in-process | pbtlab process | Ray / in-process | Ray / process |")
    print("|---|---|---|---|---|---|")
    for example, ray, inprocess, process in rows:
        print(f"| {example} | {cell(ray)} | {cell(inprocess)} | {cell(process)} | {ratio(ray, inprocess)} "
              f"| {ratio(ray, process)} |")
    print(f"\nWall time of the whole process, median of {args.ray_repeats} (Ray Tune) and {args.repeats} (pbtlab) runs; "
          f"best: the highest {METRIC} reported by any trial (median over the runs).")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
