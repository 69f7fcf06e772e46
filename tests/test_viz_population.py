"""Population views at the sizes people use (issue 20): founder shares against a hand count from the event log,
the lineage's arcs and labels inside the figure at 64 trials, the ancestry tree, quantile bands, forms by size."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch

from pbtlab.analysis.lineage import best_trial, run_data
from pbtlab.errors import ConfigError
from pbtlab.examples.runs import run_toy_pbt
from pbtlab.viz import forms
from pbtlab.viz.distributions import hyperparameter_distributions, hyperparameter_heatmap, plot_hyperparameter_distributions
from pbtlab.viz.history import metric_distribution, plot_population_metric
from pbtlab.viz.founders import founder_shares, plot_founder_shares
from pbtlab.viz.lineage import ancestry_tree, lineage, plot_lineage

ITERATIONS = 24


@pytest.fixture(scope="module")
def run64(tmp_path_factory):
    """The tutorial's toy, sync PBT, 64 trials, seeded."""
    grid = run_toy_pbt(population=64, seed=0, iterations=ITERATIONS, storage_path=str(tmp_path_factory.mktemp("p64")),
                       name="p64")
    return run_data(grid.experiment_path)


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
    grid = run_toy_pbt(population=4, seed=0, iterations=40, storage_path=str(tmp_path_factory.mktemp("p4")), name="p4")
    return run_data(grid.experiment_path)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def hand_count(run):
    """Founder counts per iteration, from the event log alone: each exploit gives the target, from the iteration
    after the donor's checkpoint, the founder the donor's weights had at that checkpoint."""
    changes = {t: [(0, t)] for t in run.trial_ids}  # per trial: (first iteration, founder), in order

    def founder_at(trial, iteration):
        return [founder for start, founder in changes[trial] if start <= iteration][-1]

    for event in sorted(run.events, key=lambda e: e["seq"]):
        if event["event"] == "exploit":
            changes[event["trial_id"]].append(
                (event["donor_iteration"] + 1, founder_at(event["donor"], event["donor_iteration"])))
    counts = np.zeros((ITERATIONS, len(run.trial_ids)), dtype=int)
    column = {t: n for n, t in enumerate(run.trial_ids)}
    for trial in run.trial_ids:
        for iteration in range(1, ITERATIONS + 1):
            counts[iteration - 1, column[founder_at(trial, iteration)]] += 1
    return counts


def test_founder_shares_sum_to_one_and_match_a_hand_count_from_the_events(run64):
    shares = founder_shares(run64)
    exploits = run64.events_of("exploit")
    assert len(exploits) > 100 and all(e["donor_iteration"] == e["target_iteration"] for e in exploits)  # sync PBT
    assert shares.iterations == tuple(range(1, ITERATIONS + 1)) and shares.founders == tuple(run64.trial_ids)
    np.testing.assert_allclose(shares.shares.sum(axis=1), 1.0)
    assert (shares.counts.sum(axis=1) == 64).all()
    np.testing.assert_array_equal(shares.counts, hand_count(run64))
    assert (shares.counts[0] == 1).all()  # before the first exploit every trial carries its own weights
    surviving = int((shares.counts[-1] > 0).sum())
    assert 1 <= surviving < 64  # PBT concentrated the population on a few founders
    # the best trial's founder is the first stretch of its ancestry
    best = best_trial(run64).trial_id
    tree = ancestry_tree(run64)
    assert tree.nodes[tree.best_path[0]].trial_id == tree.nodes[tree.best_path[0]].founder
    assert shares.counts[-1, run64.trial_ids.index(tree.nodes[tree.best_path[0]].founder)] > 0
    assert tree.best_trial == best and tree.nodes[tree.best_path[-1]].trial_id == best


def test_the_64_trial_lineage_keeps_its_arcs_and_labels_inside_the_figure(run64):
    ax = plot_lineage(run64)
    figure = ax.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    arcs = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arcs) == len(lineage(run64).edges) == len(run64.events_of("exploit"))
    for arc in arcs:
        box = arc.get_window_extent(renderer)
        assert axes_box.x0 - 0.5 <= box.x0 and box.x1 <= axes_box.x1 + 0.5, (box, axes_box)
        assert axes_box.y0 - 0.5 <= box.y0 and box.y1 <= axes_box.y1 + 0.5, (box, axes_box)
    width, height = figure.get_size_inches() * figure.dpi
    assert height <= 14 * figure.dpi  # not 46 inches tall
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) == 64
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert all(b.x0 >= 0 and b.x1 <= width and b.y0 >= 0 and b.y1 <= height for b in boxes)  # not cut
    ordered = sorted(boxes, key=lambda b: b.y0)
    assert all(lower.y1 <= upper.y0 + 0.5 for lower, upper in zip(ordered, ordered[1:]))  # no two overlap


def test_small_populations_keep_the_tutorials_lineage(run4):
    assert forms.choose_form("lineage", 4) == "lanes"
    ax = plot_lineage(run4)
    # the tutorial's drawing: one annotation arrow per exploit, two-line labels, its figure size
    assert len(ax.texts) == len(run4.events_of("exploit")) and not ax.patches
    assert all("\n" in t.get_text() for t in ax.get_yticklabels())
    assert tuple(ax.figure.get_size_inches()) == (11, 4.0)


def test_the_ancestry_tree_follows_every_final_trial_to_its_founder(run64):
    tree = ancestry_tree(run64)
    assert sorted(tree.leaves) == sorted(run64.trial_ids)
    shares = founder_shares(run64)
    alive = {f for f, count in zip(shares.founders, shares.counts[-1]) if count}
    assert set(tree.founders) == alive
    for node in tree.nodes:
        if node.parent is None:
            assert node.founder == node.trial_id and node.start_iteration == 0
        else:
            parent = tree.nodes[node.parent]
            assert parent.founder == node.founder
            assert parent.start_iteration <= node.start_iteration <= parent.end_iteration
    # every final trial has its own last stretch; going back, the lineages merge (never more than the trials)
    assert dict(tree.lineages)[ITERATIONS] == 64
    counts = [c for _, c in tree.lineages]
    assert counts == sorted(counts) and counts[0] == len(tree.founders)
    ax = plot_lineage(run64, form="tree")
    assert ax.get_ylim() == (63.5, -0.5)


def test_quantile_bands_match_numpy_over_the_population(run64):
    bands = hyperparameter_distributions(run64)
    assert list(bands) == ["lr", "h0", "h1"]
    h0 = bands["h0"]
    values = [run64.trial(t).rows[9]["config"]["h0"] for t in run64.trial_ids]
    assert run64.trial(run64.trial_ids[0]).rows[9]["training_iteration"] == h0.iterations[9] == 10
    np.testing.assert_allclose(h0.values[:, 9], np.quantile(values, h0.levels))
    assert h0.counts[9] == 64 and bands["lr"].log_scale and not h0.log_scale
    heat = hyperparameter_heatmap(run64, "h0")
    assert heat.values.shape == (64, ITERATIONS) and sorted(heat.trial_ids) == sorted(run64.trial_ids)
    assert heat.trial_ids == ancestry_tree(run64).leaves
    metric = metric_distribution(run64, top_k=3)
    finals = sorted((run64.trial(t).final_row["Q"] for t in run64.trial_ids), reverse=True)
    assert [run64.trial(t).final_row["Q"] for t in metric.top] == finals[:3]
    np.testing.assert_allclose(metric.bands.values[2, -1], np.median(finals))


def test_plots_choose_their_form_by_size_and_the_caller_can_override(run64, run4):
    figure = plot_hyperparameter_distributions(run64)  # bands: fills, no per-trial lines
    assert len(figure.axes) == 3 and figure.axes[0].collections and len(figure.axes[0].lines) == 2
    figure = plot_hyperparameter_distributions(run4)  # lines: every trial (the population plot)
    assert len(figure.axes[0].get_legend().get_texts()) >= 4
    figure = plot_hyperparameter_distributions(run64, form="heatmap")
    assert figure.axes[0].images
    ax = plot_population_metric(run64, top_k=2)
    assert [t.get_text() for t in ax.get_legend().get_texts()][-2].startswith("best ")
    from pbtlab.viz.history import plot_metric_history

    ax = plot_metric_history(run64, "Q", ax=plt.figure().add_subplot())
    assert ax.collections and len(ax.get_legend().get_texts()) < 10  # bands, not 64 curves
    ax = plot_metric_history(run64, "Q", form="lines", ax=plt.figure().add_subplot())
    assert len([line for line in ax.lines if line.get_label() and not line.get_label().startswith("_")]) == 64
    ax = plot_founder_shares(run64, max_founders=5)
    assert len(ax.get_legend().get_texts()) == 6  # five founders and "others"
    with pytest.raises(ConfigError, match="form must be 'auto' or one of"):
        plot_lineage(run64, form="circles")
    with pytest.raises(ConfigError, match="max_founders"):
        plot_founder_shares(run64, max_founders=0)
    with pytest.raises(ConfigError, match="quantiles"):
        hyperparameter_distributions(run64, levels=(0.5, 0.1, 0.9))
