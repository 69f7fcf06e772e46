"""GIF animation of parameter trajectories, one frame per reported step, the last one included.

    >>> from pbtlab.viz import make_animation
    >>> make_animation(results, None, None, filename="pbt.gif")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from pbtlab.analysis.lineage import run_data
from pbtlab.errors import ConfigError, describe
from pbtlab.viz import _mpl
from pbtlab.viz._style import trial_colors, trial_labels
from pbtlab.viz.trajectories import ParameterArtists, parameter_setup

__all__ = ["Animation", "make_animation", "TITLE"]


@dataclasses.dataclass(frozen=True, slots=True)
class Animation:
    """A written GIF; shows itself inline in a notebook.

        >>> Animation("pbt.gif", 101, 5).frames
        101
    """

    path: str
    frames: int
    fps: float

    def _repr_html_(self) -> str:
        with open(self.path, "rb") as handle:
            data = base64.b64encode(handle.read()).decode("ascii")
        return f'<img src="data:image/gif;base64,{data}" alt="{os.path.basename(self.path)}"/>'


TITLE = "Parameter Evolution Over Iterations"


def _split_title(ax: Any, renderer: Any, last_iteration: int) -> Any:
    """Title the axes ``TITLE (iteration N)`` in two parts: the words, drawn once with the static background,
    and ``N)``, the only text drawn per frame (text is the costliest thing to draw). The whole title is
    centred as the last frame's, so the words never move; returns the animated ``N)`` text."""
    ax.title.set_text(f"{TITLE} (iteration {last_iteration})")
    whole = ax.title.get_window_extent(renderer)
    counter = ax.text(0, ax.title.get_position()[1], f"{last_iteration})", transform=ax.title.get_transform(),
                      fontproperties=ax.title.get_fontproperties(), color=ax.title.get_color(),
                      ha="left", va=ax.title.get_va(), animated=True)
    counter_width = counter.get_window_extent(renderer).width
    axes_box = ax.get_window_extent(renderer)
    ax.title.set_text(f"{TITLE} (iteration ")
    ax.title.set_horizontalalignment("left")
    ax.title.set_x((whole.x0 - axes_box.x0) / axes_box.width)
    counter.set_x((whole.x1 - counter_width - axes_box.x0) / axes_box.width)
    return counter


def make_animation(results: Any, colors: Sequence[Any] | None = None, labels: Sequence[str] | None = None,
                   perturbation_interval: int | None = None, filename: str | os.PathLike[str] = "pbt.gif",
                   fps: float = 5, *, x: str = "theta0", y: str = "theta1", figsize: tuple[float, float] = (7, 7),
                   dpi: int = 80) -> Animation:
    """Animate ``plot_parameter_history``: frame ``n`` shows each trial's first ``n`` points.

    There is one frame per point, so the last frame shows the final iteration (the tutorial's
    fixed ``range(1, 101)`` dropped it). Exploit arrows appear with the first point after the jump.
    Returns an ``Animation`` (its path; displayed inline in notebooks).

        >>> make_animation(pbt_results, ["red", "black"], ["h = [0, 1]", "h = [1, 0]"], 4, "pbt.gif")  # doctest: +SKIP
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 100:
        raise ConfigError(f"fps must be a number in (0, 100], got {describe(fps)}")
    if not isinstance(filename, (str, os.PathLike)):
        raise ConfigError(f"filename must be a path ending in .gif, got {describe(filename)}")
    if not os.fspath(filename).lower().endswith(".gif"):
        raise ConfigError(f"filename must end in .gif (the animation is written as a GIF), got {os.fspath(filename)!r}")
    image = _mpl.pil_image()
    run = run_data(results)
    history, objective = parameter_setup(run, x, y, "auto", "auto", perturbation_interval)
    colors = trial_colors(run, colors)
    labels = trial_labels(run, labels)
    figure = _mpl.new_figure(figsize=figsize, dpi=dpi)
    ax = figure.add_subplot()
    artists = ParameterArtists(ax, history, colors, labels, objective, title=TITLE)
    figure.tight_layout()
    canvas = figure.canvas
    renderer = canvas.get_renderer()
    counter = _split_title(ax, renderer, artists.shown_iteration(artists.num_points))
    for artist in artists.dynamic_artists():
        artist.set_animated(True)
    canvas.draw()  # everything static (contours, axes, legend, the title's fixed words) once
    counter.set_y(ax.title.get_position()[1])  # where the draw put the title (clear of the top ticks)
    axes_box = ax.get_window_extent(renderer)
    title_box = _mpl.bbox_from_extents(0, axes_box.y1 + 1, figure.bbox.x1, figure.bbox.y1)
    title_background = canvas.copy_from_bbox(title_box)
    frames = []
    for count in range(1, artists.num_points + 1):
        artists.draw_new(count)  # frames are cumulative: draw only what this frame adds
        canvas.restore_region(title_background)
        counter.set_text(f"{artists.shown_iteration(count)})")
        counter.draw(renderer)
        frames.append(image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3].copy()))
    if not frames:
        raise ConfigError("make_animation needs at least one reported point; the results have none")
    palette = frames[-1].quantize(colors=255, method=image.Quantize.FASTOCTREE)  # keeps rare trial colours
    indexed = [frame.quantize(palette=palette, dither=image.Dither.NONE) for frame in frames]
    path = os.fspath(filename)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    indexed[0].save(path, save_all=True, append_images=indexed[1:], duration=round(1000 / fps), loop=0)
    return Animation(path, len(indexed), float(fps))
