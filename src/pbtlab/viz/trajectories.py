"""Parameter trajectories over the true objective's contours (the tutorial's left panel): the data
(``parameter_history``, no matplotlib) and its drawing (``ParameterArtists``, ``plot_parameter_history``).

    >>> from pbtlab.viz import plot_parameter_history
    >>> artists = plot_parameter_history("pbtlab_results/my_run", None, None)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pbtlab.analysis.lineage import RunData, run_data
from pbtlab.errors import ConfigError, describe
from pbtlab.viz import _mpl
from pbtlab.viz._style import trial_colors, trial_labels
from pbtlab.viz.tutorial import TOY_PARAMETERS, toy_initial_point, toy_objective

__all__ = [
    "Arrow", "marker_sizes", "parameter_history", "parameter_setup", "PARAMETER_TITLE", "ParameterArtists",
    "ParameterHistory", "plot_parameter_history", "Trajectory",
]

PARAMETER_TITLE = "Parameter History and True Reward Q(theta) Contour"


# -- parameter trajectories (the tutorial's left panel and animation) ---------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Arrow:
    """A jump drawn in parameter space: from the point before it to the cloned point."""

    seq: int
    kind: str
    trial_id: str
    donor: str | None
    decision_iteration: int
    clone_iteration: int
    start: tuple[float, float]
    end: tuple[float, float]
    point_index: int | None  # index in the trajectory of the first point after the jump


@dataclasses.dataclass(frozen=True, slots=True)
class Trajectory:
    """A trial's points in parameter space; point 0 is the initial point when one is given.

    ``pieces`` are index ranges of points trained continuously (each starts at its cloned point,
    given in ``piece_starts``), so lines never connect across a jump.
    """

    trial_id: str
    iterations: tuple[int, ...]
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    pieces: tuple[tuple[int, int], ...]
    piece_starts: tuple[tuple[float, float] | None, ...]
    labelled: tuple[int, ...]  # point indices that get an iteration label


@dataclasses.dataclass(frozen=True, slots=True)
class ParameterHistory:
    x: str
    y: str
    trajectories: tuple[Trajectory, ...]
    arrows: tuple[Arrow, ...]


def parameter_history(run: RunData, x: str = "theta0", y: str = "theta1",
                      initial_point: Sequence[float] | None = None,
                      label_every: int | None = None) -> ParameterHistory:
    """Trajectories of two reported values and the recorded jumps between them.

    Iteration labels go on each trial's points at the recorded decision iterations (and at 0);
    a run with no decisions (grid search) is labelled every ``label_every`` iterations if given.
    """
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be the name of a reported value (str), got {describe(value)}")
        missing = [t.trial_id for t in run.trials if t.rows and value not in t.rows[0]]
        if missing:
            reported = sorted(k for k in run.trials[0].rows[0] if not isinstance(run.trials[0].rows[0][k], dict))
            raise ConfigError(f"{name}={value!r} is not reported by trial(s) {missing}; they report {reported}")
    if label_every is not None and (isinstance(label_every, bool) or not isinstance(label_every, int)
                                    or label_every < 1):
        raise ConfigError(f"label_every must be a whole number >= 1 or None, got {describe(label_every)}")
    all_jumps = run.lineage.jumps
    decisions = {j.decision_iteration for j in all_jumps}
    offset = 1 if initial_point is not None else 0
    trajectories = []
    for trial in run.trials:
        xs = [float(r[x]) for r in trial.rows]
        ys = [float(r[y]) for r in trial.rows]
        iterations = [int(r.get("training_iteration", i + 1)) for i, r in enumerate(trial.rows)]
        if initial_point is not None:
            xs.insert(0, float(initial_point[0]))
            ys.insert(0, float(initial_point[1]))
            iterations.insert(0, 0)
        pieces: list[tuple[int, int]] = []
        starts: list[tuple[float, float] | None] = []
        for segment in run.lineage.segments(trial.trial_id):
            first, last = segment.first_row + offset, segment.last_row + offset
            if segment.reason is None:
                pieces.append((0, last))
                starts.append(None)
                continue
            clone = run.lineage.checkpoint_row(segment.source_checkpoint) if segment.source_checkpoint else None
            if clone is not None:
                row = clone[0].rows[clone[1]]
                starts.append((float(row[x]), float(row[y])))
            elif initial_point is not None and segment.source_checkpoint is None:
                starts.append((float(initial_point[0]), float(initial_point[1])))
            else:
                starts.append(None)
            pieces.append((first, last))
        if not trial.rows:
            pieces, starts = ([(0, 0)], [None]) if initial_point is not None else ([], [])
        if decisions:
            labelled = [i for i, it in enumerate(iterations) if it in decisions or (it == 0 and offset)]
        elif label_every:
            labelled = [i for i, it in enumerate(iterations) if it % label_every == 0]
        else:
            labelled = [0] if offset else []
        trajectories.append(Trajectory(trial.trial_id, tuple(iterations), tuple(xs), tuple(ys), tuple(pieces),
                                       tuple(starts), tuple(labelled)))
    arrows = []
    for jump in all_jumps:
        if jump.before_row is None or jump.clone is None:
            continue
        target = run.trial(jump.trial_id)
        before = target.rows[jump.before_row]
        clone_row = run.trial(jump.clone[0]).rows[jump.clone[1]]
        arrows.append(Arrow(
            jump.seq, jump.kind, jump.trial_id, jump.donor, jump.decision_iteration, jump.clone_iteration,
            (float(before[x]), float(before[y])), (float(clone_row[x]), float(clone_row[y])),
            None if jump.after_row is None else jump.after_row + offset))
    return ParameterHistory(x, y, tuple(trajectories), tuple(arrows))


def marker_sizes(iterations: Sequence[int]) -> np.ndarray:
    """Marker area per point, shrinking with iteration: ``100 / (iteration + 1) ** (1/3)``.

    (The tutorial wrote ``100 / ((iters + 1) ** 1 / 3)``, which is ``300 / (iters + 1)``.)

        >>> [round(float(s), 1) for s in marker_sizes([0, 7, 100])]
        [100.0, 50.0, 21.5]
    """
    return 100.0 / (np.asarray(iterations, dtype=float) + 1.0) ** (1.0 / 3.0)


class ParameterArtists:
    """Everything drawn for a parameter history, built once; ``show(n)`` reveals the first ``n`` points.

    Used by ``plot_parameter_history`` (one call) and ``make_animation`` (one call per frame).
    """

    def __init__(self, ax: Any, history: ParameterHistory, colors: Sequence[Any], labels: Sequence[str],
                 objective: Callable[[np.ndarray], np.ndarray] | None, title: str | None = PARAMETER_TITLE,
                 legend: bool = True, label_fontsize: float = 7.0) -> None:
        self.ax = ax
        self.history = history
        xs = np.concatenate([np.asarray(t.xs) for t in history.trajectories] + [np.zeros(0)])
        ys = np.concatenate([np.asarray(t.ys) for t in history.trajectories] + [np.zeros(0)])
        low = min(-0.2, float(xs.min(initial=0.0)), float(ys.min(initial=0.0)))
        high = max(1.0, float(xs.max(initial=0.0)), float(ys.max(initial=0.0)))
        pad = 0.02 * (high - low)
        self.contour = None
        if objective is not None:
            grid = np.linspace(low - pad, high + pad, 60)
            xx, yy = np.meshgrid(grid, grid)
            zz = objective(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(xx.shape)
            self.contour = ax.contourf(xx, yy, zz, 20)
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
        ax.set_xlabel(history.x)
        ax.set_ylabel(history.y)
        if title:
            ax.set_title(title)
        self.scatters: list[Any] = []
        self.lines: list[list[tuple[Any, np.ndarray, np.ndarray, int, int]]] = []
        self.annotations: list[list[tuple[Any, int]]] = []
        self.arrows: list[tuple[Any, int | None]] = []
        spacing = 0.03 * (high - low)
        placed: list[tuple[float, float]] = []
        for trajectory, color, label in zip(history.trajectories, colors, labels):
            points = np.column_stack([trajectory.xs, trajectory.ys]) if trajectory.xs else np.zeros((0, 2))
            scatter = ax.scatter(points[:, 0], points[:, 1], s=marker_sizes(trajectory.iterations), c=[color],
                                 alpha=0.5, label=label, zorder=3, edgecolors="none")
            scatter.full_offsets = points  # type: ignore[attr-defined]
            scatter.full_sizes = marker_sizes(trajectory.iterations)  # type: ignore[attr-defined]
            self.scatters.append(scatter)
            trial_lines = []
            for (first, last), start in zip(trajectory.pieces, trajectory.piece_starts):
                px = list(trajectory.xs[first:last + 1])
                py = list(trajectory.ys[first:last + 1])
                lead = 0
                if start is not None:
                    px.insert(0, start[0])
                    py.insert(0, start[1])
                    lead = 1
                (line,) = ax.plot(px, py, color=color, alpha=0.35, linewidth=0.9, zorder=2)
                trial_lines.append((line, np.asarray(px), np.asarray(py), first, lead))
            self.lines.append(trial_lines)
            notes = []
            for index in trajectory.labelled:
                point = (trajectory.xs[index], trajectory.ys[index])
                if any(abs(point[0] - px) < spacing and abs(point[1] - py) < spacing for px, py in placed):
                    continue  # too close to a label already placed: the plot stays readable near the optimum
                placed.append(point)
                note = ax.annotate(str(trajectory.iterations[index]), (trajectory.xs[index], trajectory.ys[index]),
                                   fontsize=label_fontsize, color=color, zorder=5, xytext=(3, 3),
                                   textcoords="offset points", annotation_clip=False)
                notes.append((note, index))
            self.annotations.append(notes)
        color_of = {t.trial_id: c for t, c in zip(history.trajectories, colors)}
        for arrow in history.arrows:
            if np.allclose(arrow.start, arrow.end):
                continue
            patch = ax.annotate(
                "", xy=arrow.end, xytext=arrow.start, zorder=4, annotation_clip=False,
                arrowprops={"arrowstyle": "-|>", "color": color_of.get(arrow.trial_id, "k"), "lw": 1.3, "alpha": 0.8,
                            "linestyle": "--" if arrow.kind == "exploit" else ":", "shrinkA": 0, "shrinkB": 0,
                            "mutation_scale": 10})
            self.arrows.append((patch, arrow.point_index))
        self.legend = self._legend(ax, len(history.trajectories)) if legend and history.trajectories else None

    #: How far under the axes the legend's top sits (below the tick labels and the x label).
    LEGEND_GAP_INCHES = 0.48

    def _legend(self, ax: Any, num_trials: int) -> Any:
        """One row (up to 4 trials a row) under the axes: it can never cover a point, so no search for a
        free spot (matplotlib's ``loc="best"`` tests every candidate against every point, the slowest step)."""
        legend = ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0),
                           bbox_transform=_mpl.below_axes(ax, self.LEGEND_GAP_INCHES), ncol=min(num_trials, 4),
                           title="Trial Initial Parameters", fontsize=8, title_fontsize=8, frameon=False)
        for handle in getattr(legend, "legend_handles", getattr(legend, "legendHandles", [])):
            handle.set_sizes([40])
        return legend

    def dynamic_artists(self) -> list[Any]:
        """The artists ``show`` changes (drawn on top of a cached background when animating)."""
        out: list[Any] = []
        for trial_lines in self.lines:
            out.extend(line for line, *_ in trial_lines)
        out.extend(patch for patch, _ in self.arrows)
        out.extend(self.scatters)
        for notes in self.annotations:
            out.extend(note for note, _ in notes)
        return out

    def draw_new(self, count: int) -> None:
        """Draw (with ``ax.draw_artist``) only what appears when going from ``count - 1`` to ``count`` points.

        Frames are cumulative, so an animation draws each frame on top of the previous one.
        """
        index = count - 1
        for trial_lines in self.lines:
            for line, px, py, first, lead in trial_lines:
                before = 0 if index <= first else min(len(px), index - first + lead)
                now = 0 if count <= first else min(len(px), count - first + lead)
                if now > before and now >= 2:
                    start = max(0, before - 1)
                    line.set_data(px[start:now], py[start:now])
                    line.set_visible(True)
                    self.ax.draw_artist(line)
        for patch, point_index in self.arrows:
            if point_index == index:
                patch.set_visible(True)
                self.ax.draw_artist(patch)
        for scatter in self.scatters:
            if index < len(scatter.full_offsets):
                scatter.set_offsets(scatter.full_offsets[index:index + 1])
                scatter.set_sizes(scatter.full_sizes[index:index + 1])
                self.ax.draw_artist(scatter)
        for notes in self.annotations:
            for note, note_index in notes:
                if note_index == index:
                    note.set_visible(True)
                    self.ax.draw_artist(note)

    @property
    def num_points(self) -> int:
        return max((len(t.xs) for t in self.history.trajectories), default=0)

    def show(self, count: int | None) -> None:
        """Show each trial's first ``count`` points (None: all), with the labels and jumps among them."""
        for trajectory, scatter, trial_lines, notes in zip(self.history.trajectories, self.scatters, self.lines,
                                                           self.annotations):
            n = len(trajectory.xs) if count is None else min(count, len(trajectory.xs))
            scatter.set_offsets(scatter.full_offsets[:n] if n else np.zeros((0, 2)))
            scatter.set_sizes(scatter.full_sizes[:n])
            for line, px, py, first, lead in trial_lines:
                keep = 0 if n <= first else min(len(px), n - first + lead)
                line.set_data(px[:keep], py[:keep])
            for note, index in notes:
                note.set_visible(index < n)
        for patch, point_index in self.arrows:
            patch.set_visible(count is None or (point_index is not None and point_index < count))

    def shown_iteration(self, count: int) -> int:
        """The latest iteration visible when ``count`` points are shown."""
        return max((t.iterations[min(count, len(t.iterations)) - 1] for t in self.history.trajectories
                    if t.iterations), default=0)


def _check_points(plot_until_iter: Any) -> None:
    if plot_until_iter is not None and (isinstance(plot_until_iter, bool) or not isinstance(plot_until_iter, int)
                                        or plot_until_iter < 0):
        raise ConfigError(f"plot_until_iter must be a number of points >= 0 or None (all), "
                          f"got {describe(plot_until_iter)}")


def parameter_setup(run: RunData, x: str, y: str, initial_point: Sequence[float] | None | str,
                    objective: Any, perturbation_interval: Any) -> tuple[ParameterHistory, Any]:
    """Resolve the toy defaults (start point, contour) and compute the plot data."""
    toy = (x, y) == TOY_PARAMETERS
    start: Sequence[float] | None
    if isinstance(initial_point, str):
        if initial_point != "auto":
            raise ConfigError(f"initial_point must be (x, y), None or 'auto', got {initial_point!r}")
        start = toy_initial_point() if toy else None
    else:
        start = initial_point
    if isinstance(objective, str) and objective == "auto":
        objective = toy_objective() if toy else None
    if objective is not None and not callable(objective):
        raise ConfigError(f"objective must be a function of a (B, 2) array, None or 'auto', got {describe(objective)}")
    if perturbation_interval is not None and not isinstance(perturbation_interval, bool) \
            and isinstance(perturbation_interval, float) and perturbation_interval.is_integer():
        perturbation_interval = int(perturbation_interval)
    interval_ok = perturbation_interval is None or (
        not isinstance(perturbation_interval, bool) and isinstance(perturbation_interval, int)
        and perturbation_interval >= 1)
    if not interval_ok:
        raise ConfigError(f"perturbation_interval must be a whole number >= 1 or None, "
                          f"got {describe(perturbation_interval)}")
    history = parameter_history(run, x, y, start, perturbation_interval)
    return history, objective


def plot_parameter_history(results: Any, colors: Sequence[Any] | None = None, labels: Sequence[str] | None = None,
                           perturbation_interval: int | None = None, fig: Any = None, ax: Any = None,
                           plot_until_iter: int | None = None, include_colorbar: bool = True, *,
                           x: str = "theta0", y: str = "theta1", initial_point: Sequence[float] | None | str = "auto",
                           objective: Any = "auto", title: str | None = PARAMETER_TITLE) -> list[Any]:
    """Each trial's (theta0, theta1) path over the contours of the true reward Q, with exploits as arrows.

    The tutorial's signature; ``colors``/``labels`` are in trial order. Arrows run from a trial's
    point before an exploit to the checkpointed point it cloned (dashed; dotted for explore-only
    restarts), taken from the event log. Iteration labels mark the recorded decision iterations
    (every ``perturbation_interval`` only for runs without decisions). Markers shrink with iteration.
    ``plot_until_iter`` shows each trial's first that many points (the initial point counts).
    Returns the scatter artists, one per trial.

        >>> import matplotlib.pyplot as plt                                        # doctest: +SKIP
        >>> fig, ax = plt.subplots()                                               # doctest: +SKIP
        >>> plot_parameter_history(results, ["red", "black"], ["h=[0,1]", "h=[1,0]"], 4, fig, ax)  # doctest: +SKIP
    """
    _check_points(plot_until_iter)
    run = run_data(results)
    history, objective = parameter_setup(run, x, y, initial_point, objective, perturbation_interval)
    colors = trial_colors(run, colors)
    labels = trial_labels(run, labels)
    if ax is None:
        ax = _mpl.pyplot().gca() if fig is None else (fig.axes[0] if fig.axes else fig.add_subplot())
    if fig is None:
        fig = ax.figure
    artists = ParameterArtists(ax, history, colors, labels, objective, title)
    artists.show(plot_until_iter)
    if include_colorbar and artists.contour is not None:
        bar = fig.colorbar(artists.contour, ax=ax)
        bar.set_label("Reward Q(theta)")
    return artists.scatters
