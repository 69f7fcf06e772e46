"""pbtlab.analysis.lineage: perturbations, exploit edges, ancestry and schedules, checked against the event log
and the rows each trial reported (read back through pandas, a path independent of the code under test)."""

from __future__ import annotations

import itertools

import pytest
from analysis_runs import run_stale_checkpoints

from pbtlab.analysis import lineage as al
from pbtlab.analysis import load_results
from pbtlab.errors import ConfigError, ExperimentError
from pbtlab.examples.runs import run_toy_pbt, toy_scheduler


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("lineage_runs"))
    return {
        "pbt2": run_toy_pbt(population=2, seed=0, storage_path=storage, name="pbt2"),
        "pbt4": run_toy_pbt(population=4, seed=0, storage_path=storage, name="pbt4"),
        "explore_only": run_toy_pbt(population=2, seed=0, storage_path=storage, name="explore_only",
                                    scheduler=toy_scheduler(exploit=False)),
        "stale": run_stale_checkpoints(storage, seed=0),
    }


def _exploit_events(grid):
    return [e for e in grid.events if e["event"] == "exploit"]


# -- perturbations and jumps -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["pbt2", "pbt4", "stale"])
def test_every_exploit_is_one_jump_tied_to_the_rows_around_it(runs, key):
    grid = runs[key]
    run = al.run_data(grid)
    exploits = _exploit_events(grid)
    assert exploits
    found = [j for j in al.jumps(run) if j.kind == "exploit"]
    assert [j.seq for j in found] == [e["seq"] for e in exploits]
    for jump, event in zip(found, exploits):
        assert (jump.trial_id, jump.donor, jump.decision_iteration, jump.clone_iteration, jump.checkpoint) == (
            event["trial_id"], event["donor"], event["target_iteration"], event["donor_iteration"],
            event["checkpoint"])
        target = grid.trial(event["trial_id"]).metrics_dataframe
        assert target["restored_from/checkpoint"].iloc[jump.after_row] == event["checkpoint"]
        assert int(target["training_iteration"].iloc[jump.before_row]) == event["target_iteration"]
        owner, name = event["checkpoint"].split("/")
        donor = grid.trial(owner).metrics_dataframe
        assert jump.clone[0] == owner and donor["checkpoint_dir_name"].iloc[jump.clone[1]] == name
        assert int(donor["training_iteration"].iloc[jump.clone[1]]) == event["donor_iteration"]


def test_explore_only_restarts_are_jumps_of_kind_explore_without_donor(runs):
    grid = runs["explore_only"]
    run = al.run_data(grid)
    assert not _exploit_events(grid)
    explores = [e for e in grid.events if e["event"] == "explore"]
    jumps = al.jumps(run)
    assert [j.seq for j in jumps] == [e["seq"] for e in explores]
    for jump, event in zip(jumps, explores):
        assert (jump.kind, jump.donor, jump.trial_id) == ("explore", None, event["trial_id"])
        assert jump.clone == (event["trial_id"], jump.before_row)  # its own latest checkpoint
        assert jump.new_config == event["new_config"]
        assert jump.old_config == {c["param"]: c["old"] for c in event["changes"]}
    assert al.lineage_edges(run) == []


def test_perturbations_merge_each_exploit_with_its_explore(runs):
    grid = runs["pbt2"]
    records = al.perturbations(grid.events)
    explores = {e["seq"] - 1: e for e in grid.events if e["event"] == "explore"}  # each follows its exploit
    assert [p.seq for p in records] == [e["seq"] for e in _exploit_events(grid)]
    for record in records:
        explore = explores[record.seq]
        assert explore["trial_id"] == record.trial_id
        assert record.new_config == explore["new_config"] and list(record.changes) == explore["changes"]


def test_the_lineage_is_computed_once_per_run(runs, monkeypatch):
    run = al.run_data(runs["pbt4"])
    built = []
    original = al.RunLineage.__init__

    def counting(self, data):
        built.append(data)
        original(self, data)

    monkeypatch.setattr(al.RunLineage, "__init__", counting)
    first = al.jumps(run)
    al.lineage_edges(run)
    al.ancestry(run)
    al.hyperparameter_schedule(run)
    al.decision_iterations(run)
    assert built == [run] and al.jumps(run) == first and run.lineage is run.lineage


# -- lineage ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["pbt2", "pbt4", "stale"])
def test_lineage_edges_equal_the_exploit_events(runs, key):
    grid = runs[key]
    edges = al.lineage_edges(al.run_data(grid))
    assert [(e.seq, e.donor, e.target, e.donor_iteration, e.target_iteration, e.checkpoint) for e in edges] == [
        (e["seq"], e["donor"], e["trial_id"], e["donor_iteration"], e["target_iteration"], e["checkpoint"])
        for e in _exploit_events(grid)]
    for edge in edges:  # applied: the target reported again after the exploit
        later = grid.trial(edge.target).metrics_dataframe["training_iteration"] > edge.target_iteration
        assert edge.applied == bool(later.any())
    assert any(edge.applied for edge in edges)


def test_ancestry_follows_the_loaded_checkpoints(runs):
    grid = runs["pbt4"]
    run = al.run_data(grid)
    spans = al.ancestry(run)
    best = grid.get_best_result("Q", "max")
    assert al.best_trial(run).trial_id == best.trial_id
    assert spans[0].start_iteration == 0 and spans[0].entered_by is None
    assert spans[-1].trial_id == best.trial_id and spans[-1].end_iteration == 100
    by_seq = {e["seq"]: e for e in _exploit_events(grid)}
    for previous, span in itertools.pairwise(spans):
        event = by_seq[span.entered_by]
        assert event["trial_id"] == span.trial_id and event["donor"] == previous.trial_id
        assert previous.end_iteration == event["donor_iteration"] == span.start_iteration


@pytest.mark.parametrize("mode", ["max", "min"])
def test_best_trial_is_get_best_results_trial(runs, mode):
    for key in ("pbt2", "pbt4", "stale"):
        grid = runs[key]
        for metric in ("Q", "theta0"):
            assert al.best_trial(al.run_data(grid), metric, mode).trial_id == \
                grid.get_best_result(metric, mode).trial_id


# -- schedules -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["pbt2", "pbt4"])
def test_best_trial_schedule_equals_the_configs_it_ran_with(runs, key):
    grid = runs[key]
    run = al.run_data(grid)
    schedule = al.hyperparameter_schedule(run)
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


# -- inputs and errors -----------------------------------------------------------------------------------
def test_run_data_accepts_a_grid_or_a_path(runs):
    grid = runs["pbt2"]
    from_path = al.run_data(grid.experiment_path)
    live = al.run_data(grid)
    assert from_path.trial_ids == live.trial_ids and from_path.events == live.events
    assert al.run_data(live) is live
    assert al.run_data(load_results(grid.experiment_path)).trials == from_path.trials
    assert [t.initial_config for t in live.trials] == [e["config"] for e in grid.events if e["event"] == "trial_add"]


@pytest.mark.parametrize("bad, message", [
    (42, "results must be a ResultGrid or an experiment directory path, got 42 (int)"),
    ([1, 2], "results must be a ResultGrid or an experiment directory path, got [1, 2] (list)"),
])
def test_run_data_rejects_other_inputs(bad, message):
    with pytest.raises(ConfigError) as error:
        al.run_data(bad)
    assert str(error.value) == message


def test_missing_experiment_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ExperimentError, match="no experiment directory"):
        al.run_data(str(tmp_path / "nothing"))


def test_clear_errors_for_bad_arguments(runs):
    run = al.run_data(runs["pbt2"])
    with pytest.raises(ConfigError, match=r"trial index must be in \[0, 1\], got 5"):
        al.hyperparameter_schedule(run, 5)
    with pytest.raises(ConfigError, match=r"trial must be one of \['.*'\] \(or its index\), got 'zzz'"):
        al.ancestry(run, "zzz")
    with pytest.raises(ConfigError, match=r"params \['momentum'\] are not hyperparameters of this experiment"):
        al.hyperparameter_names(run, ["momentum"])
    with pytest.raises(ConfigError, match=r"trial must be a trial id, an index or None \(the best trial\), got 1.5"):
        al.resolve_trial(run, 1.5)
    with pytest.raises(ConfigError, match=r"the best trial needs a metric and a mode \('min' or 'max'\)"):
        al.best_trial(run, "Q", "highest")
    with pytest.raises(ConfigError, match=r"no trial reported a finite 'nope'"):
        al.best_trial(run, "nope", "max")


def _tiny_trainable(config):
    from pbtlab import tune

    for step in range(1, 5):
        tune.report({"score": config["lr"] * config["model"]["width"] * step})


def test_plots_default_to_the_hyperparameters_the_scheduler_explores(tmp_path):
    """A sampled seed (or any constant of a trial) is a column of the run, but the schedule and population
    plots default to what PBT mutates, nested names included; a run without a scheduler shows every column."""
    from pbtlab import RunConfig, TuneConfig, Tuner, tune
    from pbtlab.schedulers import PopulationBasedTraining

    space = {"lr": tune.uniform(0.1, 1.0), "seed": tune.randint(0, 1000), "model": {"width": tune.choice([1, 2, 3])}}
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                  hyperparam_mutations={"model": {"width": [1, 2, 3]}, "lr": tune.uniform(0.1, 1.0)})

    def fit(name, scheduler):
        return Tuner(_tiny_trainable, param_space=space,
                     tune_config=TuneConfig(metric="score", mode="max", num_samples=4, seed=0, scheduler=scheduler),
                     run_config=RunConfig(name=name, storage_path=str(tmp_path), verbose=0,
                                          stop={"training_iteration": 4})).fit()

    run = al.run_data(fit("pbt", pbt))
    assert run.param_columns == ["lr", "seed", "model/width"]
    assert run.tuned_params == ["lr", "model/width"]
    assert al.hyperparameter_names(run) == ["lr", "model/width"]
    assert list(al.hyperparameter_schedule(run).params) == ["lr", "model/width"]
    assert al.hyperparameter_names(run, ["seed"]) == ["seed"]  # still available when asked for
    plain = al.run_data(fit("plain", None))
    assert plain.tuned_params == plain.param_columns == ["lr", "seed", "model/width"]
    assert al.hyperparameter_names(plain) == ["lr", "seed", "model/width"]
