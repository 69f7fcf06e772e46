"""Real Ray Tune runs, read by pbtlab: lineage equals Ray's pbt_global.txt, and every view takes Ray's ResultGrid.

One session fixture starts Ray once and makes four tiny experiments (Ray's own Tuner, our toy trainables in
tests/ray_runs_workloads.py): synchronous PBT with a function trainable and ``num_to_keep=2``; asynchronous
PBT with a class trainable (16 iterations: enough checks for exploits whatever the timing), one trial
erroring; and asynchronous PBT interrupted, then continued with
``Tuner.restore`` (20 iterations: with 10, the exploits after the restore were sometimes all lost to the
interruption or the last iteration, and a CI run found no applied exploit to check).
"""

from __future__ import annotations

import json
import os
import random
import signal

import matplotlib
import numpy
import pytest

matplotlib.use("Agg")

from pbtlab.analysis import load_results
from pbtlab.analysis import lineage as al
from pbtlab.viz import lineage as vl
from pbtlab.viz import trajectories as vt

pytestmark = [pytest.mark.ray, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:Using `CheckpointConfig.num_to_keep <= 2` with PBT")]


@pytest.fixture(scope="session")
def ray_runs(tmp_path_factory):
    ray = pytest.importorskip("ray", reason="make test installs ray (pip install 'pbtlab[ray]')")
    import ray_runs_workloads as workloads
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(workloads)  # Ray's workers need not find tests/ on their path
    if ray.is_initialized():
        ray.shutdown()
    random.seed(0)  # Ray's PBT draws from the driver's global generators
    numpy.random.seed(0)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    storage = str(tmp_path_factory.mktemp("ray_results"))
    sigint = signal.getsignal(signal.SIGINT)  # Ray Tune's fit installs its own Ctrl-C handler and keeps it
    try:
        runs = {
            "sync": workloads.run_sync_function(storage, iterations=12, num_to_keep=2),
            "async": workloads.run_async_class(storage, iterations=16, fail_trial="00002", fail_at_step=11),
        }
        restored, _ = workloads.run_interrupted_then_restored(storage, stop_after_results=8, iterations=20)
        runs["restored"] = restored
    finally:
        ray.shutdown()
        signal.signal(signal.SIGINT, sigint)
    return runs


def policy_rows(path):
    with open(os.path.join(path, "pbt_global.txt")) as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.mark.parametrize("name", ["sync", "async", "restored"])
def test_exploit_events_equal_pbt_global_row_by_row(ray_runs, name):
    grid = load_results(ray_runs[name])  # Ray's own ResultGrid
    rows = policy_rows(grid.experiment_path)
    exploits, explores = grid.events_of("exploit"), grid.events_of("explore")
    assert len(rows) == len(exploits) == len(explores) > 0
    tag_of = {}
    for event in grid.events_of("trial_add"):
        tag_of[event["trial_id"]] = event["tag"]
    for row, exploit, explore in zip(rows, exploits, explores):
        target_tag, donor_tag, target_iteration, _, donor_config, new_config = row
        assert (exploit["target_tag"], exploit["donor_tag"]) == (target_tag, donor_tag)
        assert (tag_of[exploit["trial_id"]], tag_of[exploit["donor"]]) == (target_tag, donor_tag)
        assert exploit["donor_config"] == donor_config and explore["new_config"] == new_config
        # Ray logs the target's previous result when the target was the trial reporting
        assert exploit["target_iteration"] in (target_iteration, target_iteration + 1)
        assert explore["changes"] == [
            {"param": c["param"], "old": donor_config[c["param"]], "op": c["op"], "new": new_config[c["param"]]}
            for c in explore["changes"]]
        assert {c["param"] for c in explore["changes"]} == {k for k in new_config if new_config[k] != donor_config[k]}


@pytest.mark.parametrize("name", ["sync", "async", "restored"])
def test_every_applied_exploit_restarts_the_target_from_the_donors_row(ray_runs, name):
    grid = load_results(ray_runs[name])
    run = al.run_data(grid)
    edges = al.lineage_edges(run)
    assert [(e.donor, e.target) for e in edges] == [(e["donor"], e["trial_id"]) for e in grid.events_of("exploit")]
    applied = [e for e in edges if e.applied]
    assert applied
    for edge in applied:
        target = run.trial(edge.target)
        # After Tuner.restore, Ray can write a checkpoint folder's name a second time (a trial restored to an
        # older checkpoint counts its checkpoints from there): the restart of this edge is the target's row
        # from that checkpoint one iteration past the donor's.
        restarts = [r for r in target.rows if (r.get("restored_from") or {}).get("checkpoint") == edge.checkpoint]
        first = next(r for r in restarts if r["training_iteration"] == edge.donor_iteration + 1)
        assert first["restored_from"] == {"trial_id": edge.donor, "checkpoint": edge.checkpoint,
                                          "iteration": edge.donor_iteration, "reason": "exploit"}
        assert first["iterations_since_restore"] == 1
        donor = run.trial(edge.donor)
        name = edge.checkpoint.split("/", 1)[1]
        written = [r["training_iteration"] for r in donor.rows if r.get("checkpoint_dir_name") == name]
        assert edge.donor_iteration in written
        if len(written) == 1:  # a name written once: checkpoint_row finds its row
            owner, row = al.checkpoint_row(run, edge.checkpoint)
            assert owner.trial_id == edge.donor and owner.rows[row]["training_iteration"] == edge.donor_iteration
        # the new config is what Ray's rows after the exploit ran with
        explore = next(e for e in grid.events_of("explore") if e["seq"] == edge.seq + 1)
        assert first["config"] == explore["new_config"]


def test_sync_function_run_keeps_every_row_and_only_num_to_keep_checkpoints(ray_runs):
    grid = load_results(ray_runs["sync"])
    assert grid.experiment["num_to_keep"] == 2 and grid.experiment["scheduler"]["synch"] is True
    for result in grid:
        assert [r["training_iteration"] for r in result.history()] == list(range(1, 13))
        on_disk = sorted(n for n in os.listdir(result.path) if n.startswith("checkpoint_"))
        assert len(on_disk) <= 2
        assert [c["path"].split("/")[-1] for c in result._record["checkpoints"]] == on_disk
    assert {e["event"] for e in grid.events} >= {"experiment_start", "trial_add", "trial_start", "exploit",
                                                  "explore", "trial_restore", "trial_complete", "experiment_end"}
    assert [e["seq"] for e in grid.events] == list(range(len(grid.events)))


def test_async_class_run_records_the_error_as_ray_does(ray_runs):
    ray_grid = ray_runs["async"]
    grid = load_results(ray_grid)
    (failed,) = [r for r in grid if r.status == "ERROR"]
    assert failed.trial_id.endswith("00002")
    (error,) = grid.events_of("trial_error")
    assert error["trial_id"] == failed.trial_id and error["iteration"] == 10
    assert (error["error_type"], error["message"]) == ("RuntimeError", "planned failure at iteration 11")
    assert grid.num_errors == ray_grid.num_errors == 1
    assert grid.experiment["scheduler"]["synch"] is False and grid.experiment["trainable"] == "ToyTrainable"
    statuses = {r.trial_id: r.status for r in grid}
    # Ray's grid names each trial by its directory (its metrics may be a clone's after an exploit)
    ray_statuses = {tid: ("ERROR" if r.error else "TERMINATED") for r in ray_grid for tid in statuses
                    if tid in os.path.basename(r.path)}
    assert statuses == ray_statuses and len(ray_statuses) == len(grid)


def test_restored_run_says_what_ray_lost(ray_runs):
    from ray.tune import ExperimentAnalysis

    grid = load_results(ray_runs["restored"])
    analysis = ExperimentAnalysis(grid.experiment_path, default_metric="Q", default_mode="min")
    from_analysis = load_results(analysis)
    assert (from_analysis.experiment["metric"], from_analysis.experiment["mode"]) == ("Q", "min")
    assert from_analysis.events_of("exploit")[0]["target_score"] == -grid.events_of("exploit")[0]["target_score"]
    assert len(grid.events_of("experiment_resume")) == 1
    for start in (e for e in grid.events_of("trial_start") if e["reason"] == "resume"):  # restarts by the restore
        rows = grid.trial(start["trial_id"]).history()
        marked = [r["restored_from"] for r in rows if (r["restored_from"] or {}).get("reason") == "resume"]
        assert {"trial_id": start["trial_id"], "checkpoint": start["checkpoint"], "iteration": start["iteration"],
                "reason": "resume"} in marked
    gaps = grid.events_of("data_gap")
    assert grid.experiment["gaps"] == [g["message"] for g in gaps]
    unapplied = [e for e in al.lineage_edges(al.run_data(grid)) if not e.applied]
    explained = [g for g in gaps if g["what"] == "exploit without rows"]
    assert len(unapplied) == len(explained)
    for result in grid:  # every row Ray kept in either file is there, and each has the config in force
        rows = result.history()
        with open(os.path.join(result.path, "progress.csv")) as handle:
            assert len(rows) == sum(1 for _ in handle) - 1
        assert all(isinstance(r["config"], dict) and "lr" in r["config"] for r in rows)


def test_tutorial_cells_and_lineage_plots_take_rays_result_grid(ray_runs, tmp_path):
    import matplotlib.pyplot as plt

    from pbtlab.viz import (
        make_animation,
        plot_hyperparameter_schedule,
        plot_lineage,
        plot_parameter_history,
        plot_Q_history,
    )

    pbt_results = ray_runs["sync"]
    fig, axs = plt.subplots(1, 2, figsize=(13, 6), gridspec_kw={"width_ratios": [1.5, 1]})
    colors, labels = ["red", "black"], ["h = [0, 1]", "h = [1, 0]"]
    plot_parameter_history(pbt_results, colors, labels, perturbation_interval=4, fig=fig, ax=axs[0])
    plot_Q_history(pbt_results, colors, labels, ax=axs[1])
    fig.savefig(tmp_path / "history.png")
    animation = make_animation(pbt_results, colors, labels, perturbation_interval=4,
                               filename=str(tmp_path / "pbt.gif"))
    assert os.path.getsize(animation.path) > 10_000
    history = vt.parameter_history(al.run_data(pbt_results))
    exploits = load_results(pbt_results).events_of("exploit")
    assert [(a.trial_id, a.donor, a.clone_iteration) for a in history.arrows] == [
        (e["trial_id"], e["donor"], e["donor_iteration"]) for e in exploits]

    ax = plot_lineage(ray_runs["async"])
    arrows = [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
    events = load_results(ray_runs["async"]).events_of("exploit")
    assert len(arrows) == len(events)
    assert sorted(a.xy[0] for a in arrows) == sorted(e["donor_iteration"] for e in events)
    figure = plot_hyperparameter_schedule(ray_runs["async"])
    schedule = al.hyperparameter_schedule(al.run_data(ray_runs["async"]))
    drawn = [(float(x), float(y)) for line in figure.axes[0].get_lines() if line.get_linestyle() == "-"
             for x, y in zip(line.get_xdata(), line.get_ydata())]
    assert set(zip(map(float, schedule.iterations), map(float, schedule.values["lr"]))) <= set(drawn)


def test_a_result_grid_whose_directory_is_gone_is_read_from_memory(ray_runs, tmp_path):
    ray_grid = ray_runs["sync"]
    on_disk = load_results(ray_grid)
    moved = str(tmp_path / "moved")
    os.rename(ray_grid.experiment_path, moved)
    try:
        grid = load_results(ray_grid)
    finally:
        os.rename(moved, ray_grid.experiment_path)
    assert [r.trial_id for r in grid] == [r.trial_id for r in on_disk]
    for mine, ray_result in zip(grid, sorted(ray_grid, key=lambda r: r.metrics["trial_id"])):
        frame = ray_result.metrics_dataframe
        assert [r["training_iteration"] for r in mine.history()] == list(frame["training_iteration"])
        assert [r["Q"] for r in mine.history()] == list(frame["Q"])
    assert grid.events_of("exploit") == []
    gaps = [g["what"] for g in grid.events_of("data_gap")]
    assert gaps[0] == "experiment directory"
    # an exploit Ray made shows as a restart with a new config where Ray's in-memory rows kept the config
    # change (they do not always: Ray drops rows at restarts), never more than Ray logged on disk
    assert gaps.count("exploit not logged") <= len(on_disk.events_of("exploit"))
    assert vl.lineage(al.run_data(grid)).edges == ()
