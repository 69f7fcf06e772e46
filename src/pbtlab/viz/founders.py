"""Founder share over time (a Muller plot): which original trials' weights took over the population, and when.

The data (``founder_shares``, ``weight_founders``; no matplotlib) and its drawing (``plot_founder_shares``,
``draw_founder_shares``). A trial's weights descend from the trial that trained them from scratch (its
*founder*): an exploit copies the donor's weights at the donor's checkpoint, so the clone inherits the founder
of the donor's state at that checkpoint, followed through the checkpoint each restart actually loaded.

    >>> from pbtlab.examples.runs import run_toy_pbt
    >>> run = run_data(run_toy_pbt(population=4, seed=0, storage_path=getfixture("tmp_path")))
    >>> shares = founder_shares(run)
    >>> bool(np.allclose(shares.shares.sum(axis=1), 1.0)), shares.counts[0].tolist()
    (True, [1, 1, 1, 1])
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Any

import numpy as np

from pbtlab.analysis.lineage import RunData, Segment, run_data
from pbtlab.errors import ConfigError, describe
from pbtlab.viz import _mpl
from pbtlab.viz._cache import per_run

__all__ = [
    "draw_founder_shares", "FOUNDER_COLORS", "founder_shares", "FounderShares", "OTHERS_COLOR",
    "plot_founder_shares", "weight_founders", "WeightFounders",
]

#: Colours of the leading founders (tab20 without the orange pair, kept for the best trial's ancestry).
FOUNDER_COLORS = ("#1f77b4", "#aec7e8", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
                  "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d",
                  "#17becf", "#9edae5")
#: Colour of the founders grouped as "others".
OTHERS_COLOR = "#d9d9d9"

SegmentKey = tuple[str, int]  # (trial id, first row of the segment)


@dataclasses.dataclass(frozen=True, slots=True)
class WeightFounders:
    """Where every trained stretch's weights came from.

    ``founder[key]``: the trial that trained the weights of segment ``key`` from scratch; ``parent[key]``: the
    segment whose checkpoint it started from and that checkpoint's iteration (None: from scratch).
    """

    segments: dict[SegmentKey, Segment]
    founder: dict[SegmentKey, str]
    parent: dict[SegmentKey, tuple[SegmentKey, int] | None]
    row_founders: dict[str, tuple[str, ...]]  # per trial, the founder of each row's weights
    starts: dict[str, list[int]]  # per trial, the first row of each segment

    def segment_of(self, trial_id: str, row: int) -> SegmentKey:
        """The segment holding ``row`` of ``trial_id``."""
        starts = self.starts[trial_id]
        return trial_id, starts[bisect.bisect_right(starts, row) - 1]


def weight_founders(run: RunData) -> WeightFounders:
    """Each segment's founder and parent, from the checkpoints the restarts loaded (``restored_from``).

    Computed once per ``RunData`` (kept beside its ``lineage``): founder shares and the ancestry tree share it.
    """
    return per_run(run, "weight_founders", lambda: _weight_founders(run))


def _weight_founders(run: RunData) -> WeightFounders:
    lineage = run.lineage
    segments: dict[SegmentKey, Segment] = {}
    starts: dict[str, list[int]] = {}
    for trial in run.trials:
        for segment in lineage.segments(trial.trial_id) if trial.rows else ():
            segments[(trial.trial_id, segment.first_row)] = segment
            starts.setdefault(trial.trial_id, []).append(segment.first_row)

    parent: dict[SegmentKey, tuple[SegmentKey, int] | None] = {}
    for key, segment in segments.items():
        found = lineage.checkpoint_row(segment.source_checkpoint) if segment.source_checkpoint else None
        if found is None:
            parent[key] = None
            continue
        owner, row = found
        owner_starts = starts[owner.trial_id]
        parent_key = (owner.trial_id, owner_starts[bisect.bisect_right(owner_starts, row) - 1])
        parent[key] = (parent_key, int(owner.rows[row].get("training_iteration", 0)))

    founder: dict[SegmentKey, str] = {}
    for key in segments:
        chain = []
        current: SegmentKey | None = key
        while current is not None and current not in founder:
            chain.append(current)
            link = parent[current]
            if link is None or link[0] in chain:  # a damaged log could loop: stop at the repeat
                break
            current = link[0]
        root = founder[current] if current is not None and current in founder else chain[-1][0]
        for item in chain:
            founder[item] = root

    row_founders = {}
    for trial in run.trials:
        own = starts.get(trial.trial_id, [])
        row_founders[trial.trial_id] = tuple(
            founder[(trial.trial_id, own[bisect.bisect_right(own, row) - 1])] for row in range(len(trial.rows)))
    return WeightFounders(segments, founder, parent, row_founders, starts)


@dataclasses.dataclass(frozen=True, slots=True)
class FounderShares:
    """``shares[i, k]``: the fraction of the trials reporting ``iterations[i]`` whose weights descend from
    ``founders[k]`` (rows sum to 1); ``counts`` the same as whole trials."""

    iterations: tuple[int, ...]
    founders: tuple[str, ...]
    counts: np.ndarray  # (iterations, founders), int
    shares: np.ndarray  # (iterations, founders), float

    def leading(self, limit: int) -> list[int]:
        """Indices of at most ``limit`` founders, the largest final share first (then the largest peak share);
        founders that never held a trial after the start are left out."""
        final = self.shares[-1] if len(self.iterations) else np.zeros(len(self.founders))
        peak = self.shares[1:].max(axis=0) if len(self.iterations) > 1 else final
        order = sorted(range(len(self.founders)), key=lambda k: (-final[k], -peak[k], k))
        return [k for k in order if peak[k] > 0 or final[k] > 0][:limit]


def founder_shares(run: RunData) -> FounderShares:
    """The population's founder shares at every reported iteration (computed once per ``RunData``).

    At iteration ``i`` each trial counts once, with the weights it reported ``i`` with (its last row at ``i``),
    among the trials that reported ``i``.
    """
    return per_run(run, "founder_shares", lambda: _founder_shares(run))


def _founder_shares(run: RunData) -> FounderShares:
    founders = weight_founders(run)
    column = {t.trial_id: n for n, t in enumerate(run.trials)}
    iterations = sorted({int(r.get("training_iteration", 0)) for t in run.trials for r in t.rows})
    position = {it: n for n, it in enumerate(iterations)}
    counts = np.zeros((len(iterations), len(run.trials)), dtype=np.int64)
    for trial in run.trials:
        latest: dict[int, str] = {}
        for row, founder in zip(trial.rows, founders.row_founders[trial.trial_id]):
            latest[int(row.get("training_iteration", 0))] = founder
        for iteration, founder in latest.items():
            counts[position[iteration], column[founder]] += 1
    totals = counts.sum(axis=1, keepdims=True)
    shares = counts / np.maximum(totals, 1)
    return FounderShares(tuple(iterations), tuple(run.trial_ids), counts, shares)


def plot_founder_shares(results: Any, max_founders: int = 12, ax: Any = None) -> Any:
    """A Muller plot: at each training iteration, the share of the population whose weights descend from each
    original trial (stacked, the founders with the largest final share at the bottom). The ``max_founders``
    leading founders get a colour each; the rest are stacked as "others". Returns the axes.

        >>> plot_founder_shares("runs/pbt_64")      # doctest: +SKIP
    """
    if isinstance(max_founders, bool) or not isinstance(max_founders, int) or not 1 <= max_founders <= 18:
        raise ConfigError(f"max_founders must be a whole number in [1, 18] (one colour each), got "
                          f"{describe(max_founders)}")
    run = run_data(results)
    shares = founder_shares(run)
    if ax is None:
        _, ax = _mpl.pyplot().subplots(figsize=(10, 4.8))
    draw_founder_shares(ax, shares, max_founders)
    return ax


def draw_founder_shares(ax: Any, shares: FounderShares, max_founders: int = 12) -> None:
    """Draw precomputed founder shares on ``ax``."""
    if not shares.iterations:
        ax.set_title("Founder share: no trial has reported yet", fontsize=10)
        return
    leading = shares.leading(max_founders)
    rest = [k for k in range(len(shares.founders)) if k not in set(leading)]
    layers = [shares.shares[:, k] for k in leading]
    labels = [f"{shares.founders[k]} ({_fate(shares, k)})" for k in leading]
    colors: list[Any] = [FOUNDER_COLORS[n % len(FOUNDER_COLORS)] for n in range(len(leading))]
    if rest:
        layers.append(shares.shares[:, rest].sum(axis=1))
        alive = int((shares.counts[-1, rest] > 0).sum())
        labels.append(f"{len(rest)} other founders ({alive} alive at the end)")
        colors.append(OTHERS_COLOR)
    ax.stackplot(shares.iterations, np.vstack(layers), labels=labels, colors=colors, step="post", linewidth=0.3,
                 edgecolor="white")
    ax.set_xlim(shares.iterations[0], shares.iterations[-1])
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(_mpl.percent_formatter())
    ax.set_xlabel("Training Iteration")
    ax.set_ylabel("share of the population")
    surviving = int((shares.counts[-1] > 0).sum())
    ax.set_title(f"Founder share: whose weights the {int(shares.counts[-1].sum())} trials carry "
                 f"({surviving} of {len(shares.founders)} founders left at the end)", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, title="founder (trial trained from scratch)",
              title_fontsize=7, frameon=False)


def _fate(shares: FounderShares, k: int) -> str:
    if shares.counts[-1, k] > 0:
        return f"{shares.shares[-1, k]:.0%} at the end"
    held = np.nonzero(shares.counts[:, k])[0]
    return f"gone after iteration {shares.iterations[held[-1]]}" if len(held) else "never reported"
