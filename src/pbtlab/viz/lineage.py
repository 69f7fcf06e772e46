"""The population's family tree: one lane per trial, an arrow per exploit, the winner's ancestry highlighted.

The data (``lineage``, from ``pbtlab.analysis.lineage``; no matplotlib) and its drawing (``draw_lineage``,
``plot_lineage``).

    >>> from pbtlab.viz import plot_lineage
    >>> ax = plot_lineage("pbtlab_results/my_run")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pbtlab.analysis.lineage import AncestrySpan, LineageEdge, RunData, Segment, ancestry, resolve_trial, run_data
from pbtlab.errors import ConfigError
from pbtlab.viz import _mpl
from pbtlab.viz._style import ANCESTRY_COLOR, trial_colors, trial_labels


@dataclasses.dataclass(frozen=True, slots=True)
class Lineage:
    """Everything the family-tree plot draws: every trial's segments, the exploit edges, the best
    (or chosen) trial and its ancestry (oldest first)."""

    trial_ids: tuple[str, ...]
    segments: tuple[Segment, ...]
    edges: tuple[LineageEdge, ...]
    best_trial: str | None
    ancestry: tuple[AncestrySpan, ...]

    @property
    def ancestry_edges(self) -> tuple[int, ...]:
        return tuple(span.entered_by for span in self.ancestry if span.entered_by is not None)


def lineage(run: RunData, trial: str | int | None = None) -> Lineage:
    """The family tree's data; ``trial`` None highlights the best final trial (none if it cannot be ranked)."""
    try:
        best = resolve_trial(run, trial).trial_id
    except ConfigError:
        if trial is not None:
            raise
        best = None
    segments = tuple(s for t in run.trials for s in run.lineage.segments(t.trial_id))
    return Lineage(tuple(run.trial_ids), segments, run.lineage.edges, best,
                   tuple(ancestry(run, best)) if best is not None else ())


def plot_lineage(results: Any, trial: str | int | None = None, colors: Sequence[Any] | None = None,
                 labels: Sequence[str] | None = None, ax: Any = None) -> Any:
    """Draw each trial as a lane over training iterations and each exploit as an arrow from the
    donor's lane (at the cloned checkpoint's iteration) to the target's lane; the stretches and
    exploits that produced the best final trial (or ``trial``) are highlighted. Returns the axes.

        >>> plot_lineage(grid)                  # doctest: +SKIP
        >>> plot_lineage("runs/p4", trial=2)    # doctest: +SKIP
    """
    run = run_data(results)
    tree = lineage(run, trial)
    colors = trial_colors(run, colors)
    labels = trial_labels(run, labels, warn=False)
    if ax is None:
        plt = _mpl.pyplot()
        _, ax = plt.subplots(figsize=(11, 1.2 + 0.7 * len(run.trials)))
    draw_lineage(ax, tree, colors, labels, run.metric)
    return ax


def draw_lineage(ax: Any, tree: Lineage, colors: Sequence[Any], labels: Sequence[str], metric: str | None) -> None:
    """Draw precomputed lineage data on ``ax``."""
    lane = {tid: i for i, tid in enumerate(tree.trial_ids)}
    for segment in tree.segments:
        y = lane[segment.trial_id]
        color = colors[y]
        ax.plot([segment.start_iteration, segment.end_iteration], [y, y], color=color, linewidth=5, alpha=0.35,
                solid_capstyle="butt", zorder=1)
        if segment.reason in ("explore", "failure", "resume"):
            marker = {"explore": "d", "failure": "x", "resume": ">"}[segment.reason]
            ax.plot([segment.start_iteration], [y], marker=marker, color=color, markersize=6, zorder=4)
    ancestry_edges = set(tree.ancestry_edges)
    for edge in tree.edges:
        in_ancestry = edge.seq in ancestry_edges
        ax.annotate("", xy=(edge.donor_iteration, lane[edge.target]), xytext=(edge.donor_iteration, lane[edge.donor]),
                    zorder=5 if in_ancestry else 3,
                    arrowprops={"arrowstyle": "-|>", "color": ANCESTRY_COLOR if in_ancestry else "0.45",
                                "lw": 2.2 if in_ancestry else 0.9, "alpha": 1.0 if in_ancestry else 0.7,
                                "connectionstyle": "arc3,rad=0.25", "shrinkA": 2, "shrinkB": 2,
                                "mutation_scale": 9, "linestyle": "-" if edge.applied else ":"})
    for span in tree.ancestry:
        y = lane[span.trial_id]
        ax.plot([span.start_iteration, span.end_iteration], [y, y], color=ANCESTRY_COLOR, linewidth=3,
                solid_capstyle="butt", zorder=4)
    if tree.best_trial is not None:
        end = max((s.end_iteration for s in tree.segments if s.trial_id == tree.best_trial), default=0)
        ax.plot([end], [lane[tree.best_trial]], marker="*", markersize=14, color=ANCESTRY_COLOR,
                markeredgecolor="k", zorder=6)
    ax.set_yticks(range(len(tree.trial_ids)))
    ax.set_yticklabels([f"{tid}\n{label}" for tid, label in zip(tree.trial_ids, labels)], fontsize=7)
    ax.set_ylim(len(tree.trial_ids) - 0.5, -0.5)
    ax.set_xlabel("Training Iteration")
    lines = _mpl.lines()
    handles = [lines.Line2D([], [], color="0.45", marker=">", markersize=5, lw=0.9, label="exploit (donor → target)"),
               lines.Line2D([], [], color=ANCESTRY_COLOR, lw=3, label="ancestry of the best final trial"),
               lines.Line2D([], [], color=ANCESTRY_COLOR, marker="*", markersize=10, markeredgecolor="k", lw=0,
                            label="best final trial" + (f" (by {metric})" if metric else ""))]
    if any(s.reason == "explore" for s in tree.segments):
        handles.append(lines.Line2D([], [], color="0.3", marker="d", lw=0, label="explore-only restart"))
    if any(s.reason in ("failure", "resume") for s in tree.segments):
        handles.append(lines.Line2D([], [], color="0.3", marker="x", lw=0, label="restart after failure/resume"))
    # under the tick labels and the x label, at a fixed distance however tall the axes are
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
              bbox_transform=_mpl.below_axes(ax, 0.5), ncol=len(handles), fontsize=8, frameon=False)
    ax.set_title(f"Lineage: {len(tree.edges)} exploits (donor → target)" +
                 (f"; best final trial {tree.best_trial}\nits weights were trained by "
                  f"{' → '.join(_compress([s.trial_id for s in tree.ancestry]))}" if tree.best_trial else ""),
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)


def _compress(trial_ids: Sequence[str]) -> list[str]:
    out: list[str] = []
    for tid in trial_ids:
        if not out or out[-1] != tid:
            out.append(tid)
    if len(out) > 8:
        out = out[:3] + ["…"] + out[-4:]
    return out
