"""ASHA, HyperBand and the median stopping rule running whole experiments through Tuner: the trials each one
ends and where (worked out by hand from a trainable whose ranking is known), the events on disk, how `pbtlab
events` / `show` / the report show them, the rung plot's data and picture, resume, and Ray's own examples
run unmodified with `pbtlab run`."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import pytest

import pbtlab
from pbtlab import RunConfig, TuneConfig, Tuner, tune
from pbtlab.callbacks import Callback
from pbtlab.cli import main
from pbtlab.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule

SRC = os.path.dirname(os.path.dirname(pbtlab.__file__))
RUNG_KINDS = ("rung_reached", "rung_promoted", "rung_stopped", "median_stopped")


def curve(config):
    """score = q * (1 - 0.9 ** iteration): every trial ranks by q at every iteration. Checkpoints each step."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "step")) as f:
            start = int(f.read())
    for step in range(start + 1, 31):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "step"), "w") as f:
                f.write(str(step))
            tune.report({"score": config["q"] * (1 - 0.9 ** step)}, checkpoint=tune.Checkpoint.from_directory(folder))


QS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]


def fit(storage, scheduler, name, callbacks=(), concurrent=2):
    return Tuner(curve, param_space={"q": tune.grid_search(QS)},
                 tune_config=TuneConfig(metric="score", mode="max", scheduler=scheduler, seed=0,
                                        max_concurrent_trials=concurrent),
                 run_config=RunConfig(storage_path=str(storage), name=name, verbose=0, state_save_period_s=0,
                                      callbacks=list(callbacks))).fit()


def decisions(grid):
    """The scheduler's decisions as (kind, trial, fields) without wall clock and sequence numbers."""
    return [(e["event"], e["trial_id"], {k: v for k, v in e.items() if k not in ("seq", "time")})
            for e in grid.events if e["event"] in RUNG_KINDS]


def iterations(grid):
    return [r.metrics["training_iteration"] for r in grid]


def test_hyperband_run_stops_and_promotes_as_worked_out_by_hand(tmp_path, capsys):
    """max_t=27, eta=3: bracket 0 takes trials 0-3 to 27; bracket 1 (milestone 9) takes 4-9 and keeps the best
    ceil(6/3) = 2 (q = 0.8, 0.9); bracket 2 (milestone 3) takes 10-11 and keeps both (it could keep 4)."""
    grid = fit(tmp_path, HyperBandScheduler(max_t=27, reduction_factor=3), "hb")
    assert iterations(grid) == [27, 27, 27, 27, 9, 9, 9, 9, 27, 27, 27, 27]
    assert {r.status for r in grid} == {"TERMINATED"}
    stopped = [(tid[-2:], data["reason"], data["milestone"]) for kind, tid, data in decisions(grid)
               if kind == "rung_stopped"]
    assert sorted(stopped) == sorted([(f"{i:02d}", "max_t", 27) for i in (0, 1, 2, 3, 8, 9, 10, 11)]
                                     + [(f"{i:02d}", "not_top", 9) for i in (4, 5, 6, 7)])
    promoted = sorted((tid[-2:], data["rung"]) for kind, tid, data in decisions(grid) if kind == "rung_promoted")
    assert promoted == [("08", 0), ("09", 0), ("10", 0), ("10", 1), ("11", 0), ("11", 1)]
    completes = {e["trial_id"][-2:]: e for e in grid.events if e["event"] == "trial_complete"}
    # the last to reach rung 9 of bracket 1 is trial 9, a winner: all four losers waited, paused at the rung,
    # and the engine ended them there (Decision.stop)
    assert [completes[f"{i:02d}"]["was_running"] for i in (4, 5, 6, 7)] == [False] * 4
    assert {completes[f"{i:02d}"]["reason"] for i in range(12)} == {"scheduler"}
    assert main(["events", grid.experiment_path, "--kind", "rung_stopped"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 12
    # the cutoff is the worst score kept: trial 8's, 0.8 * (1 - 0.9 ** 9)
    assert any("rung_stopped: [HyperBand] trial" in line and "not among the best 2 of 6 (cutoff 0.490064)" in line
               for line in printed)
    assert main(["show", grid.experiment_path]) == 0
    assert "rung_promoted 6, rung_reached" in capsys.readouterr().out


def test_asha_run_and_its_rung_plot(tmp_path):
    grid = fit(tmp_path, ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3), "asha", concurrent=1)
    # one trial at a time, in q order: every new trial beats all before it, so none is below its cutoff
    assert iterations(grid) == [27] * 12
    assert {kind for kind, _, _ in decisions(grid)} == {"rung_promoted", "rung_stopped"}

    from pbtlab.analysis.lineage import run_data
    from pbtlab.viz.rungs import plot_rungs, rung_plot_data

    data = rung_plot_data(run_data(grid))
    (panel,) = data.panels
    assert (data.scheduler, data.time_attr, data.metric) == ("AsyncHyperBand", "training_iteration", "score")
    assert panel.milestones == (1, 3, 9, 27)
    assert [panel.count("promoted", m) for m in (1, 3, 9)] == [12, 12, 12]
    assert panel.count("stopped", 27, "max_t") == 12
    assert panel.stopped_early == frozenset() and len(panel.went_furthest) == 12
    assert len(panel.curves) == 12 and all(len(times) == 27 for times, _ in panel.curves.values())
    figure = plot_rungs(grid)
    path = tmp_path / "rungs.png"
    figure.savefig(path, dpi=60)
    assert path.stat().st_size > 10_000


def test_asha_stops_the_worse_trials_when_they_come_later(tmp_path):
    """Trials run one at a time with q falling: at each rung a later trial is below the 2/3 quantile of
    the earlier ones, so only the first two ever pass rung 0 (1)."""
    def falling(config):
        for step in range(1, 31):
            tune.report({"score": (2.0 - config["q"]) * (1 - 0.9 ** step)})

    grid = Tuner(falling, param_space={"q": tune.grid_search(QS)},
                 tune_config=TuneConfig(metric="score", mode="max", seed=0, max_concurrent_trials=1,
                                        scheduler=ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3)),
                 run_config=RunConfig(storage_path=str(tmp_path), name="falling", verbose=0)).fit()
    # rung 0: the first trial has no one to compare with; the second has a lower score than the first
    # (cutoff = the first's score): every later trial is below the 2/3 quantile of the earlier ones
    assert iterations(grid) == [27, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    stops = [e for e in grid.events if e["event"] == "rung_stopped" and e["reason"] == "below_cutoff"]
    assert len(stops) == 11 and all(e["rung"] == 0 and e["value"] < e["cutoff"] for e in stops)
    from pbtlab.analysis.lineage import run_data
    from pbtlab.viz.rungs import rung_plot_data

    (panel,) = rung_plot_data(run_data(grid)).panels
    assert panel.count("stopped", 1) == 11 and len(panel.stopped_early) == 11
    assert panel.went_furthest == frozenset({grid[0].trial_id})


def test_report_shows_the_rung_figure_and_the_decisions(tmp_path):
    from pbtlab.viz.report import report_html

    grid = fit(tmp_path, HyperBandScheduler(max_t=27, reduction_factor=3), "hb_report")
    html = report_html(grid, interactive=False)
    assert 'alt="rungs"' in html
    assert "trial " in html and "not among the best 2 of 6" in html
    assert "<td class=\"kind-rung_stopped\">rung_stopped</td>" in html


def test_median_stopping_rule_run(tmp_path):
    """One slot, q falling with the trial number. Trials 0 and 1 reach iteration 3 (grace_period) with too few
    others to compare with and yield their slot to waiting trials; every later trial is worse at 3 than the
    median of the others' running means, so it stops there; then 0 and 1 take turns to the end."""
    def falling(config):
        for step in range(1, 31):
            tune.report({"score": (2.0 - config["q"]) * (1 - 0.9 ** step)})

    rule = MedianStoppingRule(time_attr="training_iteration", grace_period=3, min_samples_required=2)
    grid = Tuner(falling, param_space={"q": tune.grid_search(QS)},
                 tune_config=TuneConfig(metric="score", mode="max", seed=0, max_concurrent_trials=1, scheduler=rule),
                 run_config=RunConfig(storage_path=str(tmp_path), name="median", verbose=0)).fit()
    assert iterations(grid) == [30, 30] + [3] * 10
    stops = [e for e in grid.events if e["event"] == "median_stopped"]
    assert [e["trial_id"][-2:] for e in stops] == [f"{i:02d}" for i in range(2, 12)]
    assert all(e["action"] == "stop" and e["time_value"] == 3 and e["value"] < e["median"] for e in stops)
    # trial 2 is compared with 0 and 1 (their scores at 3), trial 3 with 0, 1 and 2, ...
    assert [e["num_compared"] for e in stops] == list(range(2, 12))
    assert stops[0]["median"] == pytest.approx((1.95 + 1.9) / 2 * (1 - 0.9 ** 3))


class StopAtStep(Callback):
    """Raises at the given step of the controller loop, as a crash mid-run."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, iteration, trials, **info):
        if iteration == self.step:
            raise RuntimeError("crash")


@pytest.mark.slow
@pytest.mark.parametrize("make", [lambda: HyperBandScheduler(max_t=27, reduction_factor=3),
                                  lambda: ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3, brackets=2)],
                         ids=["hyperband", "asha"])
def test_resume_mid_run_gives_the_same_decisions(tmp_path, make):
    reference = fit(tmp_path, make(), "reference")
    with pytest.raises(pbtlab.errors.CallbackError):
        fit(tmp_path, make(), "crashed", callbacks=[StopAtStep(70)])
    path = os.path.join(tmp_path, "crashed")
    state = json.load(open(os.path.join(path, "state.json")))
    assert 0 < sum(t["iteration"] for t in state["trials"]) < sum(iterations(reference))
    resumed = Tuner.restore(path, curve).fit()
    if isinstance(make(), ASHAScheduler):
        assert decisions(resumed) == decisions(reference)
    else:
        # HyperBand: the trials that were running when the state was saved wait again after the resume, and
        # the scheduler picks who runs first (least complete bracket first, as Ray): the same decisions, in
        # another order, and so other counts of trials still on their way to a rung when one pauses there
        def judged(grid):
            return sorted((kind, tid, d["bracket"], d["rung"], d["milestone"], d["value"], d["cutoff"],
                           d.get("reason")) for kind, tid, d in decisions(grid) if kind != "rung_reached")

        def paused(grid):
            return sorted((tid, d["bracket"], d["rung"], d["value"]) for kind, tid, d in decisions(grid)
                          if kind == "rung_reached")

        assert judged(resumed) == judged(reference) and paused(resumed) == paused(reference)
    assert iterations(resumed) == iterations(reference)
    assert json.load(open(os.path.join(path, "experiment.json")))["scheduler"]["type"] == type(make()).__name__


def _ray_example(name):
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("Ray is not installed")
    return os.path.join(spec.submodule_search_locations[0], "tune", "examples", name)


def pbtlab_run(path, cwd):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "pbtlab.cli", "run", path, "--smoke-test"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.ray
@pytest.mark.parametrize("example, run_name, scheduler, iteration", [
    ("async_hyperband_example.py", "asynchyperband_test", "AsyncHyperBandScheduler", 1),
    ("hyperband_example.py", "hyperband_test", "HyperBandScheduler", 1),
    ("hyperband_function_example.py", "hyperband_test", "HyperBandScheduler", 10),
])
def test_rays_hyperband_examples_run_unmodified(tmp_path, example, run_name, scheduler, iteration):
    done = pbtlab_run(_ray_example(example), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Best hyperparameters found" in done.stdout
    (run_dir,) = glob.glob(os.path.join(tmp_path, "pbtlab_results", run_name + "*"))
    with open(os.path.join(run_dir, "events.jsonl")) as f:
        events = [json.loads(line) for line in f]
    assert events[0]["scheduler"]["type"] == scheduler and events[0]["num_trials"] == 20
    completes = [e for e in events if e["event"] == "trial_complete"]
    assert len(completes) == 20 and {e["iteration"] for e in completes} == {iteration}
    assert {e["reason"] for e in completes} == {"stop_criterion"}


def test_compare_counts_an_asha_run_on_its_slots(tmp_path):
    """One slot: trial 0 holds it for its 27 iterations, then the 11 trials ASHA stopped at rung 1 take it one
    iteration each, in the order they started: 38 rounds of one report each (not 27 lockstep rounds)."""
    from pbtlab.analysis.compare import compare_runs, run_curve

    def falling(config):
        for step in range(1, 31):
            tune.report({"score": (2.0 - config["q"]) * (1 - 0.9 ** step)})

    grid = Tuner(falling, param_space={"q": tune.grid_search(QS)},
                 tune_config=TuneConfig(metric="score", mode="max", seed=0, max_concurrent_trials=1,
                                        scheduler=ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3)),
                 run_config=RunConfig(storage_path=str(tmp_path), name="asha_one_slot", verbose=0)).fit()
    curve = run_curve(grid.experiment_path)
    assert curve.method == "ASHA"
    assert list(curve.compute) == list(range(1, 39))
    first = [(2.0 - QS[0]) * (1 - 0.9 ** step) for step in range(1, 28)]
    assert curve.best[:27] == pytest.approx(first) and curve.best[27:] == pytest.approx([first[-1]] * 11)
    assert compare_runs([grid.experiment_path]).compute[-1] == 38


@pytest.mark.parametrize("scheduler", [ASHAScheduler(), HyperBandScheduler(), MedianStoppingRule()],
                         ids=["asha", "hyperband", "median"])
def test_a_metric_never_reported_is_an_error_at_the_first_report(tmp_path, scheduler):
    def no_score(config):
        tune.report({"loss": 1.0})

    with pytest.raises(pbtlab.errors.ConfigError, match="TuneConfig\\(metric='score'\\) is not in trial"):
        Tuner(no_score, tune_config=TuneConfig(metric="score", mode="max", scheduler=scheduler),
              run_config=RunConfig(storage_path=str(tmp_path), name="no_score", verbose=0)).fit()


def hyperband_and_fifo_runs(storage) -> None:
    """Two runs side by side in ``storage``: ``hb`` (HyperBand, with rung events) and ``fifo`` (none)."""
    fit(storage, HyperBandScheduler(max_t=27, reduction_factor=3), "hb")
    Tuner(curve, param_space={"q": tune.grid_search([0.5])}, tune_config=TuneConfig(metric="score", mode="max"),
          run_config=RunConfig(storage_path=str(storage), name="fifo", verbose=0,
                               stop={"training_iteration": 2})).fit()


def test_serve_gives_the_rung_figure_of_a_hyperband_run(tmp_path):
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    import urllib.request

    from pbtlab.serve.app import start_server

    hyperband_and_fifo_runs(tmp_path / "runs")
    running = start_server([str(tmp_path)])
    try:
        with urllib.request.urlopen(running.url + "/api/rungs?id=0/runs/hb") as response:
            figure = json.loads(response.read())["rungs"]
        with urllib.request.urlopen(running.url + "/api/rungs?id=0/runs/fifo") as response:
            refused = json.loads(response.read())
    finally:
        running.stop()
    curves = [t for t in figure["data"] if t["mode"] == "lines"]
    assert len(curves) == 12 and {t["xaxis"] for t in curves} == {"x", "x2", "x3"}
    stopped = [t for t in figure["data"] if t["name"] == "stopped"]
    assert [len(t["x"]) for t in stopped] == [0, 4, 0]  # bracket 1's four losers, at its milestone 9
    assert stopped[1]["x"] == [9.0] * 4
    cutoffs = [t for t in figure["data"] if t["name"] == "cutoff"]
    assert cutoffs[1]["x"] == [9] and cutoffs[1]["y"] == [pytest.approx(0.8 * (1 - 0.9 ** 9))]
    assert sorted(s["x0"] for s in figure["layout"]["shapes"]) == [3, 9, 9, 27, 27, 27]
    assert "no rung decisions" in refused["error"]


def _poll(page, expression, what, timeout=30.0):
    """Evaluate ``expression`` (a function's source) until truthy: the page's CSP forbids eval-based waits."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed {what}")
        time.sleep(0.1)


@pytest.mark.browser
def test_serve_page_draws_the_rungs_section_only_for_rung_runs(tmp_path):
    """In chromium: the HyperBand run's page shows the Rungs section with its 12 trial curves; a FIFO run's page
    keeps it hidden; no console error on either."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    pytest.importorskip("starlette")
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (make test installs it)")
    from pbtlab.serve.app import start_server

    hyperband_and_fifo_runs(tmp_path / "runs")
    running = start_server([str(tmp_path)])
    errors: list[str] = []
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(running.url + "/experiment?id=0/runs/hb")
            _poll(page, "() => document.getElementById('plot-rungs').data !== undefined", "the rung plot")
            lines = page.evaluate("() => document.getElementById('plot-rungs').data"
                                  ".filter(t => t.mode === 'lines').length")
            assert lines == 12 and page.locator("#rungs").is_visible()
            page.goto(running.url + "/experiment?id=0/runs/fifo")
            _poll(page, "() => document.getElementById('plot-metric').data !== undefined", "the metric plot")
            page.wait_for_timeout(500)
            assert page.locator("#rungs").is_hidden()
            browser.close()
    finally:
        running.stop()
    assert errors == []


def test_asha_spends_exactly_the_trial_iteration_budget_of_the_comparison(tmp_path, monkeypatch):
    """bench/compare_real.py's rule for ASHA: as many trials as it wants, 4 at a time, until 48 results."""
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(SRC), "bench"))
    from compare_real import TrialIterationBudget

    from pbtlab.analysis.compare import run_curve

    grid = Tuner(curve, param_space={"q": tune.uniform(0.0, 1.0)},
                 tune_config=TuneConfig(metric="score", mode="max", seed=3, num_samples=64, max_concurrent_trials=4,
                                        scheduler=ASHAScheduler(max_t=12, grace_period=1, reduction_factor=3)),
                 run_config=RunConfig(storage_path=str(tmp_path), name="budget", verbose=0,
                                      stop=TrialIterationBudget(budget=48, max_iterations=12))).fit()
    assert sum(len(r.history()) for r in grid) == 48
    assert 4 < sum(1 for r in grid if r.history()) < 48  # it stopped some early and started others
    assert run_curve(grid.experiment_path).compute[-1] == 48
    assert {e["reason"] for e in grid.events_of("trial_complete")} >= {"scheduler", "stop_all"}
