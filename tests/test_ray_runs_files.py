"""Reading committed Ray Tune experiment directories (no Ray needed): records, gaps, errors, safety.

tests/fixtures/ray_async_class: Ray 2.60, asynchronous PBT over 3 class trainables, 10 iterations,
trial 00002 fails at iteration 7, 3 exploits. tests/fixtures/ray_restored_async: asynchronous PBT with a
function trainable, interrupted and continued with ``Tuner.restore``; Ray rewrote result.json at the
restart. Both were made by tests/ray_runs_workloads.py and trimmed by its ``trim_for_fixture``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest

from pbtlab.analysis import load_results
from pbtlab.cli import main
from pbtlab.errors import ExperimentError
from pbtlab.compat.ray import is_ray_experiment
from pbtlab.compat.ray.files import tuner_settings
from pbtlab.compat.ray.grid import RayResultGrid
from pbtlab.compat.ray.runs import load_ray_results
from pbtlab.rundir.records import event_from_dict
from pbtlab.analysis import lineage as al
from pbtlab.viz import lineage as vl
from pbtlab.viz import trajectories as vt

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ASYNC = os.path.join(FIXTURES, "ray_async_class")
RESTORED = os.path.join(FIXTURES, "ray_restored_async")


@pytest.fixture
def async_copy(tmp_path):
    target = tmp_path / "async_class"
    shutil.copytree(ASYNC, target)
    return str(target)


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def write(path, text):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def trial_folder(path, suffix):
    return next(os.path.join(path, n) for n in sorted(os.listdir(path)) if n.split("_")[2] == suffix)


def test_async_fixture_becomes_pbtlab_records():
    grid = load_results(ASYNC)
    assert isinstance(grid, RayResultGrid) and is_ray_experiment(ASYNC)
    assert [r.trial_id for r in grid] == ["7b7a4_00000", "7b7a4_00001", "7b7a4_00002"]
    assert [r.status for r in grid] == ["TERMINATED", "TERMINATED", "ERROR"]
    assert (grid.experiment["metric"], grid.experiment["mode"], grid.experiment["param_columns"]) == \
        ("Q", "max", ["lr", "h0", "h1"])
    kinds = [e["event"] for e in grid.events]
    assert kinds[0] == "experiment_start" and kinds[-1] == "experiment_end"
    assert [e["seq"] for e in grid.events] == list(range(len(kinds)))
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "experiment_start": 1, "trial_add": 3, "trial_start": 6, "exploit": 3, "explore": 3, "trial_restore": 3,
        "trial_error": 1, "trial_complete": 2, "experiment_end": 1}
    for n, kind in enumerate(kinds):  # each exploit: exploit, explore, trial_restore, trial_start of the target
        if kind == "exploit":
            assert kinds[n:n + 4] == ["exploit", "explore", "trial_restore", "trial_start"]
            assert len({e["trial_id"] for e in grid.events[n:n + 4]}) == 1
    assert grid.get_best_result().trial_id == "7b7a4_00001"
    assert grid.experiment["gaps"] == []


@pytest.mark.parametrize("fixture", [ASYNC, RESTORED])
def test_every_event_of_a_ray_run_is_a_schema_record(fixture):
    """The Ray reader builds each event with the schema's class: parsing and writing it back changes nothing, so
    it has no field the schema lacks and none it needs is missing."""
    events = load_ray_results(fixture).events
    assert [e["seq"] for e in events] == list(range(len(events)))
    for event in events:
        assert event_from_dict(event).to_dict() == event
    exploits = [e for e in events if e["event"] == "exploit"]
    assert exploits and all(e["policy_log"] and e["policy_log_line"] >= 1 and e["time_value"] is None for e in exploits)
    assert events[0]["scheduler"] == {"type": "PopulationBasedTraining"}


def test_exploits_follow_pbt_global_and_rows_show_the_clone():
    grid = load_results(ASYNC)
    with open(os.path.join(ASYNC, "pbt_global.txt")) as handle:
        rows = [json.loads(line) for line in handle]
    exploits = grid.events_of("exploit")
    got = [(e["target_tag"], e["donor_tag"], e["trial_id"], e["donor"], e["target_iteration"], e["donor_iteration"],
            e["checkpoint"], e["policy_log_line"]) for e in exploits]
    assert got == [
        ("1_h0=1.0000", "0_h0=0.0000", "7b7a4_00001", "7b7a4_00000", 4, 4, "7b7a4_00000/checkpoint of iteration 4", 1),
        ("1_h0=1.0000", "0_h0=0.0000", "7b7a4_00001", "7b7a4_00000", 6, 6, "7b7a4_00000/checkpoint of iteration 6", 2),
        ("1_h0=1.0000", "2_h0=0.5000", "7b7a4_00001", "7b7a4_00002", 8, 6, "7b7a4_00002/checkpoint of iteration 6", 3),
    ]
    assert [e["donor_config"] for e in exploits] == [r[4] for r in rows]
    assert [e["new_config"] for e in grid.events_of("explore")] == [r[5] for r in rows]
    # Ray's class trainables do not name checkpoints in their rows: the cloned rows get an explicit label
    assert grid.events_of("explore")[2]["changes"] == [
        {"param": "lr", "old": 0.05, "op": "resample", "new": 0.021500000000000002},
        {"param": "h0", "old": 0.5, "op": "* 1.2", "new": 0.6},
        {"param": "h1", "old": 0.5, "op": "* 1.2", "new": 0.6}]
    target = grid.trial("7b7a4_00001").history()
    assert [r["training_iteration"] for r in target] == [1, 2, 3, 4, 5, 6, 7, 8, 7, 8, 9, 10]
    marked = [(n, r["restored_from"]) for n, r in enumerate(target) if r["restored_from"]]
    assert marked == [
        (4, {"trial_id": "7b7a4_00000", "checkpoint": "7b7a4_00000/checkpoint of iteration 4", "iteration": 4,
             "reason": "exploit"}),
        (6, {"trial_id": "7b7a4_00000", "checkpoint": "7b7a4_00000/checkpoint of iteration 6", "iteration": 6,
             "reason": "exploit"}),
        (8, {"trial_id": "7b7a4_00002", "checkpoint": "7b7a4_00002/checkpoint of iteration 6", "iteration": 6,
             "reason": "exploit"})]
    run = al.run_data(ASYNC)
    assert [a.trial_id for a in al.ancestry(run)] == ["7b7a4_00002", "7b7a4_00001"]
    assert [(e.donor, e.target, e.donor_iteration, e.target_iteration, e.applied) for e in al.lineage_edges(run)] == [
        ("7b7a4_00000", "7b7a4_00001", 4, 4, True), ("7b7a4_00000", "7b7a4_00001", 6, 6, True),
        ("7b7a4_00002", "7b7a4_00001", 6, 8, True)]


def test_the_errored_trial_keeps_rays_error_text():
    grid = load_results(ASYNC)
    (error,) = grid.events_of("trial_error")
    assert (error["trial_id"], error["iteration"], error["error_type"], error["message"], error["will_retry"]) == \
        ("7b7a4_00002", 6, "RuntimeError", "planned failure at iteration 7", False)
    assert error["traceback"].startswith("Failure # 1") and 'raise RuntimeError(f"planned failure' in error["traceback"]
    assert [str(e) for e in grid.errors] == ["Trial 7b7a4_00002 failed: RuntimeError: planned failure at iteration 7"]


def test_restored_run_reports_what_ray_lost():
    grid = load_results(RESTORED)
    gaps = grid.events_of("data_gap")
    assert [(g["trial_id"], g["what"]) for g in gaps] == [
        ("0be66_00000", "result.json rows"), ("0be66_00001", "result.json rows"),
        ("0be66_00001", "exploit without rows"), ("0be66_00000", "checkpoint overwritten"),
        ("0be66_00001", "checkpoint overwritten")]
    assert grid.experiment["gaps"] == [g["message"] for g in gaps]
    assert "10 of 17 rows are only in progress.csv" in gaps[0]["message"]
    assert len(grid.events_of("experiment_resume")) == 1
    assert [(e["trial_id"], e["iteration"], e["reason"]) for e in grid.events_of("trial_start")] == [
        ("0be66_00000", 0, None), ("0be66_00001", 0, None), ("0be66_00000", 0, "resume"),
        ("0be66_00001", 0, "resume"), ("0be66_00001", 4, "exploit"), ("0be66_00001", 6, "exploit")]
    edges = al.lineage_edges(al.run_data(grid))
    assert [(e.donor_iteration, e.target_iteration, e.applied) for e in edges] == [
        (4, 4, False), (4, 4, True), (6, 6, True)]
    rows = grid.trial("0be66_00000").history()
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4, 5, *range(1, 13)]
    assert rows[5]["restored_from"] == {"trial_id": "0be66_00000", "checkpoint": None, "iteration": 0,
                                        "reason": "resume"}
    # a folder Ray wrote twice keeps its name on the row whose state is on disk
    assert [r["checkpoint_dir_name"] for r in rows[:5]] == [
        None, "checkpoint_000000 (overwritten, iteration 2)", None, "checkpoint_000001 (overwritten, iteration 4)",
        None]
    assert rows[6]["checkpoint_dir_name"] == "checkpoint_000000"


def test_cli_show_events_and_report_read_a_ray_directory(tmp_path, capsys):
    assert main(["show", RESTORED]) == 0
    shown = capsys.readouterr().out
    assert "0be66_00001  TERMINATED  12" in shown and "data_gap 5" in shown and "exploit 3" in shown
    assert "Data gap: pbt_global.txt line 1: trial 0be66_00001 was exploited, but Ray kept no row" in shown
    assert main(["events", ASYNC, "--kind", "exploit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "#7 exploit: 7b7a4_00001 (score 0.0644032, iteration 4) clones 7b7a4_00000 (score 0.406574, "
        "checkpoint of iteration 4)",
        "#11 exploit: 7b7a4_00001 (score 0.510008, iteration 6) clones 7b7a4_00000 (score 0.526485, "
        "checkpoint of iteration 6)",
        "#15 exploit: 7b7a4_00001 (score 0.590987, iteration 8) clones 7b7a4_00002 (score 0.631691, "
        "checkpoint of iteration 6)"]
    os.chdir(tmp_path)
    assert main(["report", RESTORED, "--no-animation"]) == 0
    report = tmp_path / "ray_restored_async_report.html"
    text = report.read_text()
    assert "Lineage" in text and "Ancestry of the best final trial" in text
    assert "Ray kept no row trained from the cloned state" in text and "only in progress.csv" in text


def test_reading_writes_nothing_into_the_ray_directory(async_copy, tmp_path, capsys):
    def snapshot():
        found = {}
        for folder, dirs, files in os.walk(async_copy):
            for name in dirs + files:
                path = os.path.join(folder, name)
                info = os.stat(path)
                content = None
                if name in files:
                    with open(path, "rb") as handle:
                        content = handle.read()
                found[path] = (info.st_mtime_ns, info.st_mode, content)
        return found

    before = snapshot()
    os.utime(async_copy, None)
    directory_mtime = os.stat(async_copy).st_mtime_ns
    grid = load_results(async_copy)
    vl.lineage(al.run_data(grid))
    os.chdir(tmp_path)
    assert main(["show", async_copy]) == 0 and main(["events", async_copy]) == 0
    assert main(["report", async_copy, "--no-animation"]) == 0
    assert os.path.exists(tmp_path / "async_class_report.html")
    assert snapshot() == before and os.stat(async_copy).st_mtime_ns == directory_mtime


def test_a_booby_trapped_pickle_is_never_loaded(async_copy, tmp_path):
    marker = tmp_path / "trap_sprung"

    class Trap:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    trapped = {"_metric": "Q", "_mode": "max", "_synch": False, "payload": Trap()}
    for path in [os.path.join(async_copy, "tuner.pkl"),
                 *(os.path.join(trial_folder(async_copy, n), name) for n in ("00000", "00002")
                   for name in ("params.pkl", "error.pkl"))]:
        with open(path, "wb") as handle:
            pickle.dump(trapped, handle)
    grid = load_results(async_copy)
    vl.lineage(al.run_data(grid))
    assert not marker.exists()
    assert (grid.experiment["metric"], grid.experiment["mode"]) == ("Q", "max")  # read from the opcodes only
    assert tuner_settings(os.path.join(ASYNC, "tuner.pkl")) == {
        "metric": "Q", "mode": "max", "time_attr": "training_iteration", "perturbation_interval": 2,
        "quantile_fraction": 0.5, "resample_probability": 0.5, "synch": False, "max_failures": 0,
        "perturbation_factors": [1.2, 0.8], "scheduler": "PopulationBasedTraining"}


def test_metric_and_mode_can_be_given(async_copy):
    os.remove(os.path.join(async_copy, "tuner.pkl"))
    unknown = load_results(async_copy)
    assert unknown.experiment["metric"] is None
    assert all(e["target_score"] != e["target_score"] for e in unknown.events_of("exploit"))  # NaN: not known
    given = load_ray_results(async_copy, metric="Q", mode="min")
    assert given.events_of("exploit")[0]["target_score"] == pytest.approx(-0.0644032, abs=1e-7)


@pytest.mark.parametrize("damage, file_pattern, message", [
    ("policy_line", "pbt_global.txt line 2", "PBT policy log is damaged"),
    ("policy_shape", "pbt_global.txt line 3", "not a PBT policy row"),
    ("policy_tag", "pbt_global.txt line 1", "names no trial of this experiment"),
    ("result_line", "result.json line 3", "is damaged"),
    ("csv_line", "progress.csv line 4", "fields, the header has"),
    ("state", "experiment_state-2026-11-29_07-28-33.json line 1", "Ray experiment state is damaged"),
    ("state_shape", "experiment_state-2026-11-29_07-28-33.json line 1", "not a Ray experiment state"),
])
def test_a_damaged_file_is_named_with_its_line(async_copy, damage, file_pattern, message):
    policy = os.path.join(async_copy, "pbt_global.txt")
    lines = read(policy).splitlines()
    state = os.path.join(async_copy, "experiment_state-2026-11-29_07-28-33.json")
    trial = trial_folder(async_copy, "00001")
    if damage == "policy_line":
        lines[1] = lines[1][:40]
    elif damage == "policy_shape":
        lines[2] = json.dumps(json.loads(lines[2])[:4])
    elif damage == "policy_tag":
        lines[0] = lines[0].replace('"1_h0=1.0000"', '"7_h0=1.0000"', 1)
    if damage.startswith("policy"):
        write(policy, "\n".join(lines) + "\n")
    elif damage == "result_line":
        rows = read(os.path.join(trial, "result.json")).splitlines()
        rows[2] = "{not json"
        write(os.path.join(trial, "result.json"), "\n".join(rows) + "\n")
    elif damage == "csv_line":
        rows = read(os.path.join(trial, "progress.csv")).splitlines()
        rows[3] = rows[3] + ",extra"
        write(os.path.join(trial, "progress.csv"), "\n".join(rows) + "\n")
    elif damage == "state":
        write(state, read(state)[:-10])
    else:
        write(state, json.dumps({"trials": []}))
    with pytest.raises(ExperimentError) as raised:
        load_results(async_copy)
    assert file_pattern in str(raised.value) and message in str(raised.value)


def test_a_foreign_directory_is_refused(tmp_path):
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text("[1, 2]")
    with pytest.raises(ExperimentError, match="line 1: not a Ray experiment state"):
        load_results(tmp_path)
    with pytest.raises(ExperimentError, match="no Ray Tune experiment directory"):
        load_ray_results(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExperimentError, match="not a Ray Tune experiment: no experiment_state"):
        load_ray_results(empty)


def test_without_pbt_global_the_lineage_files_give_what_they_kept(async_copy):
    complete = load_results(ASYNC)
    os.remove(os.path.join(async_copy, "pbt_global.txt"))
    grid = load_results(async_copy)
    keys = ("trial_id", "donor", "target_iteration", "donor_iteration", "checkpoint", "donor_config")
    assert [[e[k] for k in keys] for e in grid.events_of("exploit")] == \
        [[e[k] for k in keys] for e in complete.events_of("exploit")]
    assert [e["policy_log"] for e in grid.events_of("exploit")] == ["pbt_policy_7b7a4_00001.txt"] * 3
    (gap,) = grid.events_of("data_gap")
    assert gap["message"].startswith("pbt_global.txt is missing: 3 exploits come from the per-trial")

    policy = os.path.join(async_copy, "pbt_policy_7b7a4_00001.txt")
    write(policy, read(policy).splitlines()[0] + "\n")  # a partial lineage: two exploits are in no file
    partial = load_results(async_copy)
    assert len(partial.events_of("exploit")) == 1
    unlogged = [g["message"] for g in partial.events_of("data_gap") if g["what"] == "exploit not logged"]
    assert unlogged == [
        ("trial 7b7a4_00001 restarted at iteration 7 with a new config, but no policy log row names it "
         "(the policy log is partial)"),
        ("trial 7b7a4_00001 restarted from a state of iteration 6 with a new config, but no policy log row names the "
         "donor (the policy log is partial)")]
    rows = partial.trial("7b7a4_00001").history()
    assert rows[8]["restored_from"] == {"trial_id": None, "checkpoint": None, "iteration": 6, "reason": "exploit"}
    assert vl.lineage(al.run_data(partial)).best_trial == "7b7a4_00001"  # the views still draw what is known


def test_the_older_ray_2_state_layout_reads_the_same(async_copy):
    """Ray 2.0-2.6 kept one JSON string per trial under "checkpoints", with an absolute "logdir" and the
    run metadata (failures, error file) inside the trial record."""
    current = load_results(ASYNC)
    path = os.path.join(async_copy, "experiment_state-2026-11-29_07-28-33.json")
    state = json.loads(read(path))
    older = []
    for trial_json, meta_json in state.pop("trial_data"):
        trial = {**json.loads(trial_json), **json.loads(meta_json)}
        trial["logdir"] = os.path.join("/home/someone/ray_results/async_class", trial.pop("relative_logdir"))
        trial["error_file"] = trial.pop("error_filename")
        older.append(json.dumps(trial))
    state["checkpoints"] = older
    write(path, json.dumps(state))
    grid = load_results(async_copy)
    assert [(r.trial_id, r.status, len(r.history())) for r in grid] == \
        [(r.trial_id, r.status, len(r.history())) for r in current]
    strip = {"time", "name"}  # the copy's folder has another name
    assert [{k: v for k, v in e.items() if k not in strip} for e in grid.events] == \
        [{k: v for k, v in e.items() if k not in strip} for e in current.events]
