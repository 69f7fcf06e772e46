"""Drawing: the tutorial's plotting cells run unchanged, figures show what the event log recorded, files are written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from pbtlab.analysis.lineage import hyperparameter_schedule, run_data, trial_segments
from pbtlab.errors import ConfigError
from pbtlab.examples.runs import run_toy_pbt
from pbtlab.viz._style import ANCESTRY_COLOR
from pbtlab.viz.lineage import lineage
from pbtlab.viz.trajectories import marker_sizes

SWAPPED_IMPORT = "from pbtlab.viz import plot_parameter_history, plot_Q_history, make_animation"

# The tutorial's plotting and animation cells, verbatim.
TUTORIAL_PLOT_CELL = '''
fig, axs = plt.subplots(1, 2, figsize=(13, 6), gridspec_kw=dict(width_ratios=[1.5, 1]))

colors = ["red", "black"]
labels = ["h = [1, 0]", "h = [0, 1]"]

plot_parameter_history(
    pbt_results,
    colors,
    labels,
    perturbation_interval=perturbation_interval,
    fig=fig,
    ax=axs[0],
)
plot_Q_history(pbt_results, colors, labels, ax=axs[1])
'''
TUTORIAL_ANIMATION_CELL = '''
make_animation(
    pbt_results,
    colors,
    labels,
    perturbation_interval=perturbation_interval,
    filename="pbt.gif",
)
'''
TUTORIAL_GRID_PLOT_CELL = TUTORIAL_PLOT_CELL.replace("pbt_results", "grid_results")
TUTORIAL_PBT4_PLOT_CELL = '''
fig, axs = plt.subplots(1, 2, figsize=(13, 6), gridspec_kw=dict(width_ratios=[1.5, 1]))

colors = ["red", "black", "blue", "green"]
labels = ["h = [1, 0]", "h = [0, 1]", "h = [0.01, 0.99]", "h = [0.99, 0.01]"]

plot_parameter_history(
    pbt_4_results,
    colors,
    labels,
    perturbation_interval=perturbation_interval,
    fig=fig,
    ax=axs[0],
)
plot_Q_history(pbt_4_results, colors, labels, ax=axs[1])
'''
TUTORIAL_PBT4_ANIMATION_CELL = '''
make_animation(
    pbt_4_results,
    colors,
    labels,
    perturbation_interval=perturbation_interval,
    filename="pbt4.gif",
)
'''


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """The tutorial's three experiments, run by its own code (tests/tutorial_code.py), seeded."""
    from tutorial_code import run_grid, run_pbt_2, run_pbt_4

    storage = str(tmp_path_factory.mktemp("tutorial_runs"))
    pbt_results, _ = run_pbt_2(seed=0, storage_path=storage, verbose=0)
    grid_results = run_grid(seed=0, storage_path=storage, verbose=0)
    pbt_4_results, _ = run_pbt_4(seed=0, storage_path=storage, verbose=0)
    return {"pbt_results": pbt_results, "grid_results": grid_results, "pbt_4_results": pbt_4_results}


def _run_cells(namespace: dict, *cells: str) -> dict:
    exec(SWAPPED_IMPORT, namespace)  # noqa: S102 - running the tutorial's cells is the point
    for cell in cells:
        exec(textwrap.dedent(cell), namespace)  # noqa: S102
    return namespace


def _drawn_arrows(ax) -> set[tuple[tuple[float, float], tuple[float, float]]]:
    return {(tuple(map(float, a.xyann)), tuple(map(float, a.xy))) for a in ax.texts
            if getattr(a, "arrow_patch", None) is not None}


def _event_arrows(grid) -> set[tuple[tuple[float, float], tuple[float, float]]]:
    """(start, end) of each exploit, from the event log and the dataframes only."""
    arrows = set()
    for event in (e for e in grid.events if e["event"] == "exploit"):
        target = grid.trial(event["trial_id"]).metrics_dataframe
        restored = target[(target["restored_from/checkpoint"] == event["checkpoint"])].index
        before = next(i - 1 for i in restored if target["training_iteration"][i - 1] == event["target_iteration"])
        owner, name = event["checkpoint"].split("/")
        donor = grid.trial(owner).metrics_dataframe
        clone = donor[donor["checkpoint_dir_name"] == name].iloc[0]
        start = (float(target["theta0"][before]), float(target["theta1"][before]))
        end = (float(clone["theta0"]), float(clone["theta1"]))
        if start != end:
            arrows.add((start, end))
    return arrows


def test_tutorial_cells_run_unchanged_and_draw_the_recorded_exploits(tutorial):
    namespace = {"plt": plt, "np": np, "perturbation_interval": 4, **tutorial}
    with pytest.warns(UserWarning, match=r"labels\[[01]\]=.h = \[[01], [01]\]. describes trial [01]"):
        _run_cells(namespace, TUTORIAL_PLOT_CELL, TUTORIAL_ANIMATION_CELL)
    axs = namespace["axs"]
    pbt = tutorial["pbt_results"]
    assert _drawn_arrows(axs[0]) == _event_arrows(pbt)
    assert len(_event_arrows(pbt)) == 24  # one exploit per barrier at iterations 4, 8, ..., 96
    # the metric is plotted against training_iteration, each trial from iteration 1 to 100
    q_lines = [line for line in axs[1].get_lines() if line.get_linestyle() == "-"]
    assert min(min(line.get_xdata()) for line in q_lines) == 1
    assert max(max(line.get_xdata()) for line in q_lines) == 100
    assert axs[1].get_title() == "True Reward (Q) Value Over Training Iterations"
    # markers shrink as a cube root of the iteration
    scatters = [c for c in axs[0].collections if c.get_label() in ("h = [1, 0]", "h = [0, 1]")]
    assert len(scatters) == 2
    np.testing.assert_allclose(scatters[0].get_sizes(), marker_sizes(range(101)))
    # the animation has one frame per point, the last iteration included
    with Image.open("pbt.gif") as gif:
        assert gif.n_frames == 101
        gif.seek(99)
        before_last = np.asarray(gif.convert("RGB"))
        gif.seek(100)
        last = np.asarray(gif.convert("RGB"))
    assert os.path.getsize("pbt.gif") > 10_000
    assert (before_last != last).any()


def test_tutorial_grid_and_pbt4_cells_run_unchanged(tutorial):
    namespace = {"plt": plt, "np": np, "perturbation_interval": 4, **tutorial}
    with pytest.warns(UserWarning):
        _run_cells(namespace, TUTORIAL_GRID_PLOT_CELL)
    assert _drawn_arrows(namespace["axs"][0]) == set()  # grid search never exploits
    labels = [t.get_text() for t in namespace["axs"][0].texts]
    assert labels[:3] == ["0", "4", "8"]  # no decisions recorded: labelled every perturbation_interval
    with pytest.warns(UserWarning):
        _run_cells(namespace, TUTORIAL_PBT4_PLOT_CELL, TUTORIAL_PBT4_ANIMATION_CELL)
    assert _drawn_arrows(namespace["axs"][0]) == _event_arrows(tutorial["pbt_4_results"])
    with Image.open("pbt4.gif") as gif:
        assert gif.n_frames == 101


def test_grid_search_stays_at_the_papers_values(tutorial):
    finals = sorted(r.metrics["Q"] for r in tutorial["grid_results"])
    assert finals[0] == pytest.approx(0.39, abs=0.005)
    assert finals[1] == pytest.approx(0.5925, abs=0.005)


@pytest.fixture(scope="module")
def pbt4(tmp_path_factory):
    return run_toy_pbt(population=4, seed=0, storage_path=str(tmp_path_factory.mktemp("pbt4")), name="pbt4")


def test_lineage_plot_draws_one_arrow_per_exploit_and_highlights_the_ancestry(pbt4, tmp_path):
    from pbtlab.viz import plot_lineage

    ax = plot_lineage(pbt4.experiment_path)
    arrows = [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
    exploits = [e for e in pbt4.events if e["event"] == "exploit"]
    assert len(arrows) == len(exploits) == 48
    tree = lineage(run_data(pbt4))
    highlighted = [a for a in arrows if matplotlib.colors.same_color(a.arrow_patch.get_edgecolor(), ANCESTRY_COLOR)]
    assert len(highlighted) == len(tree.ancestry_edges) > 0
    assert {(a.xyann[0], a.xy[0]) for a in arrows} == {(e["donor_iteration"], e["donor_iteration"]) for e in exploits}
    ax.figure.savefig(tmp_path / "lineage.png")
    assert os.path.getsize(tmp_path / "lineage.png") > 5_000


def test_schedule_plot_draws_the_stitched_schedule(pbt4, tmp_path):
    from pbtlab.viz import plot_hyperparameter_schedule

    figure = plot_hyperparameter_schedule(pbt4)
    schedule = hyperparameter_schedule(run_data(pbt4))
    lr_axes = figure.axes[0]
    drawn = [(float(x), float(y)) for line in lr_axes.get_lines() if line.get_linestyle() == "-"
             for x, y in zip(line.get_xdata(), line.get_ydata())]
    expected = set(zip(map(float, schedule.iterations), map(float, schedule.values["lr"])))
    assert expected <= set(drawn)
    switch_lines = [line for line in lr_axes.get_lines() if line.get_linestyle() == "--"]
    assert sorted(line.get_xdata()[0] for line in switch_lines) == [s[0] for s in schedule.switches]
    figure.savefig(tmp_path / "schedule.png")
    assert os.path.getsize(tmp_path / "schedule.png") > 5_000


def test_population_plot_has_a_panel_per_hyperparameter(pbt4, tmp_path):
    from pbtlab.viz import plot_population_hyperparameters

    figure = plot_population_hyperparameters(pbt4, params=["lr", "h1"])
    assert [ax.get_ylabel() for ax in figure.axes] == ["lr", "h1"]
    figure.savefig(tmp_path / "population.png")
    assert os.path.getsize(tmp_path / "population.png") > 5_000


def test_metric_history_accepts_any_reported_metric(pbt4):
    from pbtlab.viz import plot_metric_history

    ax = plot_metric_history(pbt4, "theta0")
    assert ax.get_ylabel() == "theta0"
    assert len([line for line in ax.get_lines() if line.get_linestyle() == "-"]) == sum(
        len(trial_segments(t)) for t in run_data(pbt4).trials)


def test_metric_history_legend_stays_off_the_curves(pbt4):
    """Short labels share one row, long ones (a config per trial) get a row each; both sit entirely under
    the axes, where no curve can be."""
    from pbtlab.viz import plot_metric_history

    short = plot_metric_history(pbt4, "Q", labels=["a", "b", "c", "d"], ax=plt.figure().add_subplot())
    short.figure.canvas.draw()
    legend = short.get_legend()
    assert legend._ncols == 4
    assert legend.get_window_extent().y1 <= short.get_window_extent().y0
    long_labels = [f"lr={i / 10}, h0=0.123456, h1=0.654321, seed={i}" for i in range(4)]
    below = plot_metric_history(pbt4, "Q", labels=long_labels, ax=plt.figure().add_subplot())
    legend = below.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == long_labels
    assert legend._ncols == 1
    assert legend.get_window_extent().y1 <= below.get_window_extent().y0  # entirely under the axes


def test_parameter_history_legend_is_under_the_axes(pbt4):
    """No "best" search: the legend has a fixed place under the axes, so it covers no point."""
    from pbtlab.viz import plot_parameter_history

    ax = plt.figure().add_subplot()
    plot_parameter_history(pbt4, ax=ax)
    ax.figure.canvas.draw()
    legend = ax.get_legend()
    assert legend._loc != 0  # 0 is "best"
    assert len(legend.get_texts()) == 4 and legend._ncols == 4  # one row, one entry per trial
    assert legend.get_window_extent().y1 <= ax.get_window_extent().y0


@pytest.mark.slow
def test_figure2_cli_writes_four_real_panels(tmp_path, capsys):
    from pbtlab.cli import main

    output = tmp_path / "fig2.png"
    assert main(["figure2", "-o", str(output), "--storage", str(tmp_path / "runs")]) == 0
    assert os.path.getsize(output) > 50_000
    printed = capsys.readouterr().out
    finals = {line.split(" final Q")[0].strip(): [float(v) for v in line.split(":")[1].split(",")]
              for line in printed.splitlines() if "final Q per trial" in line}
    assert list(finals) == ["PBT", "Exploit only", "Explore only", "Grid search"]
    assert max(finals["PBT"]) >= 1.19
    assert sorted(finals["Grid search"]) == pytest.approx([0.39, 0.5925], abs=0.005)
    names = sorted(os.listdir(tmp_path / "runs"))
    assert names == ["figure2_exploit_only", "figure2_explore_only", "figure2_grid", "figure2_pbt"]
    exploit_only = run_data(str(tmp_path / "runs" / "figure2_exploit_only"))
    assert all(e["changes"] == [] for e in exploit_only.events_of("explore"))  # copies without perturbing
    explore_only = run_data(str(tmp_path / "runs" / "figure2_explore_only"))
    assert explore_only.events_of("exploit") == [] and explore_only.events_of("explore")


# -- errors and optional dependencies ----------------------------------------------------------------------
def test_bad_arguments_say_what_is_allowed(pbt4):
    from pbtlab.viz import make_animation, plot_parameter_history

    with pytest.raises(ConfigError, match=r"colors must have one colour per trial \(4 trials, in trial order\), "
                                          r"got 2: \['red', 'black'\]"):
        plot_parameter_history(pbt4, ["red", "black"], None)
    with pytest.raises(ConfigError, match=r"labels must be a list with one label per trial"):
        plot_parameter_history(pbt4, None, "h = [0, 1]")
    with pytest.raises(ConfigError, match=r"filename must end in .gif"):
        make_animation(pbt4, None, None, filename="pbt.mp4")
    with pytest.raises(ConfigError, match=r"fps must be a number in \(0, 100\], got 0 \(int\)"):
        make_animation(pbt4, None, None, fps=0)
    with pytest.raises(ConfigError, match=r"plot_until_iter must be a number of points >= 0 or None"):
        plot_parameter_history(pbt4, plot_until_iter=-1)
    interval_error = r"^perturbation_interval must be a whole number >= 1 or None, got "
    with pytest.raises(ConfigError, match=interval_error + r"0 \(int\)$"):
        plot_parameter_history(pbt4, perturbation_interval=0)
    with pytest.raises(ConfigError, match=interval_error + r"'x' \(str\)$"):
        make_animation(pbt4, None, None, perturbation_interval="x", filename="pbt.gif")


def test_plot_until_iter_shows_the_first_points(pbt4):
    from pbtlab.viz import plot_parameter_history

    scatters = plot_parameter_history(pbt4, plot_until_iter=9)
    assert [len(s.get_offsets()) for s in scatters] == [9, 9, 9, 9]


def test_importing_pbtlab_and_the_viz_cli_does_not_import_matplotlib():
    code = ("import sys, pbtlab, pbtlab.viz, pbtlab.viz.cli, pbtlab.analysis.lineage, pbtlab.analysis.events, "
            "pbtlab.viz.tutorial, pbtlab.cli; pbtlab.cli.build_parser(); "
            "print([m for m in ('matplotlib', 'PIL', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_matplotlib_says_what_to_install(monkeypatch):
    from pbtlab.viz import _mpl

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'pbtlab\[viz\]'"):
        _mpl.matplotlib()
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)  # imported already by an earlier PNG save
    with pytest.raises(ImportError, match=r"Pillow.*pip install 'pbtlab\[viz\]'"):
        _mpl.pil_image()
