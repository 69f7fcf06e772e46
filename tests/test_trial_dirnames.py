"""A run whose trial folders are named by ``TuneConfig(trial_dirname_creator)`` reads exactly like the same seeded
run with the default folders, in every view: rows, events, ancestry, the report, ``serve``'s page and ``compare``."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

from pbtlab import RunConfig, TuneConfig, Tuner, tune
from pbtlab.analysis import load_results
from pbtlab.analysis.compare import compare_runs, format_comparison
from pbtlab.analysis.lineage import ancestry, run_data
from pbtlab.examples.runs import initial_h0, toy_scheduler
from pbtlab.examples.toy import train_func
from pbtlab.rundir.reader import RunDir
from run_files import strip_wall_clock


def folder_name(trial: Any) -> str:
    return f"h0={trial.config['h0']:.2f} lr={trial.config['lr']}"


def toy_run(storage: str, dirnames: bool) -> Any:
    tuner = Tuner(
        train_func,
        param_space={"lr": tune.qloguniform(5e-3, 1e-1, 5e-4), "h0": tune.grid_search(initial_h0(4)),
                     "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
                     "num_training_iterations": 24, "checkpoint_interval": 4},
        tune_config=TuneConfig(metric="Q", mode="max", seed=3, scheduler=toy_scheduler(4, True),
                               trial_dirname_creator=folder_name if dirnames else None),
        run_config=RunConfig(name="run", storage_path=storage, stop={"training_iteration": 24}, verbose=0))
    return tuner.fit()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    plain = toy_run(str(tmp_path_factory.mktemp("plain")), dirnames=False)
    named = toy_run(str(tmp_path_factory.mktemp("named")), dirnames=True)
    return plain, named


def _renamer(named_path: str, plain_path: str) -> Any:
    """Maps the named run's folder names and path to the plain run's, inside any string."""
    run = RunDir(named_path)
    pairs = [(run.dirname(t) + "/", t + "/") for t in run.trial_ids if run.dirname(t) != t]
    pairs += [(run.dirname(t), t) for t in run.trial_ids if run.dirname(t) != t]

    def rename(value: Any) -> Any:
        if isinstance(value, str):
            value = value.replace(os.path.dirname(named_path), os.path.dirname(plain_path))  # storage_path too
            for old, new in pairs:
                value = value.replace(old, new)
            return value
        if isinstance(value, dict):
            return {rename(k): rename(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [rename(v) for v in value]
        return value
    return rename


def test_the_named_run_really_has_other_folders(runs):
    plain, named = runs
    names = sorted(d for d in os.listdir(named.experiment_path) if d.startswith("h0="))
    assert len(names) == 4 and all(os.path.isfile(os.path.join(named.experiment_path, n, "result.jsonl"))
                                   for n in names)
    assert not any(os.path.exists(os.path.join(named.experiment_path, t)) for t in RunDir(named.experiment_path).trial_ids)
    assert len(plain.events_of("exploit")) >= 3  # the comparison below covers exploits from named folders


def test_rows_and_events_are_the_same(runs):
    plain, named = runs
    rename = _renamer(named.experiment_path, plain.experiment_path)
    for a, b in zip(load_results(plain.experiment_path), load_results(named.experiment_path)):
        assert a.trial_id == b.trial_id
        assert strip_wall_clock(rename(b.history())) == strip_wall_clock(a.history())
        assert len(b.history()) == 24
    assert strip_wall_clock(rename(load_results(named.experiment_path).events)) == \
        strip_wall_clock(load_results(plain.experiment_path).events)


def test_ancestry_follows_checkpoints_in_named_folders(runs):
    plain, named = runs
    run_a, run_b = run_data(plain.experiment_path), run_data(named.experiment_path)
    for trial_id in run_a.trial_ids:
        chain = ancestry(run_b, trial_id)
        assert chain == ancestry(run_a, trial_id)
    assert any(len(ancestry(run_b, t)) > 1 for t in run_b.trial_ids)  # exploits were followed, not cut short


def test_report_is_the_same(runs):
    from pbtlab.viz.report import report_html

    plain, named = runs
    rename = _renamer(named.experiment_path, plain.experiment_path)
    when = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")  # the times the runs were made
    html_a = when.sub("TIME", report_html(plain.experiment_path, animation=False, interactive=False))
    html_b = when.sub("TIME", report_html(named.experiment_path, animation=False, interactive=False))
    folders = re.compile(r"<tr><td>trial_dirs</td><td>.*?</td></tr>")  # the one setting that differs
    assert html_b.count("trial_dirs") == 1 and html_a.count("<img") >= 3
    assert folders.sub("", rename(html_b)) == folders.sub("", html_a)


def test_serve_page_is_the_same(runs):
    pytest.importorskip("starlette")
    from pbtlab.serve.live import LiveView

    plain, named = runs
    rename = _renamer(named.experiment_path, plain.experiment_path)
    pages = []
    for path in (plain.experiment_path, named.experiment_path):
        page = LiveView(path).snapshot()
        assert not page.get("problems"), page.get("problems")
        page.pop("id")
        page["status"].pop("age_s")  # seconds since the files last changed
        page["experiment"].pop("trial_dirs")  # the one setting that differs
        page["experiment"].pop("created")  # when each run started (to the second)
        pages.append(strip_wall_clock(json.loads(json.dumps(page, default=str))))
    assert len(pages[0]["trials"]) == 4 and pages[0]["figures"] is not None
    assert rename(pages[1]) == pages[0]


def test_compare_table_is_the_same(runs):
    plain, named = runs
    tables = [format_comparison(compare_runs([path])) for path in (plain.experiment_path, named.experiment_path)]
    assert "PBT" in tables[0] and tables[1] == tables[0]
