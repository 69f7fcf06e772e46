"""A metric over training iterations, one line per trial (the tutorial's right panel): the data
(``metric_history``, no matplotlib) and its drawing (``plot_metric_history``, ``plot_Q_history``).

    >>> from pbtlab.viz import plot_metric_history
    >>> ax = plot_metric_history("pbtlab_results/my_run", "Q")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pbtlab.analysis.lineage import RunData, run_data
from pbtlab.analysis.results import finite_number, mode_sign
from pbtlab.errors import ConfigError, describe
from pbtlab.metrics import has_metric, metric_value
from pbtlab.viz import _mpl
from pbtlab.viz._style import ANCESTRY_COLOR, trial_colors, trial_labels
from pbtlab.viz.distributions import DEFAULT_QUANTILES, QuantileBands, draw_bands, population_matrix, quantile_bands
from pbtlab.viz.forms import choose_form

__all__ = [
    "draw_metric_bands", "LEGEND_GAP_INCHES", "LONG_LABEL", "metric_distribution", "metric_history",
    "MetricDistribution", "MetricLine", "plot_metric_history", "plot_population_metric", "plot_Q_history",
    "top_metric_lines",
]


# -- metric history (the tutorial's right panel) -----------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class MetricLine:
    """A trial's metric against ``training_iteration``: continuous pieces, and dashed jump connectors."""

    trial_id: str
    pieces: tuple[tuple[tuple[int, ...], tuple[float, ...]], ...]
    jumps: tuple[tuple[tuple[int, float], tuple[int, float]], ...]


def metric_history(run: RunData, metric: str) -> list[MetricLine]:
    """Each trial's ``metric`` against ``training_iteration`` (not the row number).

    After a jump the piece starts at the cloned checkpoint's (iteration, value), so the line shows
    what the trial continued from; the jump itself is a connector from the trial's own last value.
    """
    if not isinstance(metric, str):
        raise ConfigError(f"metric must be the name of a reported value (str), got {describe(metric)}")
    reported = {k for t in run.trials for r in t.rows[:1] for k in r}
    if metric not in reported:
        shown = sorted(k for t in run.trials[:1] for r in t.rows[:1] for k in r if not isinstance(r[k], dict))
        raise ConfigError(f"metric {metric!r} is not reported by this experiment; it reports {shown}")
    lines = []
    for trial in run.trials:
        pieces, connectors = [], []
        for segment in run.lineage.segments(trial.trial_id):
            rows = trial.rows[segment.first_row:segment.last_row + 1]
            its = [int(r["training_iteration"]) for r in rows if finite_number(metric_value(r, metric)) is not None]
            values = [float(metric_value(r, metric)) for r in rows if finite_number(metric_value(r, metric)) is not None]
            if segment.reason is not None and segment.source_checkpoint:
                clone = run.lineage.checkpoint_row(segment.source_checkpoint)
                if clone is not None:
                    clone_value = finite_number(metric_value(clone[0].rows[clone[1]], metric))
                    if clone_value is not None:
                        start = (int(clone[0].rows[clone[1]]["training_iteration"]), clone_value)
                        its.insert(0, start[0])
                        values.insert(0, start[1])
                        before_value = finite_number(metric_value(trial.rows[segment.first_row - 1], metric)) \
                            if segment.first_row > 0 else None
                        if before_value is not None:
                            before_it = int(trial.rows[segment.first_row - 1]["training_iteration"])
                            connectors.append(((before_it, before_value), start))
            if its:
                pieces.append((tuple(its), tuple(values)))
        lines.append(MetricLine(trial.trial_id, tuple(pieces), tuple(connectors)))
    return lines


#: Legend labels longer than this get a row each (the tutorial's ``h = [0, 1]`` share one row).
LONG_LABEL = 30
#: How far under the axes the legend's top sits (below the tick labels and the x label).
LEGEND_GAP_INCHES = 0.48


def plot_metric_history(results: Any, metric: str, colors: Sequence[Any] | None = None,
                        labels: Sequence[str] | None = None, ax: Any = None, *, title: str | None = None,
                        ylabel: str | None = None, legend_title: str | None = "Trial Initial Parameters",
                        show_jumps: bool = True, form: str = "auto") -> Any:
    """Each trial's ``metric`` against ``training_iteration`` (not the dataframe's row number).

    After an exploit a trial's line continues from the cloned checkpoint's value; a thin dashed
    connector shows the jump from the trial's own last value. Returns the axes.

    ``form``: "lines" (one per trial), "bands" (the population's quantile bands with the top 5 trials as
    lines: ``plot_population_metric``), or "auto": lines up to 16 trials, bands above.

        >>> plot_metric_history(results, "Q", ["red", "black"], ["h = [0, 1]", "h = [1, 0]"])  # doctest: +SKIP
    """
    run = run_data(results)
    if choose_form("metric", len(run.trials), form) == "bands":
        return plot_population_metric(run, metric, ax=ax if ax is not None else _mpl.pyplot().gca())
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
    if lines:  # under the axes, where it cannot cover a curve (and needs no search for a free spot)
        short = len(lines) <= 4 and max(map(len, labels[:len(lines)]), default=0) <= LONG_LABEL
        ax.legend(title=legend_title, fontsize=8, title_fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                  bbox_transform=_mpl.below_axes(ax, LEGEND_GAP_INCHES), frameon=False,
                  ncol=len(lines) if short else 1 if len(lines) <= 8 else 2)
    return ax


def plot_Q_history(results: Any, colors: Sequence[Any] | None = None, labels: Sequence[str] | None = None,
                   ax: Any = None) -> Any:
    """The tutorial's true-reward plot: ``Q`` against ``training_iteration``, one line per trial.

        >>> plot_Q_history(pbt_results, ["red", "black"], ["h = [0, 1]", "h = [1, 0]"], ax=axs[1])  # doctest: +SKIP
    """
    return plot_metric_history(results, "Q", colors, labels, ax, title="True Reward (Q) Value Over Training Iterations",
                               ylabel="Reward Q(theta)")


# -- the metric --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class MetricDistribution:
    """A metric's quantile bands over the population, and the ``top`` trials (best final value first)."""

    bands: QuantileBands
    top: tuple[str, ...]


def metric_distribution(run: RunData, metric: str | None = None, top_k: int = 5,
                        levels: Sequence[float] = DEFAULT_QUANTILES) -> MetricDistribution:
    """The population's ``metric`` (default: the experiment's) per iteration, and its ``top_k`` final trials."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= 20:
        raise ConfigError(f"top_k must be a whole number in [0, 20], got {describe(top_k)}")
    metric = metric or run.metric
    if not isinstance(metric, str):
        raise ConfigError(f"metric must be the name of a reported value, got {describe(metric)} (this experiment "
                          "names no metric: pass metric=...)")
    if run.trials and not any(has_metric(r, metric) for t in run.trials for r in t.rows[:1]):
        reported = {k for t in run.trials for r in t.rows[:1] for k in r}
        raise ConfigError(f"metric {metric!r} is not reported by this experiment; it reports "
                          f"{sorted(k for k in reported if k != 'config')}")
    matrix = population_matrix(run, metric, from_config=False)
    bands = quantile_bands(matrix, levels)
    sign = mode_sign(run.mode) if run.mode in ("min", "max") and metric == run.metric else 1.0
    final = [(finite_number(metric_value(t.final_row, metric)), t.index, t.trial_id) for t in run.trials]
    ranked = sorted((f for f in final if f[0] is not None), key=lambda f: (-sign * float(f[0] or 0.0), f[1]))
    return MetricDistribution(dataclasses.replace(bands, log_scale=False), tuple(t for _, _, t in ranked[:top_k]))


def plot_population_metric(results: Any, metric: str | None = None, top_k: int = 5, ax: Any = None,
                           quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Any:
    """The population's metric over training iterations as quantile bands, with the ``top_k`` trials (by their
    final value) drawn as lines, each continuing from the checkpoint it cloned at an exploit. Returns the axes.

        >>> plot_population_metric("runs/pbt_1024", top_k=3)     # doctest: +SKIP
    """
    run = run_data(results)
    distribution = metric_distribution(run, metric, top_k, quantiles)
    if ax is None:
        _, ax = _mpl.pyplot().subplots(figsize=(10, 5))
    draw_metric_bands(ax, run, distribution)
    return ax


def draw_metric_bands(ax: Any, run: RunData, distribution: MetricDistribution) -> None:
    """Draw a precomputed metric distribution (the top trials' lines read from ``run``)."""
    bands = distribution.bands
    draw_bands(ax, bands, steps=False)
    lines = top_metric_lines(run, distribution)
    for n, trial_id in enumerate(distribution.top):
        color = ANCESTRY_COLOR if n == 0 else _TOP_COLORS[(n - 1) % len(_TOP_COLORS)]
        for k, (iterations, values) in enumerate(lines[trial_id].pieces):
            ax.plot(iterations, values, color=color, linewidth=2.0 if n == 0 else 1.2, zorder=5 - min(n, 3),
                    label=(f"{'best' if n == 0 else f'#{n + 1}'} {trial_id}" if k == 0 else None))
    ax.set_xlabel("Training Iteration")
    ax.set_ylabel(bands.name)
    ax.grid(alpha=0.3)
    ax.set_title(f"{bands.name} of the {len(run.trials)} trials over time: quantile bands"
                 + (f", top {len(distribution.top)} trials as lines" if distribution.top else ""), fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


_TOP_COLORS = ("#c0392b", "#8e44ad", "#16a085", "#2c3e50", "#d35400", "#7f8c8d")


def top_metric_lines(run: RunData, distribution: MetricDistribution) -> dict[str, MetricLine]:
    """The metric history of the distribution's top trials only (not of every trial)."""
    wanted = set(distribution.top)
    if not wanted:
        return {}
    return {line.trial_id: line for line in metric_history(_only(run, wanted), distribution.bands.name)}


def _only(run: RunData, trial_ids: set[str]) -> RunData:
    """``run`` with only some trials' rows (their lineage still reads every trial's checkpoints)."""
    lineage = run.lineage
    kept = dataclasses.replace(run, trials=tuple(t for t in run.trials if t.trial_id in trial_ids))
    kept.__dict__["lineage"] = lineage  # the full run's index: a clone's source may be a trial not kept
    return kept

