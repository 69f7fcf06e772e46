"""Compare tuning methods at equal compute: best metric so far against total trial-iterations, over seeds.

    >>> comparison = compare_runs(["runs/pbt_seed0", "runs/pbt_seed1", "runs/random_seed0"])  # doctest: +SKIP
    >>> print(format_comparison(comparison))                                                  # doctest: +SKIP
    >>> plot_comparison(comparison).savefig("compare.png")                                     # doctest: +SKIP

The rules, stated once:

- **Compute** is the number of trial-iterations run (one reported row = one iteration, restarts after an
  exploit included). Trials are taken to advance in lockstep: every trial's k-th report comes before any
  trial's (k+1)-th. That is exact for synchronous PBT and for searches whose trials all run at once, and it
  does not depend on wall-clock time, so the curves are reproducible. A run with fewer slots
  (``max_concurrent_trials``) than trials, such as ASHA starting new trials as it stops others, advances in
  lockstep on its slots: each trial takes the first free slot, in the order trials first started, and
  holds it for as many iterations as it reported.
- **Best so far** at a compute value is the best metric any trial of the run had reported by then (max or
  min by the experiment's mode).
- **Equal compute**: every run is evaluated on the same compute grid, up to the smallest total compute of
  the runs compared; a run has no value before its first round of reports.
- **Method** (``group_by="scheduler"``, the default, see :func:`method_of`): ``PBT`` for
  PopulationBasedTraining (``PBT (clip)``, ``PBT (ttest)``, ... when a strategy option differs from Ray's
  default), ``ASHA`` / ``HyperBand`` for those schedulers, the scheduler's type name for any other, else
  ``grid search`` when the param_space holds a ``grid_search``, ``random search`` when it holds sampled
  domains only, else ``fixed``. ``group_pattern`` overrides it: a regular expression searched in the run directory's name,
  whose first group (or whole match) is the method, e.g. ``r"^(.*)_seed\\d+$"``. Methods are listed in the
  order their runs are given, with ``PBT`` (the reference of the "vs PBT" column) first.
- **Interval**: mean over the runs of a method (its seeds) ± Student's t (0.975 quantile, n-1 degrees of
  freedom) times the standard error; no interval with one run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab.errors import ConfigError, ExperimentError, describe
from pbtlab.metrics import metric_value
from pbtlab.rundir.reader import RunDir

__all__ = [
    "compare_runs", "Comparison", "format_comparison", "method_of", "MethodCurve", "plot_comparison", "run_curve",
    "RunCurve", "SHORT_NAMES", "T_975", "t_quantile_975",
]

#: Student's t 0.975 quantiles for 1..30 degrees of freedom (beyond: the normal 1.96).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile_975(degrees_of_freedom: float) -> float:
    """Student's t 0.975 quantile (table lookup, rounding the degrees of freedom down).

        >>> t_quantile_975(4)
        2.776
    """
    if degrees_of_freedom < 1:
        return math.nan
    index = int(degrees_of_freedom)
    return T_975[index - 1] if index <= len(T_975) else 1.96


@dataclasses.dataclass(frozen=True)
class RunCurve:
    """One run's best metric so far after each round of reports."""

    path: str
    method: str
    seed: Any
    compute: np.ndarray  # cumulative trial-iterations after each round
    best: np.ndarray  # best metric so far after each round
    final_best: float

    def best_at(self, compute: np.ndarray) -> np.ndarray:
        """Best so far at each compute value (NaN before the first round)."""
        index = np.searchsorted(self.compute, compute, side="right") - 1
        values = self.best[np.clip(index, 0, None)].astype(float)
        values[index < 0] = np.nan
        return values


@dataclasses.dataclass(frozen=True)
class MethodCurve:
    """A method's mean best-so-far and 95% interval over its runs, on the common compute grid."""

    method: str
    runs: tuple[str, ...]
    values: np.ndarray  # (runs, grid)
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def n(self) -> int:
        return len(self.runs)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Everything ``format_comparison`` and ``plot_comparison`` show."""

    metric: str
    mode: str
    compute: np.ndarray
    methods: tuple[MethodCurve, ...]
    runs: tuple[RunCurve, ...]

    def method(self, name: str) -> MethodCurve:
        for method in self.methods:
            if method.method == name:
                return method
        raise ConfigError(f"no method {name!r} in this comparison; it has {[m.method for m in self.methods]}")

    def best_run(self, method: str) -> str:
        """The directory of the method's run with the best final metric."""
        runs = [run for run in self.runs if run.method == method]
        if not runs:
            raise ConfigError(f"no method {method!r} in this comparison; it has {[m.method for m in self.methods]}")
        sign = 1.0 if self.mode == "max" else -1.0
        return max(runs, key=lambda run: sign * run.final_best).path


def _space_kinds(space: Any) -> set[str]:
    """'grid' / 'random' for the recorded param_space (domains are stored as their ``tune.…(...)`` text)."""
    kinds: set[str] = set()
    if isinstance(space, Mapping):
        for value in space.values():
            kinds |= _space_kinds(value)
    elif isinstance(space, str) and space.startswith("tune."):
        if space.startswith("tune.grid_search("):
            kinds.add("grid")
        elif not space.startswith("tune.sample_from("):
            kinds.add("random")
    return kinds


#: Scheduler types shown under their usual short name.
SHORT_NAMES = {"AsyncHyperBandScheduler": "ASHA", "HyperBandScheduler": "HyperBand"}


def method_of(experiment: Mapping[str, Any]) -> str:
    """The method of a run, from its experiment.json (the default grouping rule, see the module doc).
    PBT runs with one of the paper's strategy options name it, so that variants are compared apart.

        >>> method_of({"scheduler": {"type": "PopulationBasedTraining"}})
        'PBT'
        >>> method_of({"scheduler": {"type": "PopulationBasedTraining", "clip_to_domain": True}})
        'PBT (clip)'
        >>> method_of({"scheduler": {"type": "PopulationBasedTraining", "exploit_strategy": "ttest",
        ...                          "perturb_bounds": "reflect"}})
        'PBT (ttest, reflect)'
        >>> method_of({"scheduler": {"type": "AsyncHyperBandScheduler"}})
        'ASHA'
        >>> method_of({"scheduler": None, "param_space": {"lr": "tune.grid_search([0.1, 0.01])"}})
        'grid search'
        >>> method_of({"scheduler": None, "param_space": {"lr": "tune.loguniform(0.001, 0.1)"}})
        'random search'
    """
    scheduler = experiment.get("scheduler")
    kind = scheduler.get("type") if isinstance(scheduler, Mapping) else None
    if kind == "PopulationBasedTraining" and isinstance(scheduler, Mapping):
        return "PBT" + _pbt_variant(scheduler)
    if kind and kind not in ("FIFOScheduler", "FIFO"):
        return SHORT_NAMES.get(str(kind), str(kind))
    kinds = _space_kinds(experiment.get("param_space"))
    if "grid" in kinds:
        return "grid search"
    if "random" in kinds:
        return "random search"
    return "fixed"


def _pbt_variant(scheduler: Mapping[str, Any]) -> str:
    """`` (option, ...)`` for the strategy options that differ from Ray's PBT (see ``_strategy_description``)."""
    options = [str(scheduler[key]) for key in ("exploit_strategy", "explore_strategy") if scheduler.get(key)]
    if scheduler.get("clip_to_domain"):
        options.append("clip")
    elif scheduler.get("perturb_bounds"):
        options.append(str(scheduler["perturb_bounds"]))
    return f" ({', '.join(options)})" if options else ""


def _method_from_pattern(path: str, pattern: re.Pattern[str]) -> str:
    name = os.path.basename(os.path.normpath(path))
    match = pattern.search(name)
    if match is None:
        raise ConfigError(f"group_pattern {pattern.pattern!r} does not match the run directory name {name!r}")
    return match.group(1) if pattern.groups else match.group(0)


def run_curve(path: str, metric: str | None = None, mode: str | None = None, method: str | None = None) -> RunCurve:
    """Read one run directory into its best-so-far curve (rounds of lockstep reports, see the module doc)."""
    experiment_file = os.path.join(path, "experiment.json")
    if not os.path.isfile(experiment_file):
        raise ExperimentError(f"{path!r} is not a pbtlab run directory (no experiment.json)")
    run = RunDir(path)
    experiment = run.experiment
    metric = metric or experiment.get("metric")
    mode = mode or experiment.get("mode")
    if not metric or mode not in ("max", "min"):
        raise ConfigError(f"{path!r} records metric={experiment.get('metric')!r}, mode={experiment.get('mode')!r}; "
                          "pass metric=... and mode='max'/'min'")
    trial_ids = run.trial_ids
    sign = 1.0 if mode == "max" else -1.0
    per_trial: list[list[float]] = []
    for trial_id in trial_ids:
        values = []
        for row in run.rows(trial_id):
            value = metric_value(row, metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                values.append(sign * float(value))
            else:
                values.append(-math.inf)
        per_trial.append(values)
    if not any(per_trial):
        raise ExperimentError(f"{path!r} has no reported results")
    starts = _slot_starts(run, trial_ids, [len(values) for values in per_trial],
                          experiment.get("max_concurrent_trials"))
    rounds = max(start + len(values) for start, values in zip(starts, per_trial))
    compute = np.zeros(rounds)
    best = np.zeros(rounds)
    running, done = -math.inf, 0
    for k in range(rounds):
        for start, values in zip(starts, per_trial):
            if start <= k < start + len(values):
                done += 1
                running = max(running, values[k - start])
        compute[k], best[k] = done, running
    best = np.where(np.isfinite(best), sign * best, np.nan)
    return RunCurve(path=os.path.normpath(path), method=method or method_of(experiment), seed=experiment.get("seed"),
                    compute=compute, best=best, final_best=float(best[-1]))


def _slot_starts(run: RunDir, trial_ids: Sequence[str], lengths: Sequence[int], slots: Any) -> list[int]:
    """The round each trial's first report falls in: 0 for all when every trial has a slot; else each takes
    the first free slot in the order trials first started (``trial_start`` events) and keeps it for its rows.

        >>> _slot_starts(None, ["a", "b", "c"], [3, 1, 2], None)
        [0, 0, 0]
    """
    if not isinstance(slots, int) or isinstance(slots, bool) or slots >= sum(1 for n in lengths if n):
        return [0] * len(trial_ids)
    first_start: dict[str, int] = {}
    for event in run.events():
        if event.get("event") == "trial_start":
            first_start.setdefault(str(event.get("trial_id")), int(event.get("seq", 0)))
    order = sorted(range(len(trial_ids)), key=lambda i: (first_start.get(trial_ids[i], math.inf), i))
    free_at = [0] * max(slots, 1)
    starts = [0] * len(trial_ids)
    for i in order:
        if not lengths[i]:
            continue
        slot = min(range(len(free_at)), key=lambda j: (free_at[j], j))
        starts[i] = free_at[slot]
        free_at[slot] += lengths[i]
    return starts


def _interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and t-interval per column over the finite values; no interval for a single value."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    mean = np.where(counts > 0, np.where(finite, values, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)
    deviations = np.where(finite, values - mean, 0.0)
    variance = np.where(counts > 1, (deviations**2).sum(axis=0) / np.maximum(counts - 1, 1), 0.0)
    t = np.array([t_quantile_975(n - 1) if n > 1 else 0.0 for n in counts])
    half = t * np.sqrt(variance / np.maximum(counts, 1))
    return mean, mean - half, mean + half


def compare_runs(paths: Sequence[str | os.PathLike[str]], metric: str | None = None, mode: str | None = None,
                 group_pattern: str | None = None, points: int = 200) -> Comparison:
    """Read run directories, group them into methods and put them on one compute grid (see the module doc)."""
    if isinstance(paths, (str, os.PathLike)) or not paths:
        raise ConfigError(f"compare_runs(paths) needs a list of run directories, got {describe(paths)}")
    pattern = None
    if group_pattern is not None:
        try:
            pattern = re.compile(group_pattern)
        except re.error as error:
            raise ConfigError(f"group_pattern {group_pattern!r} is not a regular expression: {error}") from None
    curves = []
    for path in (os.fspath(p) for p in paths):
        method = _method_from_pattern(path, pattern) if pattern else None
        curves.append(run_curve(path, metric, mode, method))
    experiments = [RunDir(c.path).experiment for c in curves]
    recorded = [(e.get("metric"), e.get("mode")) for e in experiments]
    for curve, (run_metric, run_mode) in zip(curves, recorded):
        if (metric or run_metric, mode or run_mode) != (metric or recorded[0][0], mode or recorded[0][1]):
            raise ConfigError(f"runs tune different metrics: {curve.path!r} has {run_metric!r} ({run_mode}), "
                              f"{curves[0].path!r} has {recorded[0][0]!r} ({recorded[0][1]}); "
                              "compare one workload at a time, or pass metric=... and mode=...")
    metric = metric or recorded[0][0]
    mode = mode or recorded[0][1]
    budget = min(float(c.compute[-1]) for c in curves)
    start = min(float(c.compute[0]) for c in curves)
    grid = np.unique(np.concatenate([c.compute[c.compute <= budget] for c in curves]))
    if len(grid) > points:
        grid = np.unique(np.round(np.linspace(start, budget, points)))
    grouped: dict[str, list[RunCurve]] = {}
    for curve in curves:
        grouped.setdefault(curve.method, []).append(curve)
    methods = []
    # the reference (PBT) first, the others in the order their runs were given
    for name, members in sorted(grouped.items(), key=lambda item: item[0] != "PBT"):
        values = np.stack([member.best_at(grid) for member in members])
        mean, low, high = _interval(values)
        methods.append(MethodCurve(name, tuple(m.path for m in members), values, mean, low, high))
    return Comparison(str(metric), str(mode), grid, tuple(methods), tuple(curves))


def _cell(mean: float, low: float, high: float, n: int) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.4g} ± {high - mean:.2g}" if n > 1 else f"{mean:.4g}"


def format_comparison(comparison: Comparison, fractions: Sequence[float] = (0.25, 0.5, 1.0)) -> str:
    """A plain-text table: per method, the mean best-so-far ± 95% half-width at fractions of the common budget,
    the worst and best seed at the end, and the difference to PBT at the end (Welch 95% interval)."""
    grid = comparison.compute
    budget = grid[-1]
    columns = [int(np.searchsorted(grid, fraction * budget, side="right") - 1) for fraction in fractions]
    header = ["method", "runs", *[f"@{int(grid[max(c, 0)])} it" for c in columns], "seeds min..max", "vs PBT at end"]
    reference = next((m for m in comparison.methods if m.method == "PBT"), None)
    rows = []
    for method in comparison.methods:
        cells = [method.method, str(method.n)]
        for c in columns:
            cells.append(_cell(method.mean[c], method.low[c], method.high[c], method.n) if c >= 0 else "-")
        finals = method.values[:, -1]
        cells.append(f"{np.nanmin(finals):.4g}..{np.nanmax(finals):.4g}")
        cells.append(_difference(method, reference) if reference is not None and method is not reference else "")
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"best {comparison.metric} so far ({comparison.mode}), mean ± 95% half-width over runs, "
             f"at equal total trial-iterations (budget {int(budget)})",
             "  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _difference(method: MethodCurve, reference: MethodCurve) -> str:
    """This method minus PBT at the end, with a Welch 95% interval."""
    a, b = method.values[:, -1], reference.values[:, -1]
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return "-"
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    se = math.sqrt(va + vb)
    if se == 0:
        return f"{diff:+.3g} (no spread)"
    df = (va + vb) ** 2 / ((va**2 / (len(a) - 1)) + (vb**2 / (len(b) - 1)))
    half = t_quantile_975(df) * se
    return f"{diff:+.3g} [{diff - half:+.3g}, {diff + half:+.3g}]"


def plot_comparison(comparison: Comparison, ax: Any = None, title: str | None = None, show_runs: bool = True,
                    zoom: bool = True) -> Any:
    """Best metric so far against total trial-iterations: a line (mean) and band (95% interval) per method,
    and each run thin (methods differ in colour and line style, so overlapping means stay visible). With
    ``zoom`` (and no ``ax`` given) a second panel shows the last half of the budget, where methods separate.
    Returns the figure.

        >>> plot_comparison(compare_runs(paths)).savefig("compare.png")  # doctest: +SKIP
    """
    from pbtlab.viz import _mpl

    if ax is None:
        figure = _mpl.new_figure(figsize=(13, 4.8) if zoom else (8, 4.8))
        axes = [figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)] if zoom else [figure.add_subplot(1, 1, 1)]
    else:
        axes, zoom = [ax], False
    for panel in axes:
        _draw_methods(panel, comparison, show_runs)
    if zoom:
        half = comparison.compute >= comparison.compute[-1] / 2
        values = np.concatenate([np.concatenate([m.low[half], m.high[half]]) for m in comparison.methods])
        values = values[np.isfinite(values)]
        if values.size:
            low, high = float(values.min()), float(values.max())
            margin = (high - low) * 0.1 or abs(high) * 0.01 or 0.01
            axes[1].set_xlim(comparison.compute[-1] / 2, comparison.compute[-1] * 1.01)
            axes[1].set_ylim(low - margin, high + margin)
        axes[1].set_title("last half of the budget", fontsize=10)
    if title:
        axes[0].figure.suptitle(title) if zoom else axes[0].set_title(title)
    return axes[0].figure


def _draw_methods(ax: Any, comparison: Comparison, show_runs: bool) -> None:
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for index, method in enumerate(comparison.methods):
        color = colors[index % len(colors)]
        if show_runs:
            for row in method.values:
                ax.plot(comparison.compute, row, color=color, alpha=0.18, linewidth=0.8, drawstyle="steps-post")
        ax.plot(comparison.compute, method.mean, color=color, linewidth=2, drawstyle="steps-post",
                linestyle=["-", "--", ":", "-."][index % 4], label=f"{method.method} (n={method.n})")
        if method.n > 1:
            ax.fill_between(comparison.compute, method.low, method.high, color=color, alpha=0.2, step="post",
                            linewidth=0)
    ax.set_xlabel("compute: total trial-iterations")
    ax.set_ylabel(f"best {comparison.metric} so far ({comparison.mode})")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right" if comparison.mode == "max" else "upper right")
