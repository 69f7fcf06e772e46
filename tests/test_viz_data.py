"""Each figure's data function (beside its drawing in pbtlab.viz.<plot>) checked against the event log and the
rows each trial reported; the tutorial's label checks."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from analysis_runs import run_stale_checkpoints
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbtlab.analysis import lineage as al
from pbtlab.analysis.lineage import run_data
from pbtlab.errors import ConfigError
from pbtlab.examples.runs import run_toy_grid, run_toy_pbt
from pbtlab.viz.history import metric_history
from pbtlab.viz.lineage import lineage
from pbtlab.viz.population import population_hyperparameters
from pbtlab.viz.report import final_table
from pbtlab.viz.trajectories import marker_sizes, parameter_history
from pbtlab.viz.tutorial import initial_label, label_mismatches, toy_labels

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("viz_data_runs"))
    return {
        "pbt2": run_toy_pbt(population=2, seed=0, storage_path=storage, name="pbt2"),
        "pbt4": run_toy_pbt(population=4, seed=0, storage_path=storage, name="pbt4"),
        "grid": run_toy_grid(population=2, seed=0, storage_path=storage, name="grid"),
        "stale": run_stale_checkpoints(storage, seed=0),
    }


def _exploit_events(grid):
    return [e for e in grid.events if e["event"] == "exploit"]


def _theta_at_checkpoint(grid, checkpoint: str) -> tuple[float, float, int]:
    """(theta0, theta1, iteration) of the row that wrote ``checkpoint``, read from the owner's dataframe."""
    owner, name = checkpoint.split("/")
    df = grid.trial(owner).metrics_dataframe
    row = df[df["checkpoint_dir_name"] == name]
    assert len(row) == 1
    return float(row["theta0"].iloc[0]), float(row["theta1"].iloc[0]), int(row["training_iteration"].iloc[0])


# -- exploit arrows ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["pbt2", "pbt4", "stale"])
def test_every_exploit_arrow_matches_an_exploit_event(runs, key):
    grid = runs[key]
    history = parameter_history(run_data(grid), initial_point=(0.9, 0.9))
    exploits = _exploit_events(grid)
    assert exploits, "the run should have exploited"
    arrows = {a.seq: a for a in history.arrows if a.kind == "exploit"}
    assert sorted(arrows) == [e["seq"] for e in exploits]
    restores = {}
    for result in grid:
        df = result.metrics_dataframe
        restores[result.trial_id] = list(np.flatnonzero((df["restored_from/reason"] == "exploit").to_numpy()))
    for event in exploits:
        arrow = arrows[event["seq"]]
        assert (arrow.trial_id, arrow.donor) == (event["trial_id"], event["donor"])
        assert (arrow.decision_iteration, arrow.clone_iteration) == (event["target_iteration"], event["donor_iteration"])
        # the end is the donor's checkpointed point, at the iteration the event names
        x, y, iteration = _theta_at_checkpoint(grid, event["checkpoint"])
        assert arrow.end == (x, y) and iteration == event["donor_iteration"]
        # the start is the target's own last point before its first row restored from that checkpoint
        df = grid.trial(event["trial_id"]).metrics_dataframe
        row = next(i for i in restores[event["trial_id"]]
                   if df["restored_from/checkpoint"].iloc[i] == event["checkpoint"]
                   and int(df["training_iteration"].iloc[i - 1]) == event["target_iteration"])
        assert arrow.start == (float(df["theta0"].iloc[row - 1]), float(df["theta1"].iloc[row - 1]))
        assert arrow.point_index == row + 1  # +1: point 0 is the initial point


def test_stale_checkpoints_clone_the_older_point(runs):
    """With checkpoint_interval 3 and perturbation_interval 4, donors are cloned at iterations 3, 6, ...;
    the arrow ends at that older point, not the donor's point at the decision."""
    grid = runs["stale"]
    exploits = _exploit_events(grid)
    assert any(e["donor_iteration"] < e["target_iteration"] for e in exploits)
    history = parameter_history(run_data(grid), initial_point=(0.9, 0.9))
    for arrow, event in zip([a for a in history.arrows if a.kind == "exploit"], exploits):
        donor = grid.trial(event["donor"]).metrics_dataframe
        at_decision = donor[donor["training_iteration"] == event["target_iteration"]]
        if event["donor_iteration"] < event["target_iteration"] and len(at_decision):
            assert arrow.end != (float(at_decision["theta0"].iloc[-1]), float(at_decision["theta1"].iloc[-1]))


def test_grid_search_has_no_arrows_and_labels_every_interval(runs):
    run = run_data(runs["grid"])
    history = parameter_history(run, initial_point=(0.9, 0.9), label_every=4)
    assert history.arrows == ()
    for trajectory in history.trajectories:
        assert [trajectory.iterations[i] for i in trajectory.labelled] == list(range(0, 101, 4))
        assert trajectory.pieces == ((0, 100),)


def test_labels_are_at_recorded_decision_iterations(runs):
    run = run_data(runs["pbt2"])
    decisions = sorted({e["target_iteration"] for e in _exploit_events(runs["pbt2"])})
    assert al.decision_iterations(run) == decisions
    history = parameter_history(run, initial_point=(0.9, 0.9), label_every=7)  # ignored: decisions exist
    for trajectory in history.trajectories:
        assert sorted({trajectory.iterations[i] for i in trajectory.labelled}) == [0, *decisions]


def test_marker_sizes_shrink_as_a_cube_root():
    assert marker_sizes([0, 7, 26, 100]) == pytest.approx([100.0, 50.0, 100 / 3, 100 / 101 ** (1 / 3)])
    assert np.all(np.diff(marker_sizes(range(101))) < 0)


# -- metric history --------------------------------------------------------------------------------------
def test_metric_history_is_against_training_iteration(runs):
    grid = runs["grid"]
    for line, result in zip(metric_history(run_data(grid), "Q"), grid):
        df = result.metrics_dataframe
        assert line.jumps == ()
        assert line.pieces == ((tuple(df["training_iteration"]), tuple(df["Q"])),)
        assert line.pieces[0][0][0] == 1 and line.pieces[0][0][-1] == 100  # not the row number 0..99


def test_metric_history_pieces_start_at_the_cloned_value(runs):
    grid = runs["pbt2"]
    run = run_data(grid)
    events = {(e["trial_id"], e["donor_iteration"]): e for e in _exploit_events(grid)}
    for line in metric_history(run, "Q"):
        assert len(line.pieces) == 1 + len(line.jumps)
        for piece, ((before_it, _), (clone_it, clone_q)) in zip(line.pieces[1:], line.jumps):
            event = events[(line.trial_id, clone_it)]
            donor = grid.trial(event["donor"]).metrics_dataframe
            assert clone_q == float(donor.loc[donor["training_iteration"] == clone_it, "Q"].iloc[0])
            assert piece[0][0] == clone_it and piece[1][0] == clone_q and before_it == event["target_iteration"]


# -- lineage ---------------------------------------------------------------------------------------------
def test_lineage_plot_data_is_the_runs_segments_edges_and_best_ancestry(runs):
    grid = runs["pbt4"]
    run = run_data(grid)
    tree = lineage(run)
    best = grid.get_best_result("Q", "max")
    assert tree.best_trial == best.trial_id
    assert tree.ancestry == tuple(al.ancestry(run, best.trial_id))
    assert [e.seq for e in tree.edges] == [e["seq"] for e in _exploit_events(grid)]
    assert tree.trial_ids == tuple(r.trial_id for r in grid)
    assert [(s.trial_id, s.first_row) for s in tree.segments] == [
        (r.trial_id, i) for r in grid for i, reason in enumerate(r.metrics_dataframe["restored_from/reason"])
        if i == 0 or isinstance(reason, str)]
    assert tree.ancestry_edges and set(tree.ancestry_edges) <= {e.seq for e in tree.edges}
    # another trial's tree highlights that trial's ancestry
    chosen = lineage(run, 2)
    assert chosen.best_trial == grid[2].trial_id and chosen.ancestry[-1].trial_id == grid[2].trial_id


# -- population hyperparameters -----------------------------------------------------------------------
def test_population_series_follow_each_trials_rows(runs):
    grid = runs["pbt4"]
    series = population_hyperparameters(run_data(grid), ["lr"])
    for trial_series, result in zip(series["lr"], grid):
        df = result.metrics_dataframe
        flat = [v for _, values in trial_series.pieces for v in values]
        assert flat == list(df["config/lr"])
        restarts = df[df["restored_from/reason"] == "exploit"]
        assert [m[0] for m in trial_series.perturbations] == list(restarts["training_iteration"])
        assert [m[2] for m in trial_series.perturbations] == list(restarts["config/lr"])


# -- labels, inputs, errors ------------------------------------------------------------------------------
def test_tutorial_labels_are_reported_as_swapped(runs):
    run = run_data(runs["pbt2"])
    problems = label_mismatches(run, ["h = [1, 0]", "h = [0, 1]"])
    assert len(problems) == 2 and "labels[0]='h = [1, 0]' describes trial 1" in problems[0]
    assert label_mismatches(run, ["h = [0, 1]", "h = [1, 0]"]) == []
    assert label_mismatches(run, ["first", "second"]) == []


def test_labels_from_the_starting_config(runs):
    run = run_data(runs["pbt4"])
    assert toy_labels(run) == ["h = [0, 1]", "h = [1, 0]", "h = [0.01, 0.99]", "h = [0.99, 0.01]"]
    first = run.trials[0]
    lr = first.initial_config["lr"]
    assert initial_label(run, first) == f"lr={lr:.4g}, h0=0, h1=1"
    assert initial_label(run, first, ["lr"]) == f"lr={lr:.4g}"


def test_final_table_has_each_trials_last_row(runs):
    grid = runs["pbt2"]
    table = final_table(run_data(grid))
    assert table == [{"trial_id": r.trial_id, "status": "TERMINATED", "iterations": 100, "h0": r.config["h0"],
                      "h1": r.config["h1"], "lr": r.config["lr"], "Q": r.metrics["Q"]} for r in grid]


def test_every_plot_shares_one_lineage_computation(runs, monkeypatch):
    run = run_data(runs["pbt4"])
    built = []
    original = al.RunLineage.__init__

    def counting(self, data):
        built.append(data)
        original(self, data)

    monkeypatch.setattr(al.RunLineage, "__init__", counting)
    parameter_history(run, initial_point=(0.9, 0.9))
    metric_history(run, "Q")
    lineage(run)
    population_hyperparameters(run)
    al.hyperparameter_schedule(run)
    assert built == [run]


def test_clear_errors_for_bad_arguments(runs):
    run = run_data(runs["pbt2"])
    with pytest.raises(ConfigError, match=r"x='nope' is not reported by trial\(s\)"):
        parameter_history(run, x="nope")
    with pytest.raises(ConfigError, match=r"metric 'loss' is not reported by this experiment; it reports \["):
        metric_history(run, "loss")
    with pytest.raises(ConfigError, match=r"trial must be one of \['.*'\] \(or its index\), got 'zzz'"):
        lineage(run, "zzz")
    with pytest.raises(ConfigError, match=r"params \['momentum'\] are not hyperparameters of this experiment"):
        population_hyperparameters(run, ["momentum"])
    # the data function names its own argument; the plotting functions name theirs
    with pytest.raises(ConfigError, match=r"^label_every must be a whole number >= 1 or None, got 0 \(int\)$"):
        parameter_history(run, label_every=0)
    with pytest.raises(ConfigError, match=r"^label_every must be a whole number >= 1 or None, got 2.5 \(float\)$"):
        parameter_history(run, label_every=2.5)


# -- invariants over seeds -------------------------------------------------------------------------------
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), population=st.sampled_from([2, 3, 4]))
def test_invariants_hold_for_any_seed(tmp_path_factory, seed, population):
    storage = str(tmp_path_factory.mktemp("viz_inv"))
    grid = run_stale_checkpoints(storage, seed=seed, iterations=16, population=min(population, 4))
    run = run_data(grid)
    exploits = _exploit_events(grid)
    edges = al.lineage_edges(run)
    assert [e.seq for e in edges] == [e["seq"] for e in exploits]
    history = parameter_history(run, initial_point=(0.9, 0.9))
    for arrow, event in zip([a for a in history.arrows if a.kind == "exploit"], exploits):
        x, y, iteration = _theta_at_checkpoint(grid, event["checkpoint"])
        assert arrow.end == (x, y) and iteration == event["donor_iteration"]
    schedule = al.hyperparameter_schedule(run)
    assert schedule.iterations == tuple(range(1, 17))
    assert all(math.isfinite(v) for v in schedule.values["lr"])
    assert os.path.isdir(grid.experiment_path)
