"""The best trial's stitched hyperparameter schedule: its data (``hyperparameter_schedule``, from
``pbtlab.analysis.lineage``) and its drawing (``draw_schedule``, ``plot_hyperparameter_schedule``).

    >>> from pbtlab.viz import plot_hyperparameter_schedule
    >>> fig = plot_hyperparameter_schedule("pbtlab_results/my_run")     # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from pbtlab.analysis.lineage import RunData, Schedule, hyperparameter_schedule, run_data
from pbtlab.errors import ConfigError
from pbtlab.metrics import metric_value
from pbtlab.viz import _mpl
from pbtlab.viz._style import ANCESTRY_COLOR, trial_colors

__all__ = ["axes_for", "draw_schedule", "is_numeric", "plot_hyperparameter_schedule"]


def axes_for(params: Sequence[str], axes: Any, title_height: float = 0.0) -> tuple[Any, list[Any]]:
    if axes is None:
        plt = _mpl.pyplot()
        figure, made = plt.subplots(len(params), 1, figsize=(10, 0.6 + title_height + 2.0 * len(params)),
                                    sharex=True, squeeze=False)
        return figure, list(made[:, 0])
    axes = list(axes) if isinstance(axes, (list, tuple)) else list(getattr(axes, "flat", [axes]))
    if len(axes) < len(params):
        raise ConfigError(f"axes must hold one Axes per hyperparameter ({len(params)}: {list(params)}), "
                          f"got {len(axes)}")
    return axes[0].figure, axes[:len(params)]


def is_numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)


def plot_hyperparameter_schedule(results: Any, trial: str | int | None = None, params: Sequence[str] | None = None,
                                 axes: Any = None, colors: Sequence[Any] | None = None) -> Any:
    """The hyperparameters the best final trial (or ``trial``) was actually trained with, stitched
    across the trials it descends from: one step plot per hyperparameter, coloured by the trial
    that ran each stretch, with a vertical line at every exploit where the ancestry switched.
    ``params`` defaults to the hyperparameters the scheduler explores (``RunData.tuned_params``).
    Returns the figure.

        >>> plot_hyperparameter_schedule(grid)                      # doctest: +SKIP
        >>> plot_hyperparameter_schedule("runs/p4", params=["lr"])  # doctest: +SKIP
    """
    run = run_data(results)
    schedule = hyperparameter_schedule(run, trial, params)
    if not schedule.params:
        raise ConfigError("this experiment has no hyperparameters to show (its param_columns are empty)")
    figure, axes = axes_for(schedule.params, axes)
    draw_schedule(axes, run, schedule, trial_colors(run, colors))
    return figure


def draw_schedule(axes: Sequence[Any], run: RunData, schedule: Schedule, colors: Sequence[Any]) -> None:
    """Draw a precomputed schedule, one hyperparameter per axes."""
    index = {t.trial_id: t.index for t in run.trials}
    bounds = list(schedule.span_starts) + [len(schedule.iterations)]
    metric = run.metric
    final = metric_value(run.trial(schedule.trial_id).final_row, metric) if metric else None
    for ax, param in zip(axes, schedule.params):
        values = schedule.values[param]
        if not is_numeric(values):
            values = tuple(str(v) for v in values)
        seen: set[str] = set()
        for start, end in itertools.pairwise(bounds):
            owner = schedule.owners[start]
            xs = list(schedule.iterations[start:end])
            ys = list(values[start:end])
            if end < len(values):  # hold the last value until the next span takes over
                xs.append(schedule.iterations[end])
                ys.append(ys[-1])
            ax.step(xs, ys, where="post", color=colors[index[owner]], linewidth=2,
                    label=owner if owner not in seen else None)
            seen.add(owner)
        for iteration, _seq in schedule.switches:
            ax.axvline(iteration, color=ANCESTRY_COLOR, linestyle="--", linewidth=1, alpha=0.9)
        ax.set_ylabel(param)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("Training Iteration")
    axes[0].legend(title="trained by", fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    score = f", final {metric} = {final:.6g}" if isinstance(final, (int, float)) else ""
    axes[0].set_title(f"Hyperparameter schedule of trial {schedule.trial_id}{score} "
                      f"({len(schedule.switches)} exploit{'' if len(schedule.switches) == 1 else 's'} "
                      "in its ancestry, dashed)", fontsize=10)
