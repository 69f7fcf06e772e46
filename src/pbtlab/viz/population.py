"""Every trial's hyperparameters over time, one panel per hyperparameter: the data
(``population_hyperparameters``, no matplotlib) and its drawing (``plot_population_hyperparameters``).

    >>> from pbtlab.viz import plot_population_hyperparameters
    >>> fig = plot_population_hyperparameters("pbtlab_results/my_run")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pbtlab.analysis.lineage import RunData, hyperparameter_names, hyperparameter_schedule, resolve_trial, run_data
from pbtlab.errors import ConfigError, describe
from pbtlab.nested import get_path
from pbtlab.viz._style import ANCESTRY_COLOR, trial_colors, trial_labels
from pbtlab.viz.schedule import axes_for, is_numeric

__all__ = ["plot_population_hyperparameters", "population_hyperparameters", "PopulationSeries"]


@dataclasses.dataclass(frozen=True, slots=True)
class PopulationSeries:
    """One trial's value of one hyperparameter over iterations, split at restarts."""

    trial_id: str
    param: str
    pieces: tuple[tuple[tuple[int, ...], tuple[Any, ...]], ...]
    #: (first iteration with the new value, old, new) per applied perturbation
    perturbations: tuple[tuple[int, Any, Any], ...]


def population_hyperparameters(run: RunData, params: Sequence[str] | None = None) -> dict[str, list[PopulationSeries]]:
    """Every trial's hyperparameters over time (from each row's config), per parameter."""
    params = hyperparameter_names(run, params)
    out: dict[str, list[PopulationSeries]] = {p: [] for p in params}
    for trial in run.trials:
        for p in params:
            pieces = []
            for segment in run.lineage.segments(trial.trial_id):
                rows = trial.rows[segment.first_row:segment.last_row + 1]
                pieces.append((tuple(int(r["training_iteration"]) for r in rows),
                               tuple(get_path(r.get("config") or {}, p) for r in rows)))
            marks = [(int(trial.rows[j.after_row]["training_iteration"]), get_path(j.old_config, p),
                      get_path(j.new_config, p))
                     for j in run.lineage.jumps_of(trial.trial_id) if j.after_row is not None]
            out[p].append(PopulationSeries(trial.trial_id, p, tuple(pieces), tuple(marks)))
    return out


def plot_population_hyperparameters(results: Any, params: Sequence[str] | None = None, colors: Sequence[Any] | None = None,
                                    labels: Sequence[str] | None = None, axes: Any = None,
                                    highlight: str | int | None = None, show_best: bool = True) -> Any:
    """Every trial's hyperparameters over training iterations, one panel per hyperparameter.

    ``params`` defaults to the hyperparameters the scheduler explores (``RunData.tuned_params``).
    Each trial's line breaks at its restarts; a small marker shows each recorded perturbation.
    With ``show_best`` the best final trial's stitched schedule (or ``highlight``'s) is overlaid
    as a thick dashed line. Returns the figure.

        >>> plot_population_hyperparameters(grid, params=["lr", "h0"])  # doctest: +SKIP
    """
    if not isinstance(show_best, bool):
        raise ConfigError(f"show_best must be True or False, got {describe(show_best)}")
    run = run_data(results)
    series = population_hyperparameters(run, params)
    if not series:
        raise ConfigError("this experiment has no hyperparameters to show (its param_columns are empty)")
    colors = trial_colors(run, colors)
    labels = trial_labels(run, labels, warn=False)
    figure, axes = axes_for(list(series), axes)
    schedule = None
    if show_best:
        try:
            schedule = hyperparameter_schedule(run, highlight, list(series))
        except ConfigError:
            if highlight is not None:
                raise
    for ax, (param, per_trial) in zip(axes, series.items()):
        for trial_series, color, label in zip(per_trial, colors, labels):
            for n, (iterations, values) in enumerate(trial_series.pieces):
                ax.step(iterations, values, where="post", color=color, alpha=0.8, linewidth=1.2,
                        label=label if n == 0 else None)
            marks = [(it, new) for it, _old, new in trial_series.perturbations if new is not None]
            if marks and is_numeric([m[1] for m in marks]):
                ax.plot([m[0] for m in marks], [m[1] for m in marks], linestyle="none", marker="o", markersize=2.5,
                        color=color, alpha=0.8)
        if schedule is not None:
            ax.step(schedule.iterations, schedule.values[param], where="post", color=ANCESTRY_COLOR, linewidth=2.5,
                    linestyle="--", alpha=0.9, label=f"schedule of best trial {schedule.trial_id}", zorder=5)
        ax.set_ylabel(param)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("Training Iteration")
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="trials (start config)",
                   title_fontsize=7)
    if highlight is not None:
        resolve_trial(run, highlight)
    axes[0].set_title("Hyperparameters of every trial over time (breaks at exploits; dots: new values)", fontsize=10)
    return figure
