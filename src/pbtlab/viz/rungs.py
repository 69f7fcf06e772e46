"""A successive-halving run (ASHA, HyperBand) made readable: each trial's metric against ``time_attr``,
one panel per bracket, with the rungs marked. The data (``rung_plot_data``, no matplotlib, read from the
event log) and its drawing (``plot_rungs``).

Trials the scheduler stopped are thin and grey, ending in a cross at the rung that stopped them; the others
are in colour, thick if they went furthest (to ``max_t`` or as far as any trial of the panel), dashed if
something else ended them (a stop criterion, the run's budget); a ring marks each promotion; a short orange
bar at a rung is its cutoff at the last decision taken there.

    >>> from pbtlab.viz.rungs import plot_rungs
    >>> figure = plot_rungs("pbtlab_results/asha_run")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pbtlab.analysis.lineage import RunData, run_data
from pbtlab.analysis.results import finite_number
from pbtlab.errors import ConfigError
from pbtlab.rundir.records import EventKind
from pbtlab.viz import _mpl
from pbtlab.viz._style import trial_colors

__all__ = ["BracketPanel", "CUTOFF_COLOR", "plot_rungs", "RUNG_KINDS", "rung_plot_data", "RungMark", "RungPlot"]

#: The cutoff bars: orange, which no trial gets from the default palette.
CUTOFF_COLOR = "#f59b00"
#: The event kinds this plot reads.
RUNG_KINDS = (EventKind.RUNG_REACHED.value, EventKind.RUNG_PROMOTED.value, EventKind.RUNG_STOPPED.value)


@dataclasses.dataclass(frozen=True, slots=True)
class RungMark:
    """One decision about a trial at a rung: where it was (``time``, ``value``) and what happened."""

    trial_id: str
    kind: str  # "promoted", "stopped" or "paused"
    rung: int | None
    milestone: float | None
    time: float
    value: float | None
    cutoff: float | None
    reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class BracketPanel:
    """One bracket: its trials' curves, its milestones, the decisions, and each rung's last cutoff."""

    bracket: int
    curves: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]  # trial -> (times, values)
    milestones: tuple[float, ...]
    marks: tuple[RungMark, ...]
    cutoffs: dict[float, float]  # milestone -> the cutoff at the last decision there
    stopped_early: frozenset[str]  # stopped below a cutoff / outside the top (not at max_t)
    went_furthest: frozenset[str]  # not stopped early, and reached max_t or the furthest time of the panel

    def count(self, kind: str, milestone: float, reason: str | None = None) -> int:
        """How many ``kind`` decisions ("promoted" / "stopped" / "paused") were taken at ``milestone``
        (for "stopped", those with ``reason``, or all but the "max_t" ones when ``reason`` is None)."""
        return sum(1 for m in self.marks if m.kind == kind and m.milestone == milestone
                   and (m.reason == reason if reason is not None else m.reason != "max_t"))

    def milestone_label(self, milestone: float) -> str:
        """``"4 on, 8 stopped"``, ``"3 ended at max_t"``: what happened at a milestone."""
        parts = [f"{n} {what}" for n, what in ((self.count("promoted", milestone), "on"),
                                               (self.count("stopped", milestone), "stopped"),
                                               (self.count("stopped", milestone, "max_t"), "ended at max_t")) if n]
        return ", ".join(parts) or "no decision yet"


@dataclasses.dataclass(frozen=True, slots=True)
class RungPlot:
    scheduler: str
    time_attr: str
    metric: str
    panels: tuple[BracketPanel, ...]


def rung_plot_data(run: RunData) -> RungPlot:
    """The panels of :func:`plot_rungs`, from the run's rows and its ``rung_*`` events.

    Raises ConfigError when the run has no rung decisions (it was not run by ASHA or HyperBand).
    """
    events = run.events_of(*RUNG_KINDS)
    if not events:
        raise ConfigError(f"the run at {run.path} has no rung decisions (rung_promoted / rung_stopped events): "
                          "the rung plot is for runs scheduled by AsyncHyperBandScheduler or HyperBandScheduler")
    time_attr = str(events[0]["time_attr"])
    metric = str(events[0]["metric"])
    scheduler = str(events[0].get("scheduler", ""))
    bracket_of: dict[str, int] = {}
    marks: dict[int, list[RungMark]] = {}
    for event in events:
        bracket = int(event["bracket"])
        bracket_of.setdefault(str(event["trial_id"]), bracket)
        kind = {EventKind.RUNG_REACHED.value: "paused", EventKind.RUNG_PROMOTED.value: "promoted",
                EventKind.RUNG_STOPPED.value: "stopped"}[event["event"]]
        marks.setdefault(bracket, []).append(RungMark(
            str(event["trial_id"]), kind, event.get("rung"), finite_number(event.get("milestone")),
            float(event["time_value"]), finite_number(event.get("value")), finite_number(event.get("cutoff")),
            event.get("reason")))
    panels = []
    for bracket in sorted(marks):
        curves: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
        for trial in run.trials:
            if bracket_of.get(trial.trial_id) != bracket:
                continue
            points = [(finite_number(r.get(time_attr)), finite_number(r.get(metric))) for r in trial.rows]
            kept = [(t, v) for t, v in points if t is not None and v is not None]
            curves[trial.trial_id] = (tuple(t for t, _ in kept), tuple(v for _, v in kept))
        bracket_marks = marks[bracket]
        milestones = sorted({m.milestone for m in bracket_marks if m.milestone is not None})
        cutoffs = {m.milestone: m.cutoff for m in bracket_marks
                   if m.milestone is not None and m.cutoff is not None and m.kind != "paused"}
        stopped = frozenset(m.trial_id for m in bracket_marks if m.kind == "stopped" and m.reason != "max_t")
        furthest = max((times[-1] for times, _ in curves.values() if times), default=0.0)
        went = frozenset(t for t, (times, _) in curves.items() if t not in stopped and times and (
            times[-1] >= furthest or any(m.trial_id == t and m.reason == "max_t" for m in bracket_marks)))
        panels.append(BracketPanel(bracket, curves, tuple(milestones), tuple(bracket_marks), cutoffs, stopped, went))
    return RungPlot(scheduler, time_attr, metric, tuple(panels))


def plot_rungs(results: Any, colors: Any = None, figure: Any = None, max_panels: int = 6) -> Any:
    """Draw :func:`rung_plot_data`: one panel per bracket (the first ``max_panels``), sharing the y axis.

    ``results`` is a ResultGrid or a run directory. Returns the figure.
    """
    run = run_data(results)
    data = rung_plot_data(run)
    palette = dict(zip(run.trial_ids, trial_colors(run, colors)))
    panels = data.panels[:max_panels]
    if figure is None:
        figure = _mpl.new_figure(figsize=(min(max(5.0 * len(panels), 7.5), 16.0), 4.8), layout="constrained")
    axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    lines = _mpl.lines()
    for ax, panel in zip(axes, panels):
        for trial_id, (times, values) in panel.curves.items():
            if trial_id in panel.stopped_early:
                ax.plot(times, values, color="#b0b0b0", linewidth=0.8, alpha=0.7, zorder=2)
            else:
                furthest = trial_id in panel.went_furthest
                ax.plot(times, values, color=palette.get(trial_id, "C0"), linewidth=2.0 if furthest else 1.0,
                        linestyle="-" if furthest else "--", alpha=0.95, zorder=3)
        for milestone in panel.milestones:
            ax.axvline(milestone, color="#555555", linestyle="--", linewidth=0.8, zorder=1)
            ax.annotate(f"{data.time_attr}={milestone:g}: {panel.milestone_label(milestone)}", (milestone, 0.98),
                        xycoords=("data", "axes fraction"), xytext=(-2, 0), textcoords="offset points", rotation=90,
                        ha="right", va="top", fontsize=7, color="#333333")
        for milestone, cutoff in panel.cutoffs.items():
            ax.plot([milestone], [cutoff], marker="_", markersize=16, markeredgewidth=3, color=CUTOFF_COLOR, zorder=5)
        promoted = [m for m in panel.marks if m.kind == "promoted" and m.value is not None]
        stopped = [m for m in panel.marks if m.kind == "stopped" and m.value is not None and m.reason != "max_t"]
        ax.scatter([m.time for m in promoted], [m.value for m in promoted], s=36, facecolors="none",
                   edgecolors="#1a7f37", linewidths=1.4, zorder=6)
        ax.scatter([m.time for m in stopped], [m.value for m in stopped], s=30, marker="x", color="#cf222e",
                   linewidths=1.4, zorder=6)
        all_times = [t for curve, _ in panel.curves.values() for t in curve]
        if panel.milestones and min(all_times, default=0.0) > 0 and max(panel.milestones) >= 8 * min(panel.milestones):
            ax.set_xscale("log")  # milestones grow geometrically: a log axis spaces the rungs evenly
            ticks = sorted({*panel.milestones, max(all_times)})
            ax.set_xticks(ticks, labels=[f"{m:g}" for m in ticks])
            ax.tick_params(axis="x", which="minor", labelbottom=False)
        ax.set_title(f"bracket {panel.bracket}: {len(panel.curves)} trials", fontsize=9)
        ax.set_xlabel(data.time_attr)
        ax.grid(alpha=0.25)
    axes[0].set_ylabel(data.metric)
    handles = [
        lines.Line2D([], [], color="C0", linewidth=2.0, label="went furthest (max_t or the panel's end)"),
        lines.Line2D([], [], color="C0", linewidth=1.0, linestyle="--",
                     label="ended otherwise (stop criterion, budget, error)"),
        lines.Line2D([], [], color="#b0b0b0", linewidth=0.8, label="stopped by the scheduler"),
        lines.Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="#1a7f37",
                     label="promoted at a rung"),
        lines.Line2D([], [], linestyle="none", marker="x", color="#cf222e", label="stopped at a rung"),
        lines.Line2D([], [], linestyle="none", marker="_", markersize=12, markeredgewidth=3, color=CUTOFF_COLOR,
                     label="rung cutoff (last decision)"),
        lines.Line2D([], [], color="#555555", linestyle="--", linewidth=0.8, label="rung milestone"),
    ]
    figure.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=len(handles) if len(panels) > 1 else 3)
    shown = f" (first {len(panels)} of {len(data.panels)} brackets)" if len(data.panels) > len(panels) else ""
    figure.suptitle(f"{data.scheduler}: {data.metric} against {data.time_attr}, rungs marked{shown}", fontsize=10)
    return figure
