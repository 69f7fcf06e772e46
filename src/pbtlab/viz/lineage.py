"""The population's family tree: one lane per trial, an arrow per exploit, the winner's ancestry highlighted;
for large populations, the ancestry tree of the final population instead.

The data (``lineage``, ``ancestry_tree``; no matplotlib) and their drawing (``draw_lineage``,
``draw_ancestry_tree``, ``plot_lineage``).

    >>> from pbtlab.viz import plot_lineage
    >>> ax = plot_lineage("pbtlab_results/my_run")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from pbtlab.analysis.lineage import AncestrySpan, LineageEdge, RunData, Segment, ancestry, resolve_trial, run_data
from pbtlab.errors import ConfigError
from pbtlab.viz import _mpl
from pbtlab.viz._cache import per_run
from pbtlab.viz._style import ANCESTRY_COLOR, trial_colors, trial_labels
from pbtlab.viz.forms import choose_form
from pbtlab.viz.founders import FOUNDER_COLORS, SegmentKey, weight_founders

__all__ = [
    "ancestry_tree", "AncestryTree", "draw_ancestry_tree", "draw_lineage", "Lineage", "lineage",
    "lineage_figsize", "plot_lineage", "TreeNode", "TUTORIAL_LANES",
]


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


#: Up to this many lanes the tutorial's drawing is kept exactly (two-line labels, curved annotation arrows).
TUTORIAL_LANES = 4


def lineage_figsize(population: int, form: str = "lanes") -> tuple[float, float]:
    """A figure size (inches) that fits ``population`` lanes (or the tree of that many final trials).

        >>> lineage_figsize(4), lineage_figsize(64), lineage_figsize(1024, "tree")
        ((11, 4.0), (11, 13.5), (11, 12.0))
    """
    if form == "tree":
        return (11, 12.0 if population > 64 else round(3.5 + 0.12 * population, 1))
    if population <= TUTORIAL_LANES:
        return (11, round(1.2 + 0.7 * population, 1))
    return (11, round(min(14.0, 1.2 + 0.7 * min(population, 8) + 0.12 * max(0, population - 8)), 1))


def plot_lineage(results: Any, trial: str | int | None = None, colors: Sequence[Any] | None = None,
                 labels: Sequence[str] | None = None, ax: Any = None, form: str = "auto") -> Any:
    """Draw each trial as a lane over training iterations and each exploit as an arrow from the
    donor's lane (at the cloned checkpoint's iteration) to the target's lane; the stretches and
    exploits that produced the best final trial (or ``trial``) are highlighted. Returns the axes.

    ``form``: "lanes" (one lane per trial), "tree" (the ancestry tree of the final population: every
    trial's final weights followed back to the trial that trained them from scratch), or "auto": lanes up
    to 128 trials, the tree above (``pbtlab.viz.forms``).

        >>> plot_lineage(grid)                  # doctest: +SKIP
        >>> plot_lineage("runs/p4", trial=2)    # doctest: +SKIP
        >>> plot_lineage("runs/p1024", form="tree")    # doctest: +SKIP
    """
    run = run_data(results)
    form = choose_form("lineage", len(run.trials), form)
    if form == "tree":
        tree = ancestry_tree(run, trial)
        if ax is None:
            _, ax = _mpl.pyplot().subplots(figsize=lineage_figsize(len(run.trials), "tree"), layout="constrained")
        draw_ancestry_tree(ax, tree, run.metric)
        return ax
    lanes = lineage(run, trial)
    colors = trial_colors(run, colors)
    labels = trial_labels(run, labels, warn=False)
    if ax is None:
        plt = _mpl.pyplot()  # above the tutorial's sizes, the layout makes room for the labels and the legend
        _, ax = plt.subplots(figsize=lineage_figsize(len(run.trials)),
                             layout="constrained" if len(run.trials) > TUTORIAL_LANES else None)
    draw_lineage(ax, lanes, colors, labels, run.metric)
    return ax


def draw_lineage(ax: Any, tree: Lineage, colors: Sequence[Any], labels: Sequence[str], metric: str | None) -> None:
    """Draw precomputed lineage data on ``ax``.

    Up to ``TUTORIAL_LANES`` lanes, as the tutorial's figures always were. Above, the arcs are Bezier paths
    in data coordinates whose bulge is kept inside the axes, and lane labels are one line sized to the lane.
    """
    many = len(tree.trial_ids) > TUTORIAL_LANES
    lane = {tid: i for i, tid in enumerate(tree.trial_ids)}
    width = 5 if not many else max(1.0, min(5.0, 260.0 / len(tree.trial_ids)))
    for segment in tree.segments:
        y = lane[segment.trial_id]
        color = colors[y]
        ax.plot([segment.start_iteration, segment.end_iteration], [y, y], color=color, linewidth=width, alpha=0.35,
                solid_capstyle="butt", zorder=1)
        if segment.reason in ("explore", "failure", "resume"):
            marker = {"explore": "d", "failure": "x", "resume": ">"}[segment.reason]
            ax.plot([segment.start_iteration], [y], marker=marker, color=color, markersize=6 if not many else 4,
                    zorder=4)
    ancestry_edges = set(tree.ancestry_edges)
    if many:
        _draw_arcs(ax, tree, lane, ancestry_edges)
    else:
        for edge in tree.edges:
            in_ancestry = edge.seq in ancestry_edges
            ax.annotate("", xy=(edge.donor_iteration, lane[edge.target]),
                        xytext=(edge.donor_iteration, lane[edge.donor]), zorder=5 if in_ancestry else 3,
                        arrowprops={"arrowstyle": "-|>", "color": ANCESTRY_COLOR if in_ancestry else "0.45",
                                    "lw": 2.2 if in_ancestry else 0.9, "alpha": 1.0 if in_ancestry else 0.7,
                                    "connectionstyle": "arc3,rad=0.25", "shrinkA": 2, "shrinkB": 2,
                                    "mutation_scale": 9, "linestyle": "-" if edge.applied else ":"})
    for span in tree.ancestry:
        y = lane[span.trial_id]
        ax.plot([span.start_iteration, span.end_iteration], [y, y], color=ANCESTRY_COLOR,
                linewidth=3 if not many else min(3.0, width + 0.5), solid_capstyle="butt", zorder=4)
    if tree.best_trial is not None:
        end = max((s.end_iteration for s in tree.segments if s.trial_id == tree.best_trial), default=0)
        ax.plot([end], [lane[tree.best_trial]], marker="*", markersize=14 if not many else 11, color=ANCESTRY_COLOR,
                markeredgecolor="k", zorder=6)
    if many:
        _lane_labels(ax, tree.trial_ids, labels)
    else:
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


def _draw_arcs(ax: Any, tree: Lineage, lane: dict[str, int], ancestry_edges: set[int]) -> None:
    """Each exploit as a quadratic Bezier arc from donor to target lane, bulging at most ``bulge`` iterations
    sideways (downward arrows to the left, upward to the right); the x limits leave room for the bulge."""
    spans = [(s.start_iteration, s.end_iteration) for s in tree.segments] or [(0, 1)]
    low, high = min(a for a, _ in spans), max(b for _, b in spans)
    iterations = sorted({e.donor_iteration for e in tree.edges})
    gaps = [b - a for a, b in zip(iterations, iterations[1:]) if b > a]
    bulge = 0.4 * min(gaps + [max(1.0, 0.04 * (high - low))])
    path_codes = _mpl.curve3()
    for edge in tree.edges:
        in_ancestry = edge.seq in ancestry_edges
        y0, y1 = lane[edge.donor], lane[edge.target]
        side = -1.0 if y1 > y0 else 1.0
        reach = bulge * min(1.0, 0.35 + abs(y1 - y0) / 12)
        x = edge.donor_iteration
        # a quadratic Bezier's widest point is half-way to its control point: the control point sits at 2 x reach
        vertices = [(x, y0), (x + 2 * side * reach, (y0 + y1) / 2), (x, y1)]
        ax.add_patch(_mpl.path_arrow(
            vertices, path_codes, arrowstyle="-|>", mutation_scale=7, zorder=5 if in_ancestry else 3,
            color=ANCESTRY_COLOR if in_ancestry else "0.45", linewidth=1.8 if in_ancestry else 0.6,
            alpha=1.0 if in_ancestry else 0.55, linestyle="-" if edge.applied else ":"))
    ax.set_xlim(low - max(bulge, 0.02 * (high - low)), high + max(bulge, 0.02 * (high - low)))


def _lane_labels(ax: Any, trial_ids: Sequence[str], labels: Sequence[str]) -> None:
    """One-line lane labels in a font that fits the lane height; every k-th lane when even 5 pt is too big."""
    count = len(trial_ids)
    height_points = ax.get_position().height * ax.figure.get_figheight() * 72 / max(count, 1)
    size = max(5.0, min(7.0, 0.8 * height_points))
    step = 1 if 0.8 * height_points >= 5.0 else int(np.ceil(5.0 / (0.8 * height_points)))
    shown = range(0, count, step)
    width = max(len(t) for t in trial_ids) if trial_ids else 0
    with_config = count <= 16
    ax.set_yticks(list(shown))
    ax.set_yticklabels([f"{trial_ids[i]:<{width}}  {labels[i]}" if with_config else trial_ids[i] for i in shown],
                       fontsize=size, fontfamily="monospace" if with_config else None)
    ax.set_ylabel("trial" + (f" (every {step}th lane labelled)" if step > 1 else ""))


# -- the collapsed view: the ancestry tree of the final population ---------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class TreeNode:
    """A stretch of training some final trial descends from: ``trial_id`` trained from ``start_iteration`` to
    ``end_iteration`` (its last iteration any final trial's weights still need); drawn on row ``row``.
    ``parent``: the node it was cloned or restarted from, at ``branch_iteration`` (None: trained from scratch)."""

    trial_id: str
    first_row: int
    start_iteration: int
    end_iteration: int
    row: int
    parent: int | None
    founder: str
    final: bool  # the last stretch of a trial (it reaches the end of the run)


@dataclasses.dataclass(frozen=True, slots=True)
class AncestryTree:
    """The final population's ancestry as a tree: ``nodes``; ``leaves`` (the trials, in row order, related
    trials next to each other); ``lineages`` (iteration, how many distinct ancestors the final population has
    there); the best (or chosen) trial and the nodes of its ancestry."""

    nodes: tuple[TreeNode, ...]
    leaves: tuple[str, ...]
    lineages: tuple[tuple[int, int], ...]
    founders: tuple[str, ...]  # founders of the final population, the most descendants first
    best_trial: str | None
    best_path: tuple[int, ...]

    @property
    def common_ancestor_until(self) -> int | None:
        """The last iteration at which the whole final population descends from one stretch (None if never)."""
        single = [it for it, count in self.lineages if count == 1]
        return single[-1] if single else None


def ancestry_tree(run: RunData, trial: str | int | None = None) -> AncestryTree:
    """Every trial's final weights followed back through the checkpoints their restarts loaded, merged into one
    tree, laid out so each trial has a row and every stretch shares the row of the descendant that used it last
    (computed once per ``RunData`` and trial)."""
    return per_run(run, ("ancestry_tree", trial), lambda: _ancestry_tree(run, trial))


def _ancestry_tree(run: RunData, trial: str | int | None) -> AncestryTree:
    founders = weight_founders(run)
    nodes: dict[SegmentKey, dict[str, Any]] = {}
    children: dict[SegmentKey, list[tuple[int, SegmentKey]]] = {}
    leaves_of: list[SegmentKey] = []
    for record in run.trials:
        if not record.rows:
            continue
        key = founders.segment_of(record.trial_id, len(record.rows) - 1)
        leaves_of.append(key)
        segment = founders.segments[key]
        nodes.setdefault(key, {"end": segment.end_iteration, "final": True})
        nodes[key].update(final=True, end=max(nodes[key]["end"], segment.end_iteration))
        current = key
        while True:
            link = founders.parent.get(current)
            if link is None:
                break
            parent_key, branch = link
            if parent_key == current:  # pragma: no cover - a damaged log
                break
            known = parent_key in nodes
            entry = nodes.setdefault(parent_key, {"end": branch, "final": False})
            entry["end"] = max(entry["end"], branch)
            children.setdefault(parent_key, [])
            if (branch, current) not in children[parent_key]:
                children[parent_key].append((branch, current))
            if known:
                break
            current = parent_key

    trial_index = {t.trial_id: t.index for t in run.trials}
    parent_of = {child: parent for parent, kids in children.items() for _, child in kids}
    roots = sorted((k for k in nodes if k not in parent_of), key=lambda k: (trial_index[k[0]], k[1]))
    rows: dict[SegmentKey, int] = {}
    order: list[SegmentKey] = []
    leaves: list[str] = []
    stack = list(reversed(roots))
    while stack:
        key = stack.pop()
        rows[key] = len(leaves)
        order.append(key)
        if nodes[key]["final"]:
            leaves.append(key[0])
        # the child branching last continues this node's row (unless the node itself reaches the end)
        kids = sorted(children.get(key, ()), key=lambda c: (-c[0], trial_index[c[1][0]], c[1][1]))
        stack.extend(child for _, child in reversed(kids))
    index = {key: n for n, key in enumerate(order)}
    built = tuple(
        TreeNode(key[0], key[1], founders.segments[key].start_iteration, int(nodes[key]["end"]), rows[key],
                 index[parent_of[key]] if key in parent_of else None, founders.founder[key], bool(nodes[key]["final"]))
        for key in order)

    iterations = sorted({int(r.get("training_iteration", 0)) for t in run.trials for r in t.rows})
    starts = np.array([n.start_iteration for n in built])
    ends = np.array([n.end_iteration for n in built])
    lineages = tuple((it, int(((starts < it) & (ends >= it)).sum()) if it > 0 else int((starts == 0).sum()))
                     for it in iterations)
    descendants: dict[str, int] = {}
    for key in leaves_of:
        descendants[founders.founder[key]] = descendants.get(founders.founder[key], 0) + 1
    founder_order = tuple(sorted(descendants, key=lambda f: (-descendants[f], trial_index[f])))

    try:
        best: str | None = resolve_trial(run, trial).trial_id
    except ConfigError:
        if trial is not None:
            raise
        best = None
    path: list[int] = []
    if best is not None and run.trial(best).rows:
        current_node: int | None = index[founders.segment_of(best, len(run.trial(best).rows) - 1)]
        while current_node is not None:
            path.append(current_node)
            current_node = built[current_node].parent
    return AncestryTree(built, tuple(leaves), lineages, founder_order, best, tuple(reversed(path)))


def draw_ancestry_tree(ax: Any, tree: AncestryTree, metric: str | None = None, max_founders: int = 12) -> None:
    """Draw a precomputed ancestry tree on ``ax``: one row per final trial, each stretch coloured by its founder
    (the ``max_founders`` with the most descendants; the rest grey), a vertical link at every branch; above the
    axes, how many distinct ancestors the final population has at each iteration."""
    colour_of = {f: FOUNDER_COLORS[n % len(FOUNDER_COLORS)] for n, f in enumerate(tree.founders[:max_founders])}
    spans, span_colors, links, link_colors = [], [], [], []
    for node in tree.nodes:
        color = colour_of.get(node.founder, "0.6")
        spans.append([(node.start_iteration, node.row), (node.end_iteration, node.row)])
        span_colors.append(color)
        if node.parent is not None:
            parent = tree.nodes[node.parent]
            links.append([(node.start_iteration, parent.row), (node.start_iteration, node.row)])
            link_colors.append(color)
    count = max(1, len(tree.leaves))
    width = max(0.4, min(2.5, 300.0 / count))
    ax.add_collection(_mpl.line_collection(links, colors=link_colors, linewidths=max(0.3, 0.6 * width), alpha=0.6,
                                           zorder=2))
    ax.add_collection(_mpl.line_collection(spans, colors=span_colors, linewidths=width, zorder=3))
    if tree.best_path:
        best_lines = []
        for k, n in enumerate(tree.best_path):
            node = tree.nodes[n]
            # an ancestor counts up to where the next stretch of the path branched off it
            until = tree.nodes[tree.best_path[k + 1]].start_iteration if k + 1 < len(tree.best_path) \
                else node.end_iteration
            best_lines.append([(node.start_iteration, node.row), (until, node.row)])
            if node.parent is not None:
                best_lines.append([(node.start_iteration, tree.nodes[node.parent].row),
                                   (node.start_iteration, node.row)])
        ax.add_collection(_mpl.line_collection(best_lines, colors=ANCESTRY_COLOR, linewidths=max(1.5, width + 0.5),
                                               zorder=4))
        leaf = tree.nodes[tree.best_path[-1]]
        ax.plot([leaf.end_iteration], [leaf.row], marker="*", markersize=12, color=ANCESTRY_COLOR,
                markeredgecolor="k", zorder=6, linestyle="none")
    first = min((n.start_iteration for n in tree.nodes), default=0)
    last = max((n.end_iteration for n in tree.nodes), default=1)
    ax.set_xlim(first, last + 0.01 * max(1, last - first))
    ax.set_ylim(count - 0.5, -0.5)
    ax.set_xlabel("Training Iteration")
    ax.set_ylabel(f"the {len(tree.leaves)} final trials, related ones together")
    if count <= 64:
        ax.set_yticks(range(count))
        ax.set_yticklabels(tree.leaves, fontsize=max(4.5, min(7.0, 500.0 / count)))
    else:
        ax.set_yticks([])
    ax.grid(axis="x", alpha=0.3)
    lines = _mpl.lines()
    handles = [lines.Line2D([], [], color=colour_of[f], lw=3, label=f"founder {f}") for f in tree.founders[:6]]
    if len(tree.founders) > 6:
        handles.append(lines.Line2D([], [], color="0.6", lw=3, label=f"{len(tree.founders) - 6} more founders"))
    handles.append(lines.Line2D([], [], color=ANCESTRY_COLOR, lw=2.5, label="ancestry of the best final trial"
                                + (f" (by {metric})" if metric else "")))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=_mpl.below_axes(ax, 0.5),
              ncol=min(4, len(handles)), fontsize=8, frameon=False)
    # the coalescence: distinct ancestors of the final population per iteration, in a strip above the tree
    strip = ax.inset_axes((0.0, 1.02, 1.0, 0.12), sharex=ax)
    strip.step([it for it, _ in tree.lineages], [c for _, c in tree.lineages], where="post", color="0.25", lw=1.2)
    strip.set_yscale("log")
    _mpl.plain_log_ticks(strip.yaxis)
    strip.set_ylabel("ancestors", fontsize=7)
    strip.tick_params(labelbottom=False, labelsize=7)
    strip.grid(alpha=0.3)
    common_until = tree.common_ancestor_until
    common = (f"; they share one ancestor up to iteration {common_until}" if common_until is not None
              else "; they never share one ancestor")
    strip.set_title(f"Ancestry of the final population: {len(tree.leaves)} trials descend from "
                    f"{len(tree.founders)} founder{'s' if len(tree.founders) != 1 else ''}{common}\n"
                    "(top: distinct ancestors at each iteration; best trial's ancestry in gold)", fontsize=10)


def _compress(trial_ids: Sequence[str]) -> list[str]:
    out: list[str] = []
    for tid in trial_ids:
        if not out or out[-1] != tid:
            out.append(tid)
    if len(out) > 8:
        out = out[:3] + ["…"] + out[-4:]
    return out
