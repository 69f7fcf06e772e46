"""Ray Tune's own PBT examples, timed as whole processes on Ray Tune and on pbtlab (`pbtlab run`).

    python bench/ray_examples.py                       # --smoke-test runs: Ray 3 times, pbtlab 5 times each
    python bench/ray_examples.py --full                # the examples' full runs (Ray takes minutes)
    python bench/ray_examples.py --repeats 7 --ray-repeats 3

Each example runs from the installed Ray wheel (``ray/tune/examples/``), unmodified:

- Ray Tune: ``python EXAMPLE.py [--smoke-test]`` (the smoke test calls ``ray.init(num_cpus=2)``);
- pbtlab in-process: ``python -m pbtlab.cli run EXAMPLE.py [--smoke-test]``;
- pbtlab process executor: ``python -m pbtlab.cli run --executor process EXAMPLE.py [--smoke-test]``.

Wall time is the whole process (interpreter start, imports, Ray start-up, the run, shutdown). Every
process runs in a fresh temporary directory with HOME pointed there, so Ray's ``~/ray_results`` and
pbtlab's ``./pbtlab_results`` never accumulate. Figures are medians of the repeats; ratios divide Ray
Tune's median by pbtlab's from the same invocation. ``pbt_example.py`` uses the class API
(``tune.Trainable``) and is skipped, with a note, while pbtlab has no ``tune.Trainable``.
A run that fails is reported with its last error line, never timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

EXAMPLES = ("pbt_function.py", "pbt_example.py")


def examples_dir() -> str:
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("Ray is not installed: pip install 'pbtlab[ray]' (the examples ship in the Ray wheel)")
    return os.path.join(spec.submodule_search_locations[0], "tune", "examples")


def has_class_api() -> bool:
    import pbtlab.tune

    return hasattr(pbtlab.tune, "Trainable")


def time_process(command: list[str]) -> tuple[float | None, str]:
    """Seconds for one whole process in a fresh directory (None and the error's last line if it failed)."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "RAY_USAGE_STATS_ENABLED": "0"}
        started = time.perf_counter()
        done = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, lines[-1] if lines else f"exit code {done.returncode}"
    return elapsed, ""


def measure(name: str, command: list[str], repeats: int) -> tuple[float | None, str]:
    times = []
    for index in range(repeats):
        seconds, error = time_process(command)
        if seconds is None:
            print(f"  {name}: failed ({error})", flush=True)
            return None, error
        times.append(seconds)
        print(f"  {name} run {index + 1}/{repeats}: {seconds:.2f} s", flush=True)
    return statistics.median(times), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the examples' full runs instead of --smoke-test")
    parser.add_argument("--repeats", type=int, default=5, help="pbtlab runs per example and executor (default 5)")
    parser.add_argument("--ray-repeats", type=int, default=3, help="Ray Tune runs per example (default 3)")
    parser.add_argument("--skip-ray", action="store_true", help="time pbtlab only")
    args = parser.parse_args()

    folder = examples_dir()
    flags = [] if args.full else ["--smoke-test"]
    rows = []
    for example in EXAMPLES:
        path = os.path.join(folder, example)
        if example == "pbt_example.py" and not has_class_api():
            print(f"{example}: skipped: it subclasses tune.Trainable (the class API), which this pbtlab lacks")
            continue
        print(f"{example} {' '.join(flags)}", flush=True)
        ray_median = None if args.skip_ray else measure("Ray Tune", [sys.executable, path, *flags],
                                                        args.ray_repeats)[0]
        inprocess = measure("pbtlab in-process", [sys.executable, "-m", "pbtlab.cli", "run", path, *flags],
                            args.repeats)[0]
        process = measure("pbtlab process", [sys.executable, "-m", "pbtlab.cli", "run", "--executor", "process",
                                             path, *flags], args.repeats)[0]
        rows.append((example, ray_median, inprocess, process))

    def cell(seconds: float | None) -> str:
        return "failed/skipped" if seconds is None else f"{seconds:.2f} s"

    def ratio(ray: float | None, ours: float | None) -> str:
        return "-" if ray is None or ours is None else f"{ray / ours:.1f}x"

    mode = "full run" if args.full else "--smoke-test"
    print(f"\n| example ({mode}) | Ray Tune | pbtlab in-process | pbtlab process | Ray/in-process | Ray/process |")
    print("|---|---|---|---|---|---|")
    for example, ray, inprocess, process in rows:
        print(f"| {example} | {cell(ray)} | {cell(inprocess)} | {cell(process)} | {ratio(ray, inprocess)} "
              f"| {ratio(ray, process)} |")
    print(f"\nmedians of {args.ray_repeats} (Ray Tune) and {args.repeats} (pbtlab) whole-process runs; "
          f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
