"""Plot data (pbtlab.viz.data) checked against the event log and the rows each trial reported."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbtlab import RunConfig, TuneConfig, Tuner
from pbtlab.analysis import load_results
from pbtlab.errors import ConfigError
from pbtlab.examples.runs import run_toy_grid, run_toy_pbt, toy_scheduler
from pbtlab.examples.toy import train_func
from pbtlab.viz import data as vd
from pbtlab.viz.trajectories import marker_sizes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("viz_data_runs"))
    return {
        "pbt2": run_toy_pbt(population=2, seed=0, storage_path=storage, name="pbt2"),
        "pbt4": run_toy_pbt(population=4, seed=0, storage_path=storage, name="pbt4"),
        "grid": run_toy_grid(population=2, seed=0, storage_path=storage, name="grid"),
        "explore_only": run_toy_pbt(population=2, seed=0, storage_path=storage, name="explore_only",
                                    scheduler=toy_scheduler(exploit=False)),
        "stale": _run_stale_checkpoints(storage, seed=0),
    }


def _run_stale_checkpoints(storage: str, seed: int, iterations: int = 24, population: int = 4):
    """Checkpoints every 3 iterations, decisions every 4: donors are cloned from older checkpoints."""
    from pbtlab import tune

    tuner = Tuner(train_func,
                  param_space={"lr": tune.qloguniform(5e-3, 1e-1, 5e-4),
                               "h0": tune.grid_search([0.0, 1.0, 0.01, 0.99][:population]),
                               "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
                               "checkpoint_interval": 3},
                  tune_config=TuneConfig(metric="Q", mode="max", seed=seed, scheduler=toy_scheduler(4)),
                  run_config=RunConfig(storage_path=storage, stop={"training_iteration": iterations}, verbose=0,
                                       name=f"stale_{seed}_{iterations}_{population}"))
    return tuner.fit()


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
    history = vd.parameter_history(vd.run_data(grid), initial_point=(0.9, 0.9))
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
    history = vd.parameter_history(vd.run_data(grid), initial_point=(0.9, 0.9))
    for arrow, event in zip([a for a in history.arrows if a.kind == "exploit"], exploits):
        donor = grid.trial(event["donor"]).metrics_dataframe
        at_decision = donor[donor["training_iteration"] == event["target_iteration"]]
        if event["donor_iteration"] < event["target_iteration"] and len(at_decision):
            assert arrow.end != (float(at_decision["theta0"].iloc[-1]), float(at_decision["theta1"].iloc[-1]))


def test_grid_search_has_no_arrows_and_labels_every_interval(runs):
    run = vd.run_data(runs["grid"])
    history = vd.parameter_history(run, initial_point=(0.9, 0.9), label_every=4)
    assert history.arrows == ()
    for trajectory in history.trajectories:
        assert [trajectory.iterations[i] for i in trajectory.labelled] == list(range(0, 101, 4))
        assert trajectory.pieces == ((0, 100),)


def test_labels_are_at_recorded_decision_iterations(runs):
    run = vd.run_data(runs["pbt2"])
    decisions = sorted({e["target_iteration"] for e in _exploit_events(runs["pbt2"])})
    assert vd.decision_iterations(run) == decisions
    history = vd.parameter_history(run, initial_point=(0.9, 0.9), label_every=7)  # ignored: decisions exist
    for trajectory in history.trajectories:
        assert sorted({trajectory.iterations[i] for i in trajectory.labelled}) == [0, *decisions]


def test_explore_only_restarts_are_marked_as_explore_without_donor(runs):
    grid = runs["explore_only"]
    run = vd.run_data(grid)
    assert not _exploit_events(grid)
    explores = [e for e in grid.events if e["event"] == "explore"]
    jumps = vd.jumps(run)
    assert [j.seq for j in jumps] == [e["seq"] for e in explores]
    for jump, event in zip(jumps, explores):
        assert (jump.kind, jump.donor, jump.trial_id) == ("explore", None, event["trial_id"])
        assert jump.clone == (event["trial_id"], jump.before_row)  # its own latest checkpoint
        assert jump.new_config == event["new_config"]
    assert vd.lineage_edges(run) == []


def test_marker_sizes_shrink_as_a_cube_root():
    assert marker_sizes([0, 7, 26, 100]) == pytest.approx([100.0, 50.0, 100 / 3, 100 / 101 ** (1 / 3)])
    assert np.all(np.diff(marker_sizes(range(101))) < 0)


# -- metric history --------------------------------------------------------------------------------------
def test_metric_history_is_against_training_iteration(runs):
    grid = runs["grid"]
    for line, result in zip(vd.metric_history(vd.run_data(grid), "Q"), grid):
        df = result.metrics_dataframe
        assert line.jumps == ()
        assert line.pieces == ((tuple(df["training_iteration"]), tuple(df["Q"])),)
        assert line.pieces[0][0][0] == 1 and line.pieces[0][0][-1] == 100  # not the row number 0..99


def test_metric_history_pieces_start_at_the_cloned_value(runs):
    grid = runs["pbt2"]
    run = vd.run_data(grid)
    events = {(e["trial_id"], e["donor_iteration"]): e for e in _exploit_events(grid)}
    for line in vd.metric_history(run, "Q"):
        assert len(line.pieces) == 1 + len(line.jumps)
        for piece, ((before_it, _), (clone_it, clone_q)) in zip(line.pieces[1:], line.jumps):
            event = events[(line.trial_id, clone_it)]
            donor = grid.trial(event["donor"]).metrics_dataframe
            assert clone_q == float(donor.loc[donor["training_iteration"] == clone_it, "Q"].iloc[0])
            assert piece[0][0] == clone_it and piece[1][0] == clone_q and before_it == event["target_iteration"]


# -- lineage ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["pbt2", "pbt4", "stale"])
def test_lineage_edges_equal_the_exploit_events(runs, key):
    grid = runs[key]
    edges = vd.lineage_edges(vd.run_data(grid))
    assert [(e.seq, e.donor, e.target, e.donor_iteration, e.target_iteration, e.checkpoint) for e in edges] == [
        (e["seq"], e["donor"], e["trial_id"], e["donor_iteration"], e["target_iteration"], e["checkpoint"])
        for e in _exploit_events(grid)]


def test_lineage_ancestry_follows_the_loaded_checkpoints(runs):
    grid = runs["pbt4"]
    run = vd.run_data(grid)
    tree = vd.lineage(run)
    best = grid.get_best_result("Q", "max")
    assert tree.best_trial == best.trial_id
    spans = tree.ancestry
    assert spans[0].start_iteration == 0 and spans[0].entered_by is None
    assert spans[-1].trial_id == best.trial_id and spans[-1].end_iteration == 100
    by_seq = {e["seq"]: e for e in _exploit_events(grid)}
    for previous, span in itertools.pairwise(spans):
        event = by_seq[span.entered_by]
        assert event["trial_id"] == span.trial_id and event["donor"] == previous.trial_id
        assert previous.end_iteration == event["donor_iteration"] == span.start_iteration
    assert set(tree.ancestry_edges) <= {e.seq for e in tree.edges}


# -- schedules -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["pbt2", "pbt4"])
def test_best_trial_schedule_equals_the_configs_it_ran_with(runs, key):
    grid = runs[key]
    run = vd.run_data(grid)
    schedule = vd.hyperparameter_schedule(run)
    assert schedule.trial_id == grid.get_best_result("Q", "max").trial_id
    assert schedule.iterations == tuple(range(1, 101))
    for position, (iteration, owner) in enumerate(zip(schedule.iterations, schedule.owners)):
        df = grid.trial(owner).metrics_dataframe
        row = df[df["training_iteration"] == iteration]
        assert len(row) == 1
        for param in ("lr", "h0", "h1"):
            assert schedule.values[param][position] == row[f"config/{param}"].iloc[0]
    # the last stretch is the best trial's own rows since its last restart
    own = grid.trial(schedule.trial_id).metrics_dataframe
    last_start = schedule.span_starts[-1]
    tail = own[own["training_iteration"] >= schedule.iterations[last_start]]
    assert list(tail["config/lr"]) == list(schedule.values["lr"][last_start:])
    # each switch is an exploit whose explored config the new stretch ran with
    explores = {e["seq"] - 1: e for e in grid.events if e["event"] == "explore"}  # explore follows its exploit
    for iteration, seq in schedule.switches:
        config = explores[seq]["new_config"]
        position = schedule.iterations.index(iteration)
        assert {p: schedule.values[p][position] for p in ("lr", "h0", "h1")} == {p: config[p] for p in ("lr", "h0", "h1")}


def test_population_series_follow_each_trials_rows(runs):
    grid = runs["pbt4"]
    series = vd.population_hyperparameters(vd.run_data(grid), ["lr"])
    for trial_series, result in zip(series["lr"], grid):
        df = result.metrics_dataframe
        flat = [v for _, values in trial_series.pieces for v in values]
        assert flat == list(df["config/lr"])
        restarts = df[df["restored_from/reason"] == "exploit"]
        assert [m[0] for m in trial_series.perturbations] == list(restarts["training_iteration"])
        assert [m[2] for m in trial_series.perturbations] == list(restarts["config/lr"])


# -- labels, inputs, errors ------------------------------------------------------------------------------
def test_tutorial_labels_are_reported_as_swapped(runs):
    run = vd.run_data(runs["pbt2"])
    problems = vd.label_mismatches(run, ["h = [1, 0]", "h = [0, 1]"])
    assert len(problems) == 2 and "labels[0]='h = [1, 0]' describes trial 1" in problems[0]
    assert vd.label_mismatches(run, ["h = [0, 1]", "h = [1, 0]"]) == []
    assert vd.label_mismatches(run, ["first", "second"]) == []


def test_run_data_accepts_a_grid_or_a_path(runs):
    grid = runs["pbt2"]
    from_path = vd.run_data(grid.experiment_path)
    live = vd.run_data(grid)
    assert from_path.trial_ids == live.trial_ids and from_path.events == live.events
    assert vd.run_data(live) is live
    assert vd.run_data(load_results(grid.experiment_path)).trials == from_path.trials


@pytest.mark.parametrize("bad, message", [
    (42, "results must be a ResultGrid or an experiment directory path, got 42 (int)"),
    ([1, 2], "results must be a ResultGrid or an experiment directory path, got [1, 2] (list)"),
])
def test_run_data_rejects_other_inputs(bad, message):
    with pytest.raises(ConfigError) as error:
        vd.run_data(bad)
    assert str(error.value) == message


def test_clear_errors_for_bad_arguments(runs):
    run = vd.run_data(runs["pbt2"])
    with pytest.raises(ConfigError, match=r"x='nope' is not reported by trial\(s\)"):
        vd.parameter_history(run, x="nope")
    with pytest.raises(ConfigError, match=r"metric 'loss' is not reported by this experiment; it reports \["):
        vd.metric_history(run, "loss")
    with pytest.raises(ConfigError, match=r"trial index must be in \[0, 1\], got 5"):
        vd.hyperparameter_schedule(run, 5)
    with pytest.raises(ConfigError, match=r"trial must be one of \['.*'\] \(or its index\), got 'zzz'"):
        vd.ancestry(run, "zzz")
    with pytest.raises(ConfigError, match=r"params \['momentum'\] are not hyperparameters of this experiment"):
        vd.population_hyperparameters(run, ["momentum"])
    with pytest.raises(ConfigError, match=r"perturbation_interval must be a whole number >= 1 or None, got 0"):
        vd.parameter_history(run, label_every=0)


def test_missing_experiment_directory_is_a_clear_error(tmp_path):
    from pbtlab.errors import ExperimentError

    with pytest.raises(ExperimentError, match="no experiment directory"):
        vd.run_data(str(tmp_path / "nothing"))


# -- invariants over seeds -------------------------------------------------------------------------------
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), population=st.sampled_from([2, 3, 4]))
def test_invariants_hold_for_any_seed(tmp_path_factory, seed, population):
    storage = str(tmp_path_factory.mktemp("viz_inv"))
    grid = _run_stale_checkpoints(storage, seed=seed, iterations=16, population=min(population, 4))
    run = vd.run_data(grid)
    exploits = _exploit_events(grid)
    edges = vd.lineage_edges(run)
    assert [e.seq for e in edges] == [e["seq"] for e in exploits]
    history = vd.parameter_history(run, initial_point=(0.9, 0.9))
    for arrow, event in zip([a for a in history.arrows if a.kind == "exploit"], exploits):
        x, y, iteration = _theta_at_checkpoint(grid, event["checkpoint"])
        assert arrow.end == (x, y) and iteration == event["donor_iteration"]
    schedule = vd.hyperparameter_schedule(run)
    assert schedule.iterations == tuple(range(1, 17))
    assert all(math.isfinite(v) for v in schedule.values["lr"])
    assert os.path.isdir(grid.experiment_path)
