"""PBT and PB2 against ASHA, random search and grid search on the two real workloads, at equal compute,
5+ seeds each.

    python bench/compare_real.py                       # run what is missing, then tables and figures
    python bench/compare_real.py --workload convnet --seeds 5 --out bench_results/compare_real
    python bench/compare_real.py --methods pbt pb2 asha --seeds 3   # only these methods
    python bench/compare_real.py --report-only --docs docs   # only redraw docs/real_*.png from existing runs

The budget is total trial-iterations (epochs for the convnet): population x iterations. PBT, PB2, random
and grid search run the population's trials for ``iterations`` each. ASHA stops trials early, so it gets
the same budget another way: it samples up to ``ASHA_TRIALS`` trials, runs ``population`` of them at a
time, and the run ends (``TrialIterationBudget``) once its trials have reported ``population x iterations``
results in total; the trials it stopped early leave their share to new ones. Runs are named
``<workload>_<method>_seed<N>``; an existing run directory (with its experiment_end event) is not run
again. The report is ``pbtlab compare`` on each workload's runs (grouped by scheduler type and search
kind, see ``pbtlab.analysis.compare.method_of``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from pbtlab import RunConfig, TuneConfig, Tuner, tune
from pbtlab.tune.stopper import Stopper

#: workload -> (population, iterations, settings)
BUDGETS: dict[str, dict[str, Any]] = {
    "convnet": {"population": 4, "iterations": 16, "perturbation_interval": 2},
    "cartpole": {"population": 4, "iterations": 30, "perturbation_interval": 3},
}
METHODS = ("pbt", "pbt-clip", "pb2", "asha", "random", "grid")
#: how many trials ASHA may sample within the budget (it never needs them all: see TrialIterationBudget)
ASHA_TRIALS = 64


class TrialIterationBudget(Stopper):
    """Ends the run once its trials reported ``budget`` results in total; a trial stops at ``max_iterations``.

        >>> stopper = TrialIterationBudget(budget=2, max_iterations=5)
        >>> stopper("t0", {"training_iteration": 1}), stopper.stop_all(), stopper("t1", {"training_iteration": 5})
        (False, False, True)
        >>> stopper.stop_all()
        True
    """

    def __init__(self, budget: int, max_iterations: int) -> None:
        self.budget = budget
        self.max_iterations = max_iterations
        self.reported = 0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.reported += 1
        return bool(result["training_iteration"] >= self.max_iterations)

    def stop_all(self) -> bool:
        return self.reported >= self.budget

    def __repr__(self) -> str:
        return f"TrialIterationBudget(budget={self.budget}, max_iterations={self.max_iterations})"


def experiment(workload: str, method: str, seed: int) -> tuple[Any, dict[str, Any], TuneConfig, str]:
    """(trainable, param_space, tune_config, metric) for one run."""
    budget = BUDGETS[workload]
    population = budget["population"]
    if workload == "convnet":
        from pbtlab.examples import convnet as module

        trainable, metric = module.train_convnet, "val_accuracy"
        space = module.convnet_search_space()
        grid = {"lr": tune.grid_search([0.01, 0.1]), "batch_size": tune.grid_search([32, 128]),
                "seed": tune.randint(0, 2**31 - 1), "num_threads": 1}
    else:
        from pbtlab.examples import rl as module

        trainable, metric = module.train_cartpole, "episode_return_mean"
        space = module.cartpole_search_space(episodes_per_iteration=4)
        grid = {"lr": tune.grid_search([0.001, 0.01]), "entropy_coef": tune.grid_search([0.001, 0.01]),
                "episodes_per_iteration": 4, "seed": tune.randint(0, 2**31 - 1), "num_threads": 1}
    if method == "pbt":
        config = TuneConfig(metric=metric, mode="max", num_samples=population, seed=seed,
                            scheduler=module.pbt_scheduler(perturbation_interval=budget["perturbation_interval"]))
        return trainable, space, config, metric
    if method == "pbt-clip":  # the same, with perturbed values kept inside their domains
        scheduler = module.pbt_scheduler(perturbation_interval=budget["perturbation_interval"], perturb_bounds="clip")
        config = TuneConfig(metric=metric, mode="max", num_samples=population, seed=seed, scheduler=scheduler)
        return trainable, space, config, metric
    if method == "pb2":  # the same starting configs as PBT and random search; a GP picks the explored ones
        config = TuneConfig(metric=metric, mode="max", num_samples=population, seed=seed,
                            scheduler=module.pb2_scheduler(perturbation_interval=budget["perturbation_interval"]))
        return trainable, space, config, metric
    if method == "asha":  # up to ASHA_TRIALS from the same space, population at a time, until the budget is spent
        config = TuneConfig(metric=metric, mode="max", num_samples=ASHA_TRIALS, seed=seed,
                            max_concurrent_trials=population,
                            scheduler=module.asha_scheduler(max_t=budget["iterations"]))
        return trainable, space, config, metric
    if method == "random":
        return trainable, space, TuneConfig(metric=metric, mode="max", num_samples=population, seed=seed), metric
    if method == "grid":  # 2 x 2 grid = the population; the seed changes the trials' own seeds
        return trainable, grid, TuneConfig(metric=metric, mode="max", num_samples=population // 4, seed=seed), metric
    raise SystemExit(f"unknown method {method!r}; choose from {METHODS}")


def finished(path: str) -> bool:
    events = os.path.join(path, "events.jsonl")
    if not os.path.exists(events):
        return False
    with open(events, encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()]
    return bool(lines) and json.loads(lines[-1])["event"] == "experiment_end"


def stop_rule(workload: str, method: str) -> Any:
    budget = BUDGETS[workload]
    if method == "asha":
        return TrialIterationBudget(budget["population"] * budget["iterations"], budget["iterations"])
    return {"training_iteration": budget["iterations"]}


def run_all(workload: str, seeds: int, out: str, methods: tuple[str, ...] = METHODS) -> list[str]:
    paths = []
    for seed in range(seeds):
        for method in methods:
            name = f"{workload}_{method}_seed{seed}"
            path = os.path.join(out, name)
            paths.append(path)
            if finished(path):
                continue
            if os.path.exists(path):
                import shutil

                shutil.rmtree(path)
            trainable, space, config, _ = experiment(workload, method, seed)
            start = time.perf_counter()
            Tuner(trainable, param_space=space, tune_config=config,
                  run_config=RunConfig(name=name, storage_path=out, verbose=0, stop=stop_rule(workload, method))).fit()
            print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    return paths


def report(workload: str, paths: list[str], docs: str | None) -> None:
    from pbtlab.analysis.compare import compare_runs, format_comparison, plot_comparison

    comparison = compare_runs(paths)
    print(f"\n## {workload}\n")
    print(format_comparison(comparison))
    if docs:
        from pbtlab.viz import plot_hyperparameter_schedule

        figure = plot_comparison(comparison, title=f"{workload}: best {comparison.metric} so far "
                                                   f"(mean and 95% interval over seeds)")
        figure.savefig(os.path.join(docs, f"real_{workload}_compare.png"), dpi=110, bbox_inches="tight")
        run, trial, value = best_exploited_trial(comparison, workload)
        params = ["lr", "momentum", "weight_decay", "batch_size", "dropout"] if workload == "convnet" else \
            ["lr", "entropy_coef", "gamma", "value_coef"]
        schedule = plot_hyperparameter_schedule(run, trial=trial, params=params)
        schedule.suptitle(f"{workload}: schedule of the best PBT trial that was exploited at least once\n"
                          f"({os.path.basename(run)}, trial {trial}, final {comparison.metric} {value:.4g})")
        schedule.savefig(os.path.join(docs, f"real_{workload}_schedule.png"), dpi=110, bbox_inches="tight")
        print(f"\nschedule figure: {os.path.basename(run)} trial {trial} ({comparison.metric} {value:.4g}); "
              f"overall best PBT run: {os.path.basename(comparison.best_run('PBT'))}")


def best_exploited_trial(comparison: Any, workload: str) -> tuple[str, str, float]:
    """(run, trial, final metric) of the best final trial, over the PBT runs, that took over a donor's state."""
    best: tuple[str, str, float] | None = None
    for curve in comparison.runs:
        if curve.method != "PBT":
            continue
        with open(os.path.join(curve.path, "experiment.json"), encoding="utf-8") as handle:
            trial_ids = json.load(handle)["trial_ids"]
        for trial_id in trial_ids:
            with open(os.path.join(curve.path, trial_id, "result.jsonl"), encoding="utf-8") as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
            if rows and any(row.get("restored_from") for row in rows):
                value = rows[-1][comparison.metric]
                if best is None or value > best[2]:
                    best = (curve.path, trial_id, value)
    if best is None:
        raise SystemExit(f"{workload}: no PBT trial was ever exploited")
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(BUDGETS), action="append", help="default: both")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", default="bench_results/compare_real")
    parser.add_argument("--docs", default=None, help="write real_<workload>_{compare,schedule}.png here")
    parser.add_argument("--runs-only", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    for workload in args.workload or sorted(BUDGETS):
        if args.report_only:
            paths = [os.path.join(args.out, f"{workload}_{m}_seed{s}") for s in range(args.seeds)
                     for m in args.methods]
        else:
            paths = run_all(workload, args.seeds, args.out, tuple(args.methods))
        if not args.runs_only:
            report(workload, paths, args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
