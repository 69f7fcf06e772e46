"""The tutorial's PBT experiments, timed on Ray Tune and on pbtlab's three executors.

    python bench/vs_ray_tune.py                 # Ray Tune once (about 2 and 4 minutes), pbtlab 5 times each
    python bench/vs_ray_tune.py --quick         # no Ray Tune runs; pbtlab once each
    python bench/vs_ray_tune.py --repeats 9 --ray-tune-repeats 3

Experiments: the tutorial's 2-trial PBT (h = [0, 1] and [1, 0], lr = 0.05) and 4-trial PBT (lr sampled),
synchronous, perturbation and checkpoint interval 4, 100 iterations, ``max_failures=3``.

- Ray Tune: the tutorial's own code (inlined below as ``RAY_TUNE_CODE``), each experiment in a fresh
  Python process that calls ``ray.init()`` as the tutorial does. Run only when ``ray[tune]`` is installed.
- pbtlab: :func:`pbtlab.examples.runs.run_toy_pbt`, the same experiment with pbtlab's API, on the
  ``inprocess``, ``process`` and ``ray`` executors (Ray started once, before the runs, as a user would).

Wall time is ``Tuner.fit()`` only; starting Ray is shown on its own line. Each figure is the median of
the repeats; the ratios divide Ray Tune's median by pbtlab's, from the same invocation. With ``--quick``
(or without Ray Tune installed) the ratios use the Ray Tune times recorded in issue 4 on the same kind
of machine (2 cores): 127.6 s and 245.7 s, marked "recorded".
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

RECORDED_RAY_TUNE = {2: 127.6, 4: 245.7}  # issue 4: Tuner.fit on a 2-core machine

# The tutorial's code (seed: visualizing_pbt_tutorial), verbatim but for storage_path and the timing lines.
RAY_TUNE_CODE = r'''
import json, os, pickle, sys, tempfile, time
import numpy as np

t0 = time.perf_counter()
import ray
from ray import tune
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.tune_config import TuneConfig
from ray.tune.tuner import Tuner

population, storage_path = int(sys.argv[1]), sys.argv[2]


def get_init_theta():
    return np.array([0.9, 0.9])


def Q(theta):
    return 1.2 - (3 / 4 * theta[0] ** 2 + theta[1] ** 2)


def Qhat(theta, h):
    return 1.2 - (h[0] * theta[0] ** 2 + h[1] * theta[1] ** 2)


def grad_Qhat(theta, h):
    theta_grad = -2 * h * theta
    theta_grad[0] *= 3 / 4
    h_grad = -np.square(theta)
    h_grad[0] *= 3 / 4
    return {"theta": theta_grad, "h": h_grad}


def train_func(config):
    h0 = config.get("h0")
    h1 = config.get("h1")
    h = np.array([h0, h1]).astype(float)
    lr = config.get("lr")
    train_step = 1
    checkpoint_interval = config.get("checkpoint_interval", 1)
    theta = get_init_theta()
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "checkpoint.pkl"), "rb") as f:
                checkpoint_dict = pickle.load(f)
        theta = checkpoint_dict["theta"]
        last_step = checkpoint_dict["train_step"]
        train_step = last_step + 1
    while True:
        param_grads = grad_Qhat(theta, h)
        theta_grad = np.asarray(param_grads["theta"])
        theta = theta + lr * theta_grad
        result = {"Q": Q(theta), "theta0": theta[0], "theta1": theta[1], "h0": h0, "h1": h1,
                  "train_step": train_step}
        should_checkpoint = train_step % checkpoint_interval == 0
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            checkpoint = None
            if should_checkpoint:
                checkpoint_dict = {"h": h, "train_step": train_step, "theta": theta}
                with open(os.path.join(temp_checkpoint_dir, "checkpoint.pkl"), "wb") as f:
                    pickle.dump(checkpoint_dict, f)
                checkpoint = tune.Checkpoint.from_directory(temp_checkpoint_dir)
            tune.report(result, checkpoint=checkpoint)
        train_step += 1


if ray.is_initialized():
    ray.shutdown()
t1 = time.perf_counter()
ray.init()
t2 = time.perf_counter()
perturbation_interval = 4
pbt_scheduler = PopulationBasedTraining(
    time_attr="training_iteration",
    perturbation_interval=perturbation_interval,
    metric="Q" if population == 2 else None,
    mode="max" if population == 2 else None,
    quantile_fraction=0.5,
    resample_probability=0.5,
    hyperparam_mutations={
        "lr": tune.qloguniform(5e-3, 1e-1, 5e-4),
        "h0": tune.uniform(0.0, 1.0),
        "h1": tune.uniform(0.0, 1.0),
    },
    synch=True,
)
tuner = Tuner(
    train_func,
    param_space={
        "lr": 0.05 if population == 2 else tune.qloguniform(5e-3, 1e-1, 5e-4),
        "h0": tune.grid_search([0.0, 1.0] if population == 2 else [0.0, 1.0, 0.01, 0.99]),
        "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
        "num_training_iterations": 100,
        "checkpoint_interval": perturbation_interval,
    },
    tune_config=TuneConfig(num_samples=1, scheduler=pbt_scheduler,
                           **({} if population == 2 else {"metric": "Q", "mode": "max"})),
    run_config=tune.RunConfig(
        stop={"training_iteration": 100},
        failure_config=tune.FailureConfig(max_failures=3),
        storage_path=storage_path,
    ),
)
t3 = time.perf_counter()
results = tuner.fit()
t4 = time.perf_counter()
assert not results.errors
print("BENCH_JSON " + json.dumps({"import_s": t1 - t0, "init_s": t2 - t1, "fit_s": t4 - t3,
                                   "Q": [float(r.metrics["Q"]) for r in results]}))
ray.shutdown()
'''


def run_ray_tune(population: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_raytune_") as storage:
        script = os.path.join(storage, "tutorial.py")
        with open(script, "w") as handle:
            handle.write(RAY_TUNE_CODE)
        out = subprocess.run([sys.executable, script, str(population), os.path.join(storage, "results")],
                             capture_output=True, text=True, cwd=storage, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
        raise RuntimeError(f"the Ray Tune run failed (exit code {out.returncode})")
    return json.loads(lines[-1][len("BENCH_JSON "):])


def run_pbtlab(population: int, executor: str) -> float:
    from pbtlab.examples.runs import run_toy_pbt

    with tempfile.TemporaryDirectory(prefix="bench_pbtlab_") as storage:
        start = time.perf_counter()
        results = run_toy_pbt(population=population, seed=None, iterations=100, storage_path=storage,
                              executor=executor, verbose=0)
        elapsed = time.perf_counter() - start
        if results.errors:
            raise RuntimeError(f"pbtlab ({executor}) had trial errors: {results.errors}")
    return elapsed


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w) for i, (h, w) in enumerate(zip(header, widths))),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
              for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="pbtlab runs per setting (median); default 5")
    parser.add_argument("--ray-tune-repeats", type=int, default=1, help="Ray Tune runs per experiment; default 1")
    parser.add_argument("--quick", action="store_true", help="pbtlab once each, no Ray Tune runs")
    parser.add_argument("--skip-ray-tune", action="store_true", help="use the recorded Ray Tune times")
    parser.add_argument("--executors", nargs="+", default=["inprocess", "process", "ray"],
                        choices=["inprocess", "process", "ray"])
    parser.add_argument("--populations", type=int, nargs="+", default=[2, 4], choices=[2, 4])
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    try:
        import ray
        have_ray = True
    except ImportError:
        have_ray = False
    do_ray_tune = have_ray and not args.quick and not args.skip_ray_tune
    executors = [e for e in args.executors if e != "ray" or have_ray]

    print(f"Tutorial PBT experiments, 100 iterations; {os.cpu_count()} cores; pbtlab median of {repeats}, "
          f"Ray Tune median of {args.ray_tune_repeats if do_ray_tune else 0} (else recorded)", flush=True)
    ray_tune: dict[int, float] = {}
    ray_init = None
    for population in args.populations:
        if do_ray_tune:
            runs = [run_ray_tune(population) for _ in range(args.ray_tune_repeats)]
            ray_tune[population] = statistics.median(r["fit_s"] for r in runs)
            ray_init = statistics.median(r["init_s"] for r in runs)
            print(f"  Ray Tune, {population} trials: fit {ray_tune[population]:.1f} s "
                  f"(ray.init {ray_init:.1f} s)", flush=True)
    init_s = None
    medians: dict[tuple[int, str], float] = {}
    for executor in executors:
        if executor == "ray":
            import ray

            start = time.perf_counter()
            if not ray.is_initialized():
                ray.init(include_dashboard=False, log_to_driver=False)
            init_s = time.perf_counter() - start
        for population in args.populations:
            run_pbtlab(population, executor) if executor != "inprocess" else None  # warm-up (imports, pools)
            times = [run_pbtlab(population, executor) for _ in range(repeats)]
            medians[(population, executor)] = statistics.median(times)
            print(f"  pbtlab {executor}, {population} trials: {medians[(population, executor)]:.3f} s "
                  f"(runs: {', '.join(f'{t:.3f}' for t in times)})", flush=True)

    rows = []
    for population in args.populations:
        peer = ray_tune.get(population, RECORDED_RAY_TUNE[population])
        label = "" if population in ray_tune else " (recorded)"
        rows.append([f"Ray Tune, {population} trials{label}", f"{peer:.2f}", "1x"])
        for executor in executors:
            t = medians[(population, executor)]
            rows.append([f"pbtlab {executor}, {population} trials", f"{t:.3f}", f"{peer / t:,.0f}x faster"])
    print()
    print(table(["experiment (Tuner.fit wall time)", "seconds", "vs Ray Tune"], rows))
    if init_s is not None or ray_init is not None:
        print()
        if ray_init is not None:
            print(f"Starting Ray (not included above): {ray_init:.1f} s in the Ray Tune process", end="")
        if init_s is not None:
            print(("; " if ray_init is not None else "Starting Ray (not included above): ")
                  + f"{init_s:.1f} s for pbtlab's ray executor", end="")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
