"""The cost of the tool on a real workload: the digits convnet under no tool, pbtlab and Ray Tune.

    python bench/real_models.py                    # 3 repeats of everything (about 10 minutes on 2 cores)
    python bench/real_models.py --repeats 5 --ray-repeats 2 --epochs 8 --population 4
    python bench/real_models.py --skip-ray         # without Ray Tune
    python bench/real_models.py --only checkpoints # only the large-state checkpoint table

Part 1, wall time. The same trainable (``pbtlab.examples.convnet``, width 16, 1 torch thread per trial) and
the same budget: ``population`` trials x ``epochs`` epochs, each epoch one report with a checkpoint, started
from the same 4 configs (lr 0.01, 0.03, 0.1, 0.3):

- bare: a plain loop over the trials and epochs, no tool, no checkpoints (one process, one core);
- bare-2proc: two such loops in two forked processes, half the trials each: what 2 cores give right now;
- pbtlab in-process: ``Tuner`` with synchronous PBT (interval 2), ``executor="inprocess"``;
- pbtlab process: the same with ``executor="process"`` (2 workers on the 2 cores);
- Ray Tune: the same with Ray's PBT, ``reuse_actors=True`` (its fastest documented setting) and at its
  default, 1 CPU per trial on ``ray.init(num_cpus=2)``.

Each measurement is a fresh Python process; the figure is the wall time of the training part only (the
loop, or ``Tuner.fit()``), after imports, a warm-up epoch of a tiny model (torch's lazy first-use work) and
``ray.init()``. CPU time is that of the process and its reaped children (pbtlab's workers; not Ray's). "to target" is the time until any trial first
reports ``val_accuracy >= --target`` (written by the trainable to a log file as it reports). Figures are
medians over the repeats; ratios divide by the bare loop's median from the same invocation.

Part 2, checkpoints of a large state: the same trainable with a 100 MB buffer in its state dict (width 2, so
training costs little), 2 trials x 4 epochs, a checkpoint every epoch. Per report: (wall with 100 MB minus
wall with the plain model) / reports. Per exploit: (wall under PBT minus wall without a scheduler, both with
100 MB) / exploits. Disk: bytes under the experiment directory / reports, and the bytes an exploit added.
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
from typing import Any

STARTING_LRS = [0.01, 0.03, 0.1, 0.3]
FIXED = {"momentum": 0.9, "weight_decay": 1e-4, "batch_size": 64, "dropout": 0.25, "width": 16, "num_threads": 1,
         "device": "cpu"}


class TimedApi:
    """Wraps a Ray-Tune-like api: every report also appends ``time, val_accuracy`` to ``config['timing_log']``."""

    def __init__(self, api: Any, log: str | None) -> None:
        self.api, self.log, self.Checkpoint = api, log, api.Checkpoint

    def get_checkpoint(self) -> Any:
        return self.api.get_checkpoint()

    def report(self, metrics: dict[str, Any], checkpoint: Any = None) -> None:
        if self.log:
            with open(self.log, "a", encoding="utf-8") as handle:
                handle.write(f"{time.time()} {metrics['val_accuracy']}\n")
        self.api.report(metrics, checkpoint=checkpoint)


def pbtlab_trainable(config: dict[str, Any]) -> None:
    from pbtlab import tune
    from pbtlab.examples.convnet import run_convnet_trainable

    run_convnet_trainable(config, TimedApi(tune, config.get("timing_log")))


def ray_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    from pbtlab.examples.convnet import run_convnet_trainable

    run_convnet_trainable(config, TimedApi(tune, config.get("timing_log")))


def mutations(tune: Any) -> dict[str, Any]:
    return {"lr": tune.loguniform(1e-3, 0.3), "momentum": tune.uniform(0.0, 0.95),
            "weight_decay": tune.loguniform(1e-6, 1e-2), "dropout": tune.uniform(0.0, 0.5)}


def directory_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.stat(full).st_blocks * 512
    return total


def checkpoint_dirs(path: str) -> list[str]:
    found = []
    for root, dirs, _ in os.walk(path):
        found += [os.path.join(root, d) for d in dirs if d.startswith("checkpoint_")]
    return found


# -- one measurement (in a child process) ------------------------------------------------------------------
def count_training_time(run_class: Any, path: str) -> None:
    """Make every ``run_class.train_epoch`` append its duration to ``path`` (forked workers inherit it)."""
    train_epoch = run_class.train_epoch

    def timed(self: Any) -> dict[str, Any]:
        start = time.perf_counter()
        metrics = train_epoch(self)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{time.perf_counter() - start}\n")
        return metrics

    run_class.train_epoch = timed


def measure(method: str, args: argparse.Namespace, out: str) -> dict[str, Any]:
    from pbtlab.examples.convnet import ConvnetRun, load_digits_split

    # Warm up before the clock, as for every method: imports, the digits, and torch's lazy first-use work
    # (the first optimizer imports torch._dynamo, about 1 s of CPU). Forked pbtlab workers inherit it.
    load_digits_split()
    if not args.no_warmup:
        ConvnetRun({"width": 2, "num_threads": 1, "device": "cpu"}).train_epoch()
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "timing.log")
    training_log = os.path.join(out, "training.log")
    if not method.startswith("ray"):  # Ray's workers are not forked from here
        count_training_time(ConvnetRun, training_log)
    extra = {"extra_state_mb": args.state_mb, "width": 2} if args.large else {}
    epochs, population = args.epochs, args.population
    configs = [{**FIXED, **extra, "lr": STARTING_LRS[i % len(STARTING_LRS)], "seed": i, "timing_log": log}
               for i in range(population)]
    result: dict[str, Any] = {"method": method}
    import resource

    def cpu_now() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def bare_loop(share: list[dict[str, Any]]) -> None:
        """The same epochs with no tool and no checkpoints, one trial after the other."""
        for config in share:
            run = ConvnetRun(config)
            for _ in range(epochs):
                metrics = run.train_epoch()
                with open(log, "a", encoding="utf-8") as handle:
                    handle.write(f"{time.time()} {metrics['val_accuracy']}\n")

    cpu_start = cpu_now()
    if method == "bare":
        start = time.time()
        bare_loop(configs)
        result["wall"] = time.time() - start
    elif method == "bare-2proc":  # the achievable ideal on this machine now: 2 forked bare loops, half the trials each
        import multiprocessing

        context = multiprocessing.get_context("fork")
        start = time.time()
        workers = [context.Process(target=bare_loop, args=(configs[i::2],)) for i in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        result["wall"] = time.time() - start
    elif method.startswith("pbtlab"):
        from pbtlab import RunConfig, TuneConfig, Tuner, tune
        from pbtlab.schedulers import PopulationBasedTraining

        scheduler = None
        if args.scheduler == "pbt":
            scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                                quantile_fraction=args.quantile, hyperparam_mutations=mutations(tune),
                                                synch=True)
        space = {**configs[0], "lr": tune.grid_search([c["lr"] for c in configs]),
                 "seed": tune.sample_from(lambda spec: STARTING_LRS.index(spec.config["lr"]))}
        executor: Any = method.split("-")[1]
        if method == "pbtlab-process-cold":  # without ProcessExecutor's own torch warm-up
            from pbtlab.executors.process import ProcessExecutor

            executor = ProcessExecutor(warm_up_torch=False)
        start = time.time()
        grid = Tuner(pbtlab_trainable, param_space=space,
                     tune_config=TuneConfig(metric="val_accuracy", mode="max", seed=0, scheduler=scheduler),
                     run_config=RunConfig(name="run", storage_path=out, verbose=0, executor=executor,
                                          stop={"training_iteration": epochs})).fit()
        result["wall"] = time.time() - start
        result["exploits"] = len(grid.events_of("exploit"))
        result["experiment"] = grid.experiment_path
    elif method.startswith("ray"):
        import ray
        from ray import tune
        from ray.tune.schedulers import PopulationBasedTraining as RayPBT

        begin = time.time()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        result["ray_init"] = time.time() - begin
        scheduler = None
        if args.scheduler == "pbt":
            scheduler = RayPBT(time_attr="training_iteration", perturbation_interval=2,
                               quantile_fraction=args.quantile, hyperparam_mutations=mutations(tune), synch=True)
        space = {**configs[0], "lr": tune.grid_search([c["lr"] for c in configs]),
                 "seed": tune.sample_from(lambda spec: STARTING_LRS.index(spec.config["lr"]))}
        reuse = {"ray-reuse": True, "ray-default": None}[method]
        tune_config = tune.TuneConfig(metric="val_accuracy", mode="max", scheduler=scheduler,
                                      **({"reuse_actors": reuse} if reuse is not None else {}))
        start = time.time()
        grid = tune.Tuner(ray_trainable, param_space=space, tune_config=tune_config,
                          run_config=tune.RunConfig(name="run", storage_path=out, verbose=0,
                                                    stop={"training_iteration": epochs})).fit()
        result["wall"] = time.time() - start
        result["errors"] = grid.num_errors
        policy = os.path.join(out, "run", "pbt_global.txt")
        result["exploits"] = sum(1 for _ in open(policy)) if os.path.exists(policy) else 0
        result["experiment"] = os.path.join(out, "run")
        ray.shutdown()
    else:
        raise SystemExit(f"unknown method {method!r}")
    if not method.startswith("ray"):  # Ray's workers are not our children: their CPU time is not counted
        result["cpu"] = cpu_now() - cpu_start
    reached = []
    if os.path.exists(log):
        for line in open(log, encoding="utf-8"):
            stamp, accuracy = line.split()
            if float(accuracy) >= args.target:
                reached.append(float(stamp))
        result["reports"] = sum(1 for _ in open(log, encoding="utf-8"))
    result["to_target"] = (min(reached) - start) if reached else None
    if os.path.exists(training_log):
        with open(training_log, encoding="utf-8") as handle:
            result["train"] = sum(float(line) for line in handle if line.strip())
    if "experiment" in result:
        result["disk"] = directory_bytes(result["experiment"])
        result["checkpoints"] = len(checkpoint_dirs(result["experiment"]))
    return result


def child(method: str, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="real_models_") as out:
        command = [sys.executable, os.path.abspath(__file__), "--child", method, "--out", out, *extra]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"{method} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return json.loads(lines[-1][len("RESULT "):])


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.2f} {unit}".strip()


TWO_CORES = ("bare-2proc", "pbtlab-process", "ray-reuse", "ray-default")


def wall_table(args: argparse.Namespace) -> list[str]:
    methods = ["bare", "bare-2proc", "pbtlab-inprocess", "pbtlab-process"]
    if not args.skip_ray:
        methods += ["ray-reuse", "ray-default"]
    common = ["--epochs", str(args.epochs), "--population", str(args.population), "--target", str(args.target)]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for repeat in range(args.repeats):
        # interleaved, and in reverse order every other repeat, so a slow spell of the machine hits every method alike
        for method in (methods if repeat % 2 == 0 else methods[::-1]):
            if method.startswith("ray") and repeat >= args.ray_repeats:
                continue
            runs[method].append(child(method, args, common))
            print(f"  repeat {repeat + 1}: {method}: {runs[method][-1]['wall']:.2f} s", file=sys.stderr, flush=True)
    bare = median([r["wall"] for r in runs["bare"]])
    assert bare is not None
    lines = [f"Wall time, {args.population} trials x {args.epochs} epochs of the digits convnet "
             f"(median of {args.repeats} runs, Ray Tune {args.ray_repeats}; target val_accuracy >= {args.target})", "",
             "| method | wall | ratio to bare | ideal | ratio to ideal | same-repeat ratio to ideal | to target | "
             "exploits | CPU time | CPU ratio |" + ("" if args.skip_ray else " Ray reuse / this | Ray default / this |"),
             "|---|---|---|---|---|---|---|---|---|---|" + ("" if args.skip_ray else "---|---|")]
    bare_cpu = median([r.get("cpu") for r in runs["bare"]])
    ray_walls = {} if args.skip_ray else {m: median([r["wall"] for r in runs[m]]) for m in ("ray-reuse", "ray-default")}
    for method in methods:
        wall = median([r["wall"] for r in runs[method]])
        assert wall is not None
        versus = "".join(f" {ray_walls[m] / wall:.1f}x |" for m in ("ray-reuse", "ray-default") if ray_walls.get(m))
        cores = 2 if method in TWO_CORES else 1
        ideal = bare / cores
        # each repeat's wall against the bare loop of the same repeat (the machine in the same state)
        paired = median([r["wall"] / (b["wall"] / cores) for r, b in zip(runs[method], runs["bare"])])
        exploits = median([r.get("exploits") for r in runs[method]])
        cpu = median([r.get("cpu") for r in runs[method]])
        lines.append(f"| {method} | {fmt(wall)} | {wall / bare:.2f}x | {fmt(ideal)} | {wall / ideal:.2f}x | "
                     f"{paired:.2f}x | {fmt(median([r['to_target'] for r in runs[method]]))} | "
                     f"{'-' if exploits is None else int(exploits)} | {fmt(cpu)} | "
                     f"{'-' if cpu is None or not bare_cpu else f'{cpu / bare_cpu:.2f}x'} |{versus}")
    if not args.skip_ray:
        init = median([r.get("ray_init") for r in runs["ray-reuse"] + runs["ray-default"]])
        lines += ["", f"ray.init(num_cpus=2) itself: {fmt(init)} (not in the Ray rows)."]
    lines += ["", "Where the time goes, run by run: the epochs' own training time (`train_epoch`, summed over "
                  "trials; divided by 2 on 2 cores) against the run's wall. What is left is the tool, checkpoints, "
                  "restores, and cores idle at PBT's barriers.", "",
              "| method | training | training / cores | wall | wall / (training / cores) |", "|---|---|---|---|---|"]
    for method in methods:
        if method.startswith("ray"):
            continue
        cores = 2 if method in TWO_CORES else 1
        ratios = [r["wall"] / (r["train"] / cores) for r in runs[method] if r.get("train")]
        train = median([r.get("train") for r in runs[method]])
        lines.append(f"| {method} | {fmt(train)} | {fmt(None if train is None else train / cores)} | "
                     f"{fmt(median([r['wall'] for r in runs[method]]))} | "
                     f"{'-' if not ratios else f'{statistics.median(ratios):.2f}x'} |")
    lines += ["", "Walls of every repeat: " + "; ".join(
        f"{m} " + ", ".join(f"{r['wall']:.2f}" for r in runs[m]) for m in methods)]
    return lines


def checkpoint_table(args: argparse.Namespace) -> list[str]:
    tools = ["pbtlab-inprocess", "pbtlab-process"] + ([] if args.skip_ray else ["ray-reuse", "ray-default"])
    base = ["--epochs", "4", "--population", "2", "--target", "2", "--quantile", "0.5"]
    variants = {"small": [*base, "--large", "--state-mb", "0"],
                "large": [*base, "--large", "--state-mb", str(args.state_mb)],
                "large-fifo": [*base, "--large", "--state-mb", str(args.state_mb), "--scheduler", "none"]}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):
        for tool in tools:
            if tool.startswith("ray") and repeat >= args.ray_repeats:
                continue
            for variant, extra in variants.items():
                runs.setdefault((tool, variant), []).append(child(tool, args, extra))
                print(f"  repeat {repeat + 1}: {tool} {variant}: {runs[(tool, variant)][-1]['wall']:.2f} s",
                      file=sys.stderr, flush=True)
    save = measure_save(args.state_mb)
    lines = [f"Checkpoints of a {args.state_mb} MB state dict: 2 trials x 4 epochs, one checkpoint per report "
             f"(median of {args.repeats} runs, Ray Tune {args.ray_repeats})", "",
             "| tool | reports | time per report | disk per report | exploits | time per exploit | "
             "disk added per exploit | wall (100 MB, PBT) | Ray reuse / this | Ray default / this |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ray_large = {} if args.skip_ray else {m: median([r["wall"] for r in runs[(m, "large")]])
                                          for m in ("ray-reuse", "ray-default")}
    for tool in tools:
        large, small, fifo = (runs[(tool, v)] for v in ("large", "small", "large-fifo"))
        large_wall = median([r["wall"] for r in large])
        reports = median([r["reports"] for r in large]) or 1
        exploits = median([r["exploits"] for r in large]) or 0
        per_report = (median([r["wall"] for r in large]) - median([r["wall"] for r in small])) / reports
        disk = median([r["disk"] for r in large])
        fifo_disk = median([r["disk"] for r in fifo])
        per_exploit = ((median([r["wall"] for r in large]) - median([r["wall"] for r in fifo])) / exploits
                       if exploits else None)
        fifo_reports = median([r["reports"] for r in fifo]) or 1
        disk_per_exploit = ((disk / reports - fifo_disk / fifo_reports) * reports / exploits) if exploits else None
        lines.append(f"| {tool} | {int(reports)} | {fmt(per_report)} | {disk / reports / 2**20:.1f} MB | "
                     f"{int(exploits)} | {fmt(per_exploit)} | "
                     f"{'-' if disk_per_exploit is None else f'{disk_per_exploit / 2**20:.1f} MB'} | "
                     f"{fmt(large_wall)} |" + "".join(
                         f" {ray_large[m] / large_wall:.1f}x |" if m in ray_large else " - |"
                         for m in ("ray-reuse", "ray-default")))
    lines += ["", f"The trainable's own torch.save of the state to a temporary directory: {fmt(save['save'])} per "
                  f"report; torch.load: {fmt(save['load'])}. The rest of 'time per report' is the tool's."]
    return lines


def measure_save(state_mb: int) -> dict[str, float]:
    import torch

    state = {"ballast": torch.zeros(int(state_mb * 2**20 / 4))}
    saves, loads = [], []
    for _ in range(5):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "state.pt")
            start = time.perf_counter()
            torch.save(state, path)
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            torch.load(path, weights_only=True)
            loads.append(time.perf_counter() - start)
    return {"save": statistics.median(saves), "load": statistics.median(loads)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray-repeats", type=int, default=None, help="repeats of the Ray Tune runs (default --repeats)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--state-mb", type=int, default=100)
    parser.add_argument("--quantile", type=float, default=0.25)
    parser.add_argument("--scheduler", choices=["pbt", "none"], default="pbt")
    parser.add_argument("--large", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the driver's warm-up epoch (what a script that does not warm up gets)")
    parser.add_argument("--only", choices=["wall", "checkpoints"], default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ray_repeats is None:
        args.ray_repeats = args.repeats
    if args.child:
        print("RESULT " + json.dumps(measure(args.child, args, args.out)), flush=True)
        return 0
    if args.skip_ray is False:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("Ray Tune is not installed: skipping it (pip install 'pbtlab[ray]')", file=sys.stderr)
            args.skip_ray = True
    print(f"# bench/real_models.py on {os.cpu_count()} cores, torch threads 1 per trial\n")
    if args.only in (None, "wall"):
        print("\n".join(wall_table(args)) + "\n", flush=True)
    if args.only in (None, "checkpoints"):
        print("\n".join(checkpoint_table(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
