"""The population's hyperparameters as distributions over time: quantile bands (or a trial x iteration
heat map in ancestry order), with the best trial drawn over them.

Data (``population_matrix``, ``quantile_bands``, ``hyperparameter_distributions``, ``hyperparameter_heatmap``;
no matplotlib) beside their drawing (``plot_hyperparameter_distributions``, ``draw_hyperparameter_bands``,
``draw_bands``). The metric's bands (``metric_distribution``, ``plot_population_metric``) are in
``pbtlab.viz.history``, beside the per-trial metric history.

    >>> from pbtlab.examples.runs import run_toy_pbt
    >>> run = run_data(run_toy_pbt(population=4, seed=0, storage_path=getfixture("tmp_path")))
    >>> bands = hyperparameter_distributions(run)["h0"]
    >>> bands.levels, bands.values.shape
    ((0.05, 0.25, 0.5, 0.75, 0.95), (5, 100))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from pbtlab.analysis.lineage import (
    RunData,
    Schedule,
    hyperparameter_names,
    hyperparameter_schedule,
    run_data,
)
from pbtlab.analysis.results import finite_number
from pbtlab.metrics import metric_value
from pbtlab.errors import ConfigError, describe
from pbtlab.nested import get_path
from pbtlab.viz._cache import per_run
from pbtlab.viz._style import ANCESTRY_COLOR
from pbtlab.viz.forms import choose_form

__all__ = [
    "ancestry_order", "BAND_COLOR", "DEFAULT_QUANTILES", "draw_bands", "draw_hyperparameter_bands",
    "draw_hyperparameter_heatmap", "hyperparameter_distributions", "hyperparameter_heatmap", "LOG_SCALE_RATIO",
    "numeric_params", "plot_hyperparameter_distributions", "population_matrix", "PopulationMatrix",
    "quantile_bands", "QuantileBands",
]

#: The quantiles drawn as bands: the outer band holds 90% of the population, the inner one half; the median line.
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: A positive hyperparameter spanning at least this ratio (max / min) is drawn on a log axis.
LOG_SCALE_RATIO = 20.0
BAND_COLOR = "#3b6ea8"


@dataclasses.dataclass(frozen=True, slots=True)
class PopulationMatrix:
    """``values[t, i]``: trial ``trial_ids[t]``'s value at ``iterations[i]`` (its last row there; NaN: none)."""

    name: str
    trial_ids: tuple[str, ...]
    iterations: tuple[int, ...]
    values: np.ndarray


def population_matrix(run: RunData, column: str, from_config: bool = True) -> PopulationMatrix:
    """Every trial's value of a hyperparameter (``from_config``) or a reported metric, per reported iteration
    (computed once per ``RunData``)."""
    return per_run(run, ("population_matrix", column, from_config),
                   lambda: _population_matrix(run, column, from_config))


def _population_matrix(run: RunData, column: str, from_config: bool) -> PopulationMatrix:
    iterations = sorted({int(r.get("training_iteration", 0)) for t in run.trials for r in t.rows})
    position = {it: n for n, it in enumerate(iterations)}
    values = np.full((len(run.trials), len(iterations)), np.nan)
    nan = float("nan")
    for t, trial in enumerate(run.trials):
        if not trial.rows:
            continue
        columns = [position[int(r.get("training_iteration", 0))] for r in trial.rows]
        raw = [get_path(r.get("config") or {}, column) for r in trial.rows] if from_config \
            else [metric_value(r, column) for r in trial.rows]
        numbers = [finite_number(v) for v in raw]
        # a trial's later row at the same iteration (after a restart) wins, as numpy assigns in order
        values[t, columns] = [nan if v is None else v for v in numbers]
    return PopulationMatrix(column, tuple(run.trial_ids), tuple(iterations), values)


@dataclasses.dataclass(frozen=True, slots=True)
class QuantileBands:
    """``values[q, i]``: the ``levels[q]`` quantile of the population at ``iterations[i]``; ``counts[i]`` trials."""

    name: str
    iterations: tuple[int, ...]
    levels: tuple[float, ...]
    values: np.ndarray
    counts: tuple[int, ...]
    log_scale: bool


def quantile_bands(matrix: PopulationMatrix, levels: Sequence[float] = DEFAULT_QUANTILES) -> QuantileBands:
    """Quantiles of a population matrix at each iteration, over the trials that have a value there."""
    levels = _check_levels(levels)
    finite = ~np.isnan(matrix.values)
    counts = tuple(int(c) for c in finite.sum(axis=0))
    out = np.full((len(levels), len(matrix.iterations)), np.nan)
    for i, count in enumerate(counts):
        if count:
            out[:, i] = np.quantile(matrix.values[finite[:, i], i], levels)
    present = matrix.values[finite]
    log_scale = bool(present.size and present.min() > 0 and present.max() / present.min() >= LOG_SCALE_RATIO)
    return QuantileBands(matrix.name, matrix.iterations, tuple(levels), out, counts, log_scale)


def _check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    if isinstance(levels, str) or not isinstance(levels, Sequence) or len(levels) not in (3, 5) or any(
            isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1 for q in levels) \
            or list(levels) != sorted(levels):
        raise ConfigError(f"quantiles must be 3 or 5 increasing fractions in [0, 1] (outer band, [inner band,] "
                          f"median in the middle), got {describe(levels)}")
    return tuple(float(q) for q in levels)


def numeric_params(run: RunData, params: Sequence[str] | None = None) -> list[str]:
    """``params`` (default: the tuned ones) that hold numbers; a named non-numeric one is an error."""
    names = hyperparameter_names(run, params)
    numeric = []
    for name in names:
        seen = [get_path(r.get("config") or {}, name) for t in run.trials for r in t.rows[:1]]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen if v is not None):
            numeric.append(name)
        elif params is not None:
            raise ConfigError(f"params: {name!r} is not numeric (values such as {seen[:3]!r}); its distribution "
                              "cannot be drawn as bands")
    return numeric


def hyperparameter_distributions(run: RunData, params: Sequence[str] | None = None,
                                 levels: Sequence[float] = DEFAULT_QUANTILES) -> dict[str, QuantileBands]:
    """Per numeric hyperparameter (default: the tuned ones), the population's quantiles at each iteration."""
    return {p: quantile_bands(population_matrix(run, p), levels) for p in numeric_params(run, params)}


def ancestry_order(run: RunData) -> list[str]:
    """The trials in the order of the final population's ancestry tree: related trials next to each other."""
    from pbtlab.viz.lineage import ancestry_tree

    leaves = list(ancestry_tree(run).leaves)
    return leaves + [t for t in run.trial_ids if t not in set(leaves)]


def hyperparameter_heatmap(run: RunData, param: str) -> PopulationMatrix:
    """Every trial's value of ``param`` per iteration, the trials in ancestry order (``ancestry_order``)."""
    matrix = population_matrix(run, numeric_params(run, [param])[0])
    position = {t: n for n, t in enumerate(matrix.trial_ids)}
    order = ancestry_order(run)
    return PopulationMatrix(param, tuple(order), matrix.iterations, matrix.values[[position[t] for t in order]])


def _best_schedule(run: RunData, trial: str | int | None, params: Sequence[str]) -> Schedule | None:
    try:
        return hyperparameter_schedule(run, trial, list(params))
    except ConfigError:
        if trial is not None:
            raise
        return None


def plot_hyperparameter_distributions(results: Any, params: Sequence[str] | None = None, form: str = "auto",
                                      trial: str | int | None = None, axes: Any = None,
                                      quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Any:
    """Each tuned hyperparameter's distribution over the population, per training iteration, with the best
    final trial's schedule (or ``trial``'s: the values its final weights were trained with) drawn over it.

    ``form``: "bands" (quantile bands: 5-95% and 25-75% of the population, and the median), "heatmap" (one
    row per trial in ancestry order, one column per iteration), "lines" (every trial:
    ``plot_population_hyperparameters``), or "auto": lines up to 16 trials, bands above. Returns the figure.

        >>> plot_hyperparameter_distributions("runs/pbt_64")                    # doctest: +SKIP
        >>> plot_hyperparameter_distributions("runs/pbt_64", form="heatmap")    # doctest: +SKIP
    """
    run = run_data(results)
    form = choose_form("hyperparameters", len(run.trials), form)
    if form == "lines":
        from pbtlab.viz.population import plot_population_hyperparameters

        return plot_population_hyperparameters(run, params=params, axes=axes, highlight=trial)
    names = numeric_params(run, params)
    if not names:
        raise ConfigError("this experiment has no numeric hyperparameters to show (its param_columns are empty "
                          "or hold no numbers)")
    figure, axes = _axes(names, axes)
    schedule = _best_schedule(run, trial, names)
    if form == "heatmap":
        for ax, name in zip(axes, names):
            draw_hyperparameter_heatmap(ax, hyperparameter_heatmap(run, name), schedule)
        axes[-1].set_xlabel("Training Iteration")
        axes[0].set_title(f"Hyperparameters of the {len(run.trials)} trials (one row each, related trials together)"
                          + (f"; dashed: the best final trial {schedule.trial_id}" if schedule else ""), fontsize=10)
        return figure
    for ax, name in zip(axes, names):
        draw_hyperparameter_bands(ax, quantile_bands(population_matrix(run, name), quantiles), schedule)
    axes[-1].set_xlabel("Training Iteration")
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    axes[0].set_title(f"Hyperparameters of the {len(run.trials)} trials over time: quantile bands"
                      + (f", and the schedule the best trial {schedule.trial_id} was trained with" if schedule else ""),
                      fontsize=10)
    return figure


def _axes(names: Sequence[str], axes: Any) -> tuple[Any, list[Any]]:
    from pbtlab.viz.schedule import axes_for

    return axes_for(names, axes)


def draw_bands(ax: Any, bands: QuantileBands, steps: bool = True) -> None:
    """Quantile bands on ``ax``: the outer and inner bands filled, the median as a line; ``steps`` for values held
    from one iteration to the next (hyperparameters), else straight between iterations (a metric)."""
    xs = bands.iterations
    v = bands.values
    label = ""
    step = "post" if steps else None
    if len(bands.levels) == 5:
        ax.fill_between(xs, v[0], v[4], step=step, color=BAND_COLOR, alpha=0.18, linewidth=0,
                        label=f"{label}{bands.levels[0]:.0%}–{bands.levels[4]:.0%} of trials")
        ax.fill_between(xs, v[1], v[3], step=step, color=BAND_COLOR, alpha=0.35, linewidth=0,
                        label=f"{label}{bands.levels[1]:.0%}–{bands.levels[3]:.0%}")
    else:
        ax.fill_between(xs, v[0], v[2], step=step, color=BAND_COLOR, alpha=0.25, linewidth=0,
                        label=f"{label}{bands.levels[0]:.0%}–{bands.levels[2]:.0%} of trials")
    ax.plot(xs, v[len(bands.levels) // 2], drawstyle="steps-post" if steps else "default", color=BAND_COLOR,
            linewidth=1.3, label=f"{label}median")
    if bands.log_scale:
        ax.set_yscale("log")


def draw_hyperparameter_bands(ax: Any, bands: QuantileBands, schedule: Schedule | None) -> None:
    """One hyperparameter's bands, with the best trial's schedule (gold, dashed) over them."""
    draw_bands(ax, bands)
    if schedule is not None and bands.name in schedule.values:
        ax.step(schedule.iterations, schedule.values[bands.name], where="post", color=ANCESTRY_COLOR, linewidth=2.2,
                linestyle="--", label=f"schedule of best trial {schedule.trial_id}", zorder=5)
    ax.set_ylabel(bands.name)
    ax.grid(alpha=0.3)


def draw_hyperparameter_heatmap(ax: Any, matrix: PopulationMatrix, schedule: Schedule | None) -> None:
    """One hyperparameter as a heat map (trials x iterations), the best trial's row marked."""
    values = matrix.values
    present = values[~np.isnan(values)]
    log = bool(present.size and present.min() > 0 and present.max() / present.min() >= LOG_SCALE_RATIO)
    shown = np.log10(values) if log else values
    last = matrix.iterations[-1] if matrix.iterations else 1
    first = matrix.iterations[0] if matrix.iterations else 0
    image = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="viridis",
                      extent=(first - 0.5, last + 0.5, len(matrix.trial_ids) - 0.5, -0.5))
    colorbar = ax.figure.colorbar(image, ax=ax, pad=0.01)
    colorbar.set_label(f"log10 {matrix.name}" if log else matrix.name, fontsize=8)
    if schedule is not None and schedule.trial_id in matrix.trial_ids:
        row = matrix.trial_ids.index(schedule.trial_id)
        ax.axhline(row, color=ANCESTRY_COLOR, linewidth=1.2, linestyle="--",
                   label=f"best final trial {schedule.trial_id}")
    ax.set_ylabel(f"{matrix.name}\n(trials, ancestry order)", fontsize=8)
    ax.set_yticks([])
