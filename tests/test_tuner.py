"""Tuner end to end: automatic fields, stopping, checkpoints, restarts, ResultGrid/Result, FIFO and async PBT."""

from __future__ import annotations

import os
import pickle
import tempfile

import pytest

import pbtlab.session
from pbtlab import ConfigError, RunConfig, Tuner, TuneConfig, load_results, tune
from pbtlab.analysis import ResultGrid
from pbtlab.examples.runs import run_toy_pbt
from pbtlab.examples.toy import train_func
from pbtlab.schedulers import PopulationBasedTraining


def counter(config):
    """Reports a = x * step, for steps 1, 2, ... (until stopped or `steps` if given)."""
    for step in range(1, config.get("steps", 10**6) + 1):
        tune.report({"a": config["x"] * step, "step": step})


def fit(fn, storage, param_space, stop=None, **tune_kwargs):
    tune_kwargs.setdefault("seed", 0)
    return Tuner(fn, param_space=param_space, tune_config=TuneConfig(**tune_kwargs),
                 run_config=tune.RunConfig(storage_path=storage, stop=stop, verbose=0)).fit()


# -- automatic fields -----------------------------------------------------------------------------------------------
class SteppingClock:
    """Stands in for the session's ``time`` module: each ``perf_counter()`` reads 0.25 s later than the last."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 0.25
        return self.now


def test_automatic_result_fields(storage, monkeypatch):
    # A trial's iteration is timed by two clock reads (after the last report, at this one): 0.25 s here.
    monkeypatch.setattr(pbtlab.session, "time", SteppingClock())
    results = fit(counter, storage, {"x": tune.grid_search([1, 2]), "steps": 5})
    for result in results:
        rows = result.history()
        assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4, 5]
        assert [r["iterations_since_restore"] for r in rows] == [1, 2, 3, 4, 5]
        assert [r["done"] for r in rows] == [False] * 5  # the function returned after its last report
        assert all(r["trial_id"] == result.trial_id for r in rows)
        assert all(r["config"] == {"x": result.config["x"], "steps": 5} for r in rows)
        assert all(isinstance(r["timestamp"], int) for r in rows)
        assert [r["time_this_iter_s"] for r in rows] == [0.25] * 5
        assert [r["time_total_s"] for r in rows] == [0.25, 0.5, 0.75, 1.0, 1.25]
        assert [r["time_since_restore"] for r in rows] == [0.25, 0.5, 0.75, 1.0, 1.25]
        assert result.metrics["done"] is True and result.status == "TERMINATED"
        assert result.metrics["a"] == 5 * result.config["x"]
        ends = [e for e in results.events_of("trial_complete") if e["trial_id"] == result.trial_id]
        assert [(e["reason"], e["iteration"]) for e in ends] == [("function_returned", 5)]


def test_user_reported_training_iteration_wins(storage):
    def fn(config):
        for i in range(3):
            tune.report({"a": 1, "training_iteration": 10 * (i + 1)})

    results = fit(fn, storage, {})
    assert [r["training_iteration"] for r in results[0].history()] == [10, 20, 30]


# -- stopping ----------------------------------------------------------------------------------------------------
def test_stop_dict_any_key(storage):
    results = fit(counter, storage, {"x": tune.grid_search([1, 3])}, stop={"training_iteration": 7, "a": 9})
    a, b = results
    assert a.metrics["training_iteration"] == 7 and a.metrics["done"] is True  # a reaches only 7
    assert b.metrics["training_iteration"] == 3 and b.metrics["a"] == 9  # 3 * 3 >= 9
    assert [e["reason"] for e in results.events_of("trial_complete")] == ["stop_criterion"] * 2
    assert len(a.metrics_dataframe) == 7 and a.metrics_dataframe["done"].tolist() == [False] * 6 + [True]


def test_stop_callable(storage):
    seen = []

    def stop(trial_id, result):
        seen.append(trial_id)
        return result["a"] >= 4

    results = fit(counter, storage, {"x": tune.grid_search([1, 2])}, stop=stop)
    assert [r.metrics["training_iteration"] for r in results] == [4, 2]
    assert set(seen) == {r.trial_id for r in results}


def test_stopper_stop_all(storage):
    class StopAll(tune.Stopper):
        def __init__(self):
            self.reports = 0

        def __call__(self, trial_id, result):
            self.reports += 1
            return False

        def stop_all(self):
            return self.reports >= 5

    stopper = StopAll()
    results = fit(counter, storage, {"x": tune.grid_search([1, 2, 3])}, stop=stopper, max_concurrent_trials=1)
    assert stopper.reports == 5
    assert all(r.status == "TERMINATED" for r in results)
    assert sum(r.metrics.get("training_iteration", 0) for r in results) == 5
    assert {e["reason"] for e in results.events_of("trial_complete")} == {"stop_all"}


# -- checkpoints ----------------------------------------------------------------------------------------------------
def test_checkpoint_is_copied_at_report_time(storage):
    temp_dirs = []

    def fn(config):
        for step in range(1, 4):
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.txt"), "w") as f:
                    f.write(f"step {step}")
                temp_dirs.append(d)
                tune.report({"step": step}, checkpoint=tune.Checkpoint.from_directory(d))
                # at this point report() returned: the checkpoint must already be in the experiment
                own = tune.get_checkpoint()
                assert own.path.startswith(storage) and open(os.path.join(own.path, "state.txt")).read() == f"step {step}"

    results = fit(fn, storage, {})
    assert not any(os.path.exists(d) for d in temp_dirs)  # the tutorial's temporary directories are gone
    result = results[0]
    assert result.checkpoint.path == os.path.join(result.path, "checkpoint_000002")
    with result.checkpoint.as_directory() as path:
        assert open(os.path.join(path, "state.txt")).read() == "step 3"
    names = [n for n in sorted(os.listdir(result.path)) if not n.startswith("events.out.tfevents.")]
    assert names == ["checkpoint_000000", "checkpoint_000001", "checkpoint_000002", "params.json", "progress.csv",
                     "result.json", "result.jsonl"]
    assert [r["checkpoint_dir_name"] for r in result.history()] == [f"checkpoint_{i:06d}" for i in range(3)]
    copy = result.checkpoint.to_directory(os.path.join(storage, "copy"))
    assert open(os.path.join(copy, "state.txt")).read() == "step 3"


def test_get_checkpoint_after_exploit_is_the_donors(storage):
    starts = []

    def fn(config):
        checkpoint = tune.get_checkpoint()
        starts.append((tune.get_context().get_trial_id(), checkpoint.path if checkpoint else None))
        step = 0
        if checkpoint:
            with open(os.path.join(checkpoint.path, "s.pkl"), "rb") as f:
                step = pickle.load(f)
        while True:
            step += 1
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "s.pkl"), "wb") as f:
                    pickle.dump(step, f)
                tune.report({"score": config["x"] * step, "step": step},
                            checkpoint=tune.Checkpoint.from_directory(d))

    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=3, metric="score",
                                  mode="max", hyperparam_mutations={"x": tune.uniform(0.5, 2.0)}, synch=True)
    results = fit(fn, storage, {"x": tune.grid_search([1.0, 2.0])}, stop={"training_iteration": 10},
                  scheduler=pbt)
    exploits = results.events_of("exploit")
    assert len(exploits) == 3 and pbt.num_perturbations == 3
    restarts = [s for s in starts if s[1] is not None]
    assert restarts == [(e["trial_id"], os.path.join(results.experiment_path, e["checkpoint"])) for e in exploits]
    for e in exploits:
        assert e["checkpoint"].startswith(e["donor"] + "/")
    for result in results:
        # the clone continues the donor's step count, so step == training_iteration throughout
        assert all(r["step"] == r["training_iteration"] for r in result.history())


def test_failure_restarts_from_the_latest_checkpoint(storage):
    failed = []

    def fn(config):
        checkpoint = tune.get_checkpoint()
        step = int(open(os.path.join(checkpoint.path, "s")).read()) if checkpoint else 0
        while step < 6:
            step += 1
            if step == 5 and not failed:
                failed.append(step)
                raise RuntimeError("flaky")
            with tempfile.TemporaryDirectory() as d:
                open(os.path.join(d, "s"), "w").write(str(step))
                tune.report({"step": step}, checkpoint=tune.Checkpoint.from_directory(d) if step % 2 == 0 else None)

    results = Tuner(fn, tune_config=TuneConfig(seed=0), run_config=tune.RunConfig(
        storage_path=storage, verbose=0, failure_config=tune.FailureConfig(max_failures=1))).fit()
    result = results[0]
    assert result.error is None and result.status == "TERMINATED"
    df = result.metrics_dataframe
    # rows 1-4, then the restart from the iteration-4 checkpoint: 5, 6 (every row kept)
    assert df["training_iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    assert df["step"].tolist() == [1, 2, 3, 4, 5, 6]
    restored = df[df["restored_from/reason"].notna()]
    assert restored["training_iteration"].tolist() == [5]
    assert restored["restored_from/reason"].tolist() == ["failure"]
    assert restored["restored_from/iteration"].tolist() == [4]
    assert df["iterations_since_restore"].tolist() == [1, 2, 3, 4, 1, 2]
    (error,) = results.events_of("trial_error")
    assert (error["error_type"], error["message"], error["num_failures"], error["will_retry"]) == (
        "RuntimeError", "flaky", 1, True)


def test_checkpoint_retention_keeps_what_clones_need(storage):
    results = Tuner(train_func, param_space={"lr": 0.05, "h0": tune.grid_search([0.0, 1.0]),
                                             "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
                                             "checkpoint_interval": 4},
                    tune_config=TuneConfig(seed=0, scheduler=PopulationBasedTraining(
                        time_attr="training_iteration", perturbation_interval=4, metric="Q", mode="max",
                        quantile_fraction=0.5, hyperparam_mutations={"lr": tune.uniform(0.01, 0.1)}, synch=True)),
                    run_config=tune.RunConfig(storage_path=storage, verbose=0, stop={"training_iteration": 40},
                                              checkpoint_config=tune.CheckpointConfig(num_to_keep=1))).fit()
    assert results.num_errors == 0
    assert len(results.events_of("exploit")) == 9
    assert results.events_of("checkpoint_deleted")
    for result in results:
        kept = sorted(d for d in os.listdir(result.path) if d.startswith("checkpoint_"))
        assert len(kept) <= 2  # its newest, plus at most one pinned for a clone
        assert os.path.isdir(result.checkpoint.path)


# -- ResultGrid and Result -----------------------------------------------------------------------------------------
def test_result_grid_api(storage):
    results = fit(counter, storage, {"x": tune.grid_search([3, 1, 2]), "steps": 4}, metric="a", mode="max")
    assert isinstance(results, ResultGrid) and len(results) == 3
    assert [r.config["x"] for r in results] == [3, 1, 2]
    assert results[1].config["x"] == 1 and results[-1].config["x"] == 2
    assert [r.trial_id for r in results[0:2]] == [results[0].trial_id, results[1].trial_id]
    assert results.errors == [] and results.num_errors == 0
    assert os.path.isdir(results.experiment_path) and os.path.dirname(results.experiment_path) == storage
    assert results.get_best_result().config["x"] == 3
    assert results.get_best_result("a", "min").config["x"] == 1
    assert results.get_best_result("step", "max").config["x"] == 3  # ties: the first trial
    df = results.get_dataframe()
    assert df["a"].tolist() == [12, 4, 8] and df["config/x"].tolist() == [3, 1, 2]
    assert df["trial_id"].tolist() == [r.trial_id for r in results]
    assert df["logdir"].tolist() == [r.path for r in results]
    best_rows = results.get_dataframe(filter_metric="a", filter_mode="min")
    assert best_rows["a"].tolist() == [3, 1, 2] and best_rows["training_iteration"].tolist() == [1, 1, 1]


def test_result_fields_and_errors(storage):
    def fn(config):
        tune.report({"v": config["x"]})
        if config["x"] == 2:
            raise KeyError("bad")

    results = fit(fn, storage, {"x": tune.grid_search([1, 2])})
    ok, bad = results
    assert ok.metrics["v"] == 1 and ok.config == {"x": 1} and ok.error is None and ok.checkpoint is None
    assert ok.path == os.path.join(results.experiment_path, ok.trial_id)
    assert bad.status == "ERROR" and results.num_errors == 1 and results.errors == [bad.error]
    assert str(bad.error) == f"Trial {bad.trial_id} failed: KeyError: 'bad'"
    assert "raise KeyError" in bad.error.traceback_text
    assert bad.metrics["v"] == 2
    assert len(bad.metrics_dataframe) == 1


def test_load_back_from_path_equals_live(storage):
    live = run_toy_pbt(population=4, seed=3, storage_path=storage, name="exp")
    loaded = load_results(os.path.join(storage, "exp"))
    assert loaded.experiment_path == live.experiment_path
    assert len(loaded) == len(live) == 4
    for a, b in zip(loaded, live):
        assert (a.trial_id, a.status, a.config, a.metrics, a.checkpoint, a.path) == (
            b.trial_id, b.status, b.config, b.metrics, b.checkpoint, b.path)
        assert a.metrics_dataframe.equals(b.metrics_dataframe)
    assert loaded.events == live.events
    assert loaded.get_best_result("Q", "max").trial_id == live.get_best_result("Q", "max").trial_id
    assert loaded.get_dataframe().equals(live.get_dataframe())


# -- schedulers and concurrency ---------------------------------------------------------------------------------------
def test_fifo_runs_trials_in_order_with_max_concurrency(storage):
    results = fit(counter, storage, {"x": tune.grid_search([1, 2, 3, 4]), "steps": 3}, max_concurrent_trials=2)
    running, peak, order = set(), 0, []
    for e in results.events:
        if e["event"] == "trial_start":
            running.add(e["trial_id"])
            order.append(e["trial_id"])
            peak = max(peak, len(running))
        elif e["event"] == "trial_complete":
            running.discard(e["trial_id"])
    assert peak == 2
    assert order == [r.trial_id for r in results]
    assert all(r.metrics["training_iteration"] == 3 for r in results)


def test_in_process_default_runs_all_trials_concurrently(storage):
    results = fit(counter, storage, {"x": tune.grid_search([1, 2, 3]), "steps": 2})
    kinds = [(e["event"], e.get("trial_id")) for e in results.events if e["event"] in ("trial_start", "trial_complete")]
    ids = [r.trial_id for r in results]
    assert kinds[:3] == [("trial_start", t) for t in ids]


def test_async_pbt_run(storage):
    results = run_toy_pbt(population=4, seed=0, synch=False, storage_path=storage)
    assert results.num_errors == 0
    exploits = results.events_of("exploit")
    assert exploits
    assert len(exploits) == int(results.events_of("experiment_end")[0]["scheduler"].split(", ")[1].split()[0])
    for result in results:
        assert result.metrics["training_iteration"] == 100
        df = result.metrics_dataframe
        restored = df[df["restored_from/trial_id"].notna()]
        mine = [e for e in exploits if e["trial_id"] == result.trial_id]
        assert len(restored) == len(mine)
        # after an exploit the trial continues from the donor checkpoint's iteration
        assert (restored["training_iteration"] == restored["restored_from/iteration"] + 1).all()
        assert restored["iterations_since_restore"].tolist() == [1] * len(mine)
        # every reported row is kept: rows = 100 + the iterations redone or skipped by clones
        redone = sum(e["target_iteration"] - e["donor_iteration"] for e in mine)
        assert len(df) == 100 + redone
    for e in exploits:
        assert e["checkpoint"].startswith(e["donor"] + "/checkpoint_")
        assert e["donor_score"] >= e["target_score"]


def test_tutorial_scheduler_with_time_total_s_runs(storage):
    """The default time_attr (time_total_s) is wall-clock: only check that it runs and stays consistent."""
    pbt = PopulationBasedTraining(metric="a", mode="max", perturbation_interval=1e-9,
                                  hyperparam_mutations={"x": tune.uniform(1, 3)})
    results = fit(counter, storage, {"x": tune.grid_search([1.0, 2.0])}, stop={"training_iteration": 20},
                  scheduler=pbt)
    assert results.num_errors == 0
    assert pbt.num_checkpoints > 0
    assert all(r.metrics["training_iteration"] == 20 for r in results)


def test_plain_text_status_when_not_on_a_terminal(storage, capsys):
    from pbtlab.examples.runs import toy_scheduler

    Tuner(train_func, param_space={"lr": 0.05, "h0": tune.grid_search([0.0, 1.0]),
                                   "h1": tune.sample_from(lambda spec: 1 - spec.config["h0"]), "checkpoint_interval": 4},
          tune_config=TuneConfig(metric="Q", mode="max", seed=0, scheduler=toy_scheduler(4, True)),
          run_config=tune.RunConfig(storage_path=storage, stop={"training_iteration": 100}, verbose=2)).fit()
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # no terminal control codes in a pipe
    final = out.splitlines()[-5:]
    assert final[0] == "== Status ==  PopulationBasedTraining: 24 checkpoints, 24 perturbs  |  2 TERMINATED"
    assert final[1].split()[:8] == ["Trial", "name", "status", "h0", "h1", "lr", "iter", "total"]
    assert [row.split()[1] for row in final[3:]] == ["TERMINATED", "TERMINATED"]
    assert [row.split()[5] for row in final[3:]] == ["100", "100"]


def test_verbose_0_prints_nothing(storage, capsys):
    fit(counter, storage, {"x": tune.grid_search([1, 2]), "steps": 3})
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_trial_name_and_dirname_creators(storage):
    from pbtlab.engine.build import read_run

    def trainable(config):
        tune.report({"score": 1.0, "dir": os.path.basename(tune.get_context().get_trial_dir())})

    results = Tuner(trainable, param_space={"lr": tune.grid_search([0.1, 0.2])},
                    tune_config=TuneConfig(metric="score", mode="max", seed=0,
                                           trial_name_creator=lambda t: f"lr={t.config['lr']}",
                                           trial_dirname_creator=lambda t: f"run_lr_{t.config['lr']}"),
                    run_config=RunConfig(storage_path=storage, name="named", verbose=0)).fit()
    assert [os.path.basename(r.path) for r in results] == ["run_lr_0.1", "run_lr_0.2"]
    assert [r.metrics["dir"] for r in results] == ["run_lr_0.1", "run_lr_0.2"]
    assert [len(r.history()) for r in results] == [1, 1]
    experiment, state = read_run(results.experiment_path)
    assert [t["name"] for t in state.trials] == ["lr=0.1", "lr=0.2"]
    reloaded = load_results(results.experiment_path)
    assert [len(r.history()) for r in reloaded] == [1, 1]
    with pytest.raises(ConfigError, match=r"trial_dirname_creator\) returned 'same'.*unique folder name"):
        Tuner(trainable, param_space={"lr": tune.grid_search([0.1, 0.2])},
              tune_config=TuneConfig(trial_dirname_creator=lambda t: "same"),
              run_config=RunConfig(storage_path=storage, verbose=0)).fit()


def test_the_status_table_lists_the_20_best_trials_of_a_larger_population(tmp_path, capsys):
    """As Ray's CLIReporter(max_progress_rows=20): 30 trials, the 20 best by the metric, and a line counting the rest."""
    from pbtlab import tune
    from pbtlab.config import RunConfig, TuneConfig
    from pbtlab.tuner import Tuner

    def train(config):
        tune.report({"score": config["x"]})

    Tuner(train, param_space={"x": tune.grid_search(list(range(30)))},
          tune_config=TuneConfig(metric="score", mode="min"),
          run_config=RunConfig(storage_path=str(tmp_path), name="wide", verbose=1)).fit()
    lines = capsys.readouterr().out.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("== Status =="))
    rows = lines[start + 3:start + 23]
    assert [int(row.split()[-1]) for row in rows] == list(range(20))  # the 20 lowest scores, best first
    assert lines[start + 23].startswith("... 10 more trials not shown; listed: the 20 best by score (min).")
