"""A metric over training iterations, one line per trial (the tutorial's right panel).

    >>> from pbtlab.viz import plot_metric_history
    >>> ax = plot_metric_history("pbtlab_results/my_run", "Q")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pbtlab.viz import _mpl
from pbtlab.viz._style import trial_colors, trial_labels
from pbtlab.viz.data import metric_history, run_data


def plot_metric_history(results: Any, metric: str, colors: Sequence[Any] | None = None,
                        labels: Sequence[str] | None = None, ax: Any = None, *, title: str | None = None,
                        ylabel: str | None = None, legend_title: str | None = "Trial Initial Parameters",
                        show_jumps: bool = True) -> Any:
    """Each trial's ``metric`` against ``training_iteration`` (not the dataframe's row number).

    After an exploit a trial's line continues from the cloned checkpoint's value; a thin dashed
    connector shows the jump from the trial's own last value. Returns the axes.

        >>> plot_metric_history(results, "Q", ["red", "black"], ["h = [0, 1]", "h = [1, 0]"])  # doctest: +SKIP
    """
    run = run_data(results)
    lines = metric_history(run, metric)
    colors = trial_colors(run, colors)
    labels = trial_labels(run, labels)
    if ax is None:
        ax = _mpl.pyplot().gca()
    for line, color, label in zip(lines, colors, labels):
        for n, (iterations, values) in enumerate(line.pieces):
            ax.plot(iterations, values, color=color, label=label if n == 0 else None, linewidth=1.4)
        if show_jumps:
            for (x0, y0), (x1, y1) in line.jumps:
                ax.plot([x0, x1], [y0, y1], color=color, linestyle=":", linewidth=1.0, alpha=0.8)
    ax.set_title(title if title is not None else f"{metric} over training iterations")
    ax.set_xlabel("Training Iteration")
    ax.set_ylabel(ylabel or metric)
    if lines:
        ax.legend(title=legend_title, fontsize=8, title_fontsize=8)
    return ax


def plot_Q_history(results: Any, colors: Sequence[Any] | None = None, labels: Sequence[str] | None = None,
                   ax: Any = None) -> Any:
    """The tutorial's true-reward plot: ``Q`` against ``training_iteration``, one line per trial.

        >>> plot_Q_history(pbt_results, ["red", "black"], ["h = [0, 1]", "h = [1, 0]"], ax=axs[1])  # doctest: +SKIP
    """
    return plot_metric_history(results, "Q", colors, labels, ax, title="True Reward (Q) Value Over Training Iterations",
                               ylabel="Reward Q(theta)")
