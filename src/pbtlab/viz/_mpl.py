"""The one place pbtlab imports matplotlib and Pillow (the ``[viz]`` extra).

    >>> figure_class().__name__
    'Figure'
"""

from __future__ import annotations

from typing import Any

from pbtlab._optional import require

__all__ = [
    "bbox_from_extents", "below_axes", "below_axes_centered_in_figure", "curve3", "figure_class",
    "line_collection", "lines", "matplotlib", "new_figure", "patches", "path_arrow", "percent_formatter",
    "pil_image", "plain_log_ticks", "png_bytes", "pyplot",
]


def matplotlib() -> Any:
    """The ``matplotlib`` module."""
    return require("matplotlib", "viz", "pbtlab's plots")


def pyplot() -> Any:
    """``matplotlib.pyplot``, for functions drawing on the current figure (notebooks, scripts)."""
    matplotlib()
    import matplotlib.pyplot as plt

    return plt


def figure_class() -> Any:
    """``matplotlib.figure.Figure``: figures made without pyplot (no GUI backend, no global state)."""
    matplotlib()
    from matplotlib.figure import Figure

    return Figure


def new_figure(**kwargs: Any) -> Any:
    """A ``Figure`` with an Agg canvas attached, so it can be saved and rasterized anywhere."""
    matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = figure_class()(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Any, dpi: float | None = None) -> bytes:
    """``figure`` as PNG bytes, cropped to its contents as ``savefig(bbox_inches="tight")`` crops, in one draw.

    ``savefig(bbox_inches="tight")`` draws the whole figure twice (once to measure, once to paint); the
    extent is measured here without drawing (nothing in pbtlab's figures moves at draw time: legends have
    fixed places), so only the painting draw is left. Save the bytes to a file and embed them in a
    report: the figure is rendered once for both.

        >>> figure = new_figure(figsize=(2, 1))
        >>> png_bytes(figure)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        True
    """
    import io

    mpl = matplotlib()
    dpi = figure.dpi if dpi is None else dpi
    buffer = io.BytesIO()
    get_renderer = getattr(figure.canvas, "get_renderer", None)
    if get_renderer is None or figure.get_layout_engine() is not None:  # a layout engine needs the measuring draw
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        return buffer.getvalue()
    extent = figure.get_tightbbox(get_renderer()).padded(mpl.rcParams["savefig.pad_inches"])
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches=extent)
    return buffer.getvalue()


def patches() -> Any:
    matplotlib()
    import matplotlib.patches as mpatches

    return mpatches


def lines() -> Any:
    matplotlib()
    import matplotlib.lines as mlines

    return mlines


def bbox_from_extents(x0: float, y0: float, x1: float, y1: float) -> Any:
    matplotlib()
    from matplotlib.transforms import Bbox

    return Bbox.from_extents(x0, y0, x1, y1)


def below_axes(ax: Any, inches: float) -> Any:
    """A transform for ``bbox_to_anchor`` that puts (x, 0) ``inches`` below the axes, whatever their height."""
    matplotlib()
    from matplotlib.transforms import ScaledTranslation

    return ax.transAxes + ScaledTranslation(0, -inches, ax.figure.dpi_scale_trans)


def below_axes_centered_in_figure(ax: Any, inches: float) -> Any:
    """Like ``below_axes``, but x runs across the figure (0.5: its centre), for one legend under a row of axes."""
    matplotlib()
    from matplotlib.transforms import blended_transform_factory

    return blended_transform_factory(ax.figure.transFigure, below_axes(ax, inches))


def pil_image() -> Any:
    """``PIL.Image`` (Pillow), for GIF animations."""
    return require("PIL.Image", "viz", "pbtlab's animations", package="Pillow")


def percent_formatter() -> Any:
    """A tick formatter showing fractions (0.25) as percentages (25%)."""
    matplotlib()
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0)


def line_collection(segments: Any, **kwargs: Any) -> Any:
    """A ``LineCollection``: many line segments drawn as one artist (thousands of lanes or branches)."""
    matplotlib()
    from matplotlib.collections import LineCollection

    return LineCollection(segments, **kwargs)


def path_arrow(vertices: Any, codes: Any, **kwargs: Any) -> Any:
    """A ``FancyArrowPatch`` along a path in data coordinates (its extent is known before drawing)."""
    matplotlib()
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path

    return FancyArrowPatch(path=Path(vertices, codes), **kwargs)


def curve3() -> Any:
    """The path codes of a quadratic Bezier curve: MOVETO, CURVE3, CURVE3."""
    matplotlib()
    from matplotlib.path import Path

    return [Path.MOVETO, Path.CURVE3, Path.CURVE3]


def plain_log_ticks(axis: Any) -> None:
    """Label a log axis with plain numbers (3, 10, 300), without minor labels."""
    matplotlib()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())
