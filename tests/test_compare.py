"""`pbtlab compare`: best metric so far against compute, grouped by method, mean and 95% interval over seeds."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from pbtlab.cli import main
from pbtlab.analysis.compare import compare_runs, format_comparison, method_of, plot_comparison, run_curve, t_quantile_975
from pbtlab.errors import ConfigError, ExperimentError

PBT = {"type": "PopulationBasedTraining", "perturbation_interval": 2}
RANDOM_SPACE = {"lr": "tune.loguniform(0.001, 0.1)", "seed": "tune.randint(0, 100)"}
GRID_SPACE = {"lr": "tune.grid_search([0.01, 0.1])", "seed": "tune.randint(0, 100)"}


def write_run(path, trials, scheduler=None, param_space=None, metric="acc", mode="max", seed=0):
    """A run directory in pbtlab's format: experiment.json and one result.jsonl per trial."""
    os.makedirs(path)
    experiment = {"name": os.path.basename(path), "seed": seed, "metric": metric, "mode": mode,
                  "scheduler": scheduler, "param_space": param_space or RANDOM_SPACE, "trial_ids": list(trials)}
    with open(os.path.join(path, "experiment.json"), "w") as handle:
        json.dump(experiment, handle)
    for trial_id, values in trials.items():
        os.makedirs(os.path.join(path, trial_id))
        with open(os.path.join(path, trial_id, "result.jsonl"), "w") as handle:
            for i, value in enumerate(values):
                handle.write(json.dumps({metric: value, "training_iteration": i + 1}) + "\n")
    return str(path)


def test_curve_counts_trial_iterations_in_lockstep_rounds(tmp_path):
    run = write_run(tmp_path / "r", {"t0": [0.1, 0.5, 0.3], "t1": [0.2, 0.4]})
    curve = run_curve(run)
    assert curve.compute.tolist() == [2, 4, 5]  # the shorter trial stops adding compute
    assert curve.best.tolist() == [0.2, 0.5, 0.5]
    assert curve.final_best == 0.5
    assert curve.best_at(np.array([1, 2, 3, 4, 5, 9])).tolist()[1:] == [0.2, 0.2, 0.5, 0.5, 0.5]
    assert math.isnan(curve.best_at(np.array([1]))[0])  # before the first round


def test_min_mode_and_unusable_values(tmp_path):
    run = write_run(tmp_path / "r", {"t0": [3.0, None, 1.5], "t1": [float("nan"), 2.0, 0.5]}, mode="min")
    curve = run_curve(run)
    assert curve.best.tolist() == [3.0, 2.0, 0.5]


def test_default_grouping_rule():
    assert method_of({"scheduler": PBT}) == "PBT"
    assert method_of({"scheduler": {"type": "PB2"}}) == "PB2"
    assert method_of({"scheduler": None, "param_space": GRID_SPACE}) == "grid search"  # a sampled seed too
    assert method_of({"scheduler": {"type": "FIFOScheduler"}, "param_space": RANDOM_SPACE}) == "random search"
    assert method_of({"scheduler": None, "param_space": {"lr": 0.1, "nested": {"a": "tune.grid_search([1])"}}}) \
        == "grid search"
    assert method_of({"scheduler": None, "param_space": {"lr": 0.1, "f": "tune.sample_from(<lambda>)"}}) == "fixed"


def _three_seeds(tmp_path, finals=(0.5, 0.6, 0.7)):
    runs = [write_run(tmp_path / f"pbt_seed{i}", {"a": [0.1, final], "b": [0.2, 0.3]}, scheduler=PBT, seed=i)
            for i, final in enumerate(finals)]
    runs += [write_run(tmp_path / f"rand_seed{i}", {"a": [0.3, 0.4], "b": [0.1, 0.2]}, seed=i) for i in range(2)]
    return runs


def test_mean_and_t_interval_over_seeds(tmp_path):
    comparison = compare_runs(_three_seeds(tmp_path))
    assert [m.method for m in comparison.methods] == ["PBT", "random search"]
    assert comparison.compute.tolist() == [2, 4]
    pbt = comparison.method("PBT")
    assert pbt.n == 3
    assert pbt.mean.tolist() == pytest.approx([0.2, 0.6])
    half = t_quantile_975(2) * 0.1 / math.sqrt(3)
    assert (pbt.low[-1], pbt.high[-1]) == pytest.approx((0.6 - half, 0.6 + half))
    assert (pbt.low[0], pbt.high[0]) == pytest.approx((0.2, 0.2), abs=1e-12)  # all seeds equal: zero width
    rand = comparison.method("random search")
    assert rand.mean.tolist() == pytest.approx([0.3, 0.4])
    assert comparison.best_run("PBT").endswith("pbt_seed2")
    text = format_comparison(comparison)
    assert "PBT" in text and "0.6 ± 0.25" in text and "random search" in text
    # random minus PBT at the end: -0.2, Welch interval from the PBT spread only
    welch_half = t_quantile_975(2) * 0.1 / math.sqrt(3)
    assert f"-0.2 [{-0.2 - welch_half:+.3g}, {-0.2 + welch_half:+.3g}]" in text


def test_equal_compute_stops_at_the_smallest_budget(tmp_path):
    long = write_run(tmp_path / "long", {"a": [0.1, 0.2, 0.9]}, scheduler=PBT)
    short = write_run(tmp_path / "short", {"a": [0.1, 0.3]})
    comparison = compare_runs([long, short])
    assert comparison.compute.tolist() == [1, 2]
    assert comparison.method("PBT").mean.tolist() == [0.1, 0.2]  # the 0.9 came after the common budget


def test_pbt_is_listed_first_then_methods_in_the_order_given(tmp_path):
    grid = write_run(tmp_path / "a_grid", {"a": [0.1, 0.2]}, param_space=GRID_SPACE)
    pbt = write_run(tmp_path / "b_pbt", {"a": [0.1, 0.3]}, scheduler=PBT)
    rand = write_run(tmp_path / "c_rand", {"a": [0.2, 0.2]})
    clipped = write_run(tmp_path / "d_clip", {"a": [0.2, 0.4]}, scheduler={**PBT, "clip_to_domain": True})
    comparison = compare_runs([grid, rand, clipped, pbt])  # as a shell glob may give them
    assert [m.method for m in comparison.methods] == ["PBT", "grid search", "random search", "PBT (clip)"]
    assert [m.method for m in compare_runs([grid, rand]).methods] == ["grid search", "random search"]


def test_group_pattern_overrides_the_rule(tmp_path):
    runs = _three_seeds(tmp_path)
    comparison = compare_runs(runs, group_pattern=r"^(.*)_seed\d+$")
    assert [m.method for m in comparison.methods] == ["pbt", "rand"]
    with pytest.raises(ConfigError, match=r"group_pattern 'xyz' does not match the run directory name 'pbt_seed0'"):
        compare_runs(runs, group_pattern="xyz")
    with pytest.raises(ConfigError, match="not a regular expression"):
        compare_runs(runs, group_pattern="(")


def test_bad_inputs_are_named(tmp_path):
    a = write_run(tmp_path / "a", {"t": [0.1]})
    b = write_run(tmp_path / "b", {"t": [0.1]}, metric="loss", mode="min")
    with pytest.raises(ConfigError, match="runs tune different metrics"):
        compare_runs([a, b])
    with pytest.raises(ExperimentError, match="not a pbtlab run directory"):
        compare_runs([str(tmp_path)])
    with pytest.raises(ConfigError, match="needs a list of run directories"):
        compare_runs(a)
    empty = write_run(tmp_path / "empty", {"t": []})
    with pytest.raises(ExperimentError, match="has no reported results"):
        compare_runs([empty])


def test_plot_draws_a_line_and_band_per_method(tmp_path):
    pytest.importorskip("matplotlib")
    comparison = compare_runs(_three_seeds(tmp_path))
    figure = plot_comparison(comparison, title="t")
    assert len(figure.axes) == 2  # the whole budget, and its last half zoomed
    assert figure.axes[1].get_xlim()[0] == 2.0
    single = plot_comparison(comparison, zoom=False)
    assert len(single.axes) == 1
    ax = figure.axes[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["PBT (n=3)", "random search (n=2)"]
    assert len(ax.collections) == 2  # one 95% band per method
    assert ax.get_xlabel() == "compute: total trial-iterations"


def test_cli_compares_real_toy_runs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from pbtlab.examples.runs import run_toy_grid, run_toy_pbt

    paths = []
    for seed in range(2):
        paths.append(run_toy_pbt(population=2, seed=seed, iterations=20, storage_path=str(tmp_path),
                                 name=f"pbt_{seed}").experiment_path)
        paths.append(run_toy_grid(population=2, seed=seed, iterations=20, storage_path=str(tmp_path),
                                  name=f"grid_{seed}").experiment_path)
    figure = tmp_path / "cmp.png"
    assert main(["compare", *paths, "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "best Q so far (max)" in out and "budget 40" in out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert lines["PBT"].split()[1] == "2" and lines["grid search"].split()[2] == "2"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    comparison = compare_runs(paths)
    # PBT on the toy reaches a higher Q than the fixed grid at the same compute, for every seed
    assert comparison.method("PBT").values[:, -1].min() > comparison.method("grid search").values[:, -1].max()


def test_cli_error_names_the_problem(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "not a pbtlab run directory" in capsys.readouterr().err
