"""The PBT paper's Figure 2 on the toy problem: PBT, exploit only, explore only and grid search.

Each panel is a real 2-trial run (h = [0, 1] and h = [1, 0], 100 iterations, the tutorial's settings):

- PBT: exploit (copy a better trial's weights and hyperparameters) and explore (perturb them);
- exploit only: copy without perturbing (``PopulationBasedTraining(explore=False)``);
- explore only: perturb one's own hyperparameters, keep one's own weights (``exploit=False``);
- grid search: the same two trials with fixed hyperparameters (no scheduler).

    >>> runs = run_figure2(storage_path=getfixture("tmp_path"), seed=0)
    >>> sorted(runs)
    ['exploit_only', 'explore_only', 'grid', 'pbt']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pbtlab.analysis.lineage import RunData, run_data
from pbtlab.errors import ConfigError, describe
from pbtlab.viz import _mpl
from pbtlab.viz._style import trial_colors, trial_labels
from pbtlab.viz.trajectories import ParameterArtists, parameter_setup
from pbtlab.viz.tutorial import TOY_PARAMETERS, toy_labels

__all__ = ["FIGURE2_COLORS", "final_values", "PANELS", "plot_figure2", "run_figure2", "save_png", "write_png"]

#: Panel keys and titles, left to right.
PANELS: tuple[tuple[str, str], ...] = (
    ("pbt", "PBT"), ("exploit_only", "Exploit only"), ("explore_only", "Explore only"), ("grid", "Grid search"))
#: Trial colours of the tutorial's 2-trial plots (in trial order: h = [0, 1], h = [1, 0]).
FIGURE2_COLORS = ("red", "black")


def run_figure2(storage_path: Any = None, seed: int | None = 0, iterations: int = 100,
                reuse: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the four 2-trial experiments (skipping those given in ``reuse``); returns ResultGrids by panel key."""
    from pbtlab.examples.runs import run_toy_grid, run_toy_pbt, toy_scheduler

    reuse = dict(reuse or {})
    unknown = sorted(set(reuse) - {key for key, _ in PANELS})
    if unknown:
        raise ConfigError(f"reuse keys must be among {[k for k, _ in PANELS]}, got {unknown}")
    common: dict[str, Any] = {"population": 2, "seed": seed, "iterations": iterations, "storage_path": storage_path,
                              "verbose": 0}
    runs: dict[str, Any] = {}
    for key, _title in PANELS:
        if key in reuse:
            runs[key] = reuse[key]
        elif key == "pbt":
            runs[key] = run_toy_pbt(name="figure2_pbt", **common)
        elif key == "exploit_only":
            runs[key] = run_toy_pbt(name="figure2_exploit_only", scheduler=toy_scheduler(explore=False), **common)
        elif key == "explore_only":
            runs[key] = run_toy_pbt(name="figure2_explore_only", scheduler=toy_scheduler(exploit=False), **common)
        else:
            runs[key] = run_toy_grid(name="figure2_grid", **common)
    return runs


def final_values(run: RunData, metric: str = "Q") -> list[float]:
    """Each trial's last reported ``metric``, in trial order."""
    return [float(t.final_row.get(metric, float("nan"))) for t in run.trials]


def plot_figure2(runs: Mapping[str, Any], output: str | os.PathLike[str] | None = None,
                 colors: Sequence[Any] | None = FIGURE2_COLORS, labels: Sequence[str] | None = None,
                 dpi: int = 110) -> Any:
    """Draw the four panels side by side (from ``run_figure2``'s runs or their directories).

    Each panel's title gives every trial's final Q. Writes ``output`` (PNG) when given; returns the figure.

        >>> figure = plot_figure2(run_figure2(seed=0), "figure2.png")  # doctest: +SKIP
    """
    if not isinstance(runs, Mapping):
        raise ConfigError(f"runs must be a dict of panel key -> ResultGrid or path, got {describe(runs)}")
    missing = [key for key, _ in PANELS if key not in runs]
    if missing:
        raise ConfigError(f"runs is missing panel(s) {missing}; it needs {[k for k, _ in PANELS]} "
                          "(run_figure2 makes them)")
    figure = _mpl.new_figure(figsize=(22, 6.2), dpi=dpi)
    axes = figure.subplots(1, 4, sharex=True, sharey=True)
    contour = None
    legend_handles: list[Any] = []
    for ax, (key, title) in zip(axes, PANELS):
        run = run_data(runs[key])
        history, objective = parameter_setup(run, *TOY_PARAMETERS, "auto", "auto", None)
        panel_labels = trial_labels(run, labels) if labels is not None else toy_labels(run)
        artists = ParameterArtists(ax, history, trial_colors(run, colors), panel_labels, objective, title=None,
                                   label_fontsize=6, legend=False)
        legend_handles = legend_handles or artists.scatters
        artists.show(None)
        contour = artists.contour or contour
        finals = ", ".join(f"{q:.4f}" for q in final_values(run))
        ax.set_title(f"{title}\nfinal Q per trial: {finals}", fontsize=11)
        if key != "pbt":
            ax.set_ylabel("")
    if legend_handles:  # one legend for the four panels (the same two trials), under them: it covers no point
        legend = figure.legend(handles=legend_handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                               bbox_transform=_mpl.below_axes_centered_in_figure(axes[0], 0.48),
                               ncol=len(legend_handles), title="Trial Initial Parameters", fontsize=8,
                               title_fontsize=8, frameon=False)
        for handle in getattr(legend, "legend_handles", getattr(legend, "legendHandles", [])):
            handle.set_sizes([40])
    if contour is not None:
        bar = figure.colorbar(contour, ax=list(axes), fraction=0.015, pad=0.01)
        bar.set_label("Reward Q(theta)")
    figure.suptitle("PBT paper, Figure 2 on the toy problem: 2 trials, 100 iterations each "
                    "(arrows: exploits from the event log; dotted: explore-only restarts)", fontsize=12)
    if output is not None:
        save_png(figure, output)
    return figure


def save_png(figure: Any, output: str | os.PathLike[str]) -> str:
    """Write ``figure`` as a PNG (creating the folder); returns the path."""
    if not isinstance(output, (str, os.PathLike)):
        raise ConfigError(f"output must be a file path ending in .png, got {describe(output)}")
    path = os.fspath(output)
    if not path.lower().endswith(".png"):
        raise ConfigError(f"output must end in .png, got {path!r}")
    return write_png(_mpl.png_bytes(figure), path)


def write_png(data: bytes, output: str | os.PathLike[str]) -> str:
    """Write PNG bytes (from ``_mpl.png_bytes``) to ``output``, creating the folder; returns the path."""
    path = os.fspath(output)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return path
