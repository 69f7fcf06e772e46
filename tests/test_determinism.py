"""Same seed -> the same event log (but wall-clock fields), results and final configs; another seed differs."""

from __future__ import annotations

import os

import pytest

import tutorial_code as tc
from run_files import read_jsonl, strip_wall_clock

from pbtlab.examples.runs import run_toy_pbt
from pbtlab.rundir.store import is_wall_clock_field


def _snapshot(results):
    """Everything a run wrote that must not depend on the clock."""
    path = results.experiment_path
    events = [strip_wall_clock(e) for e in read_jsonl(os.path.join(path, "events.jsonl"))]
    rows = {r.trial_id: [strip_wall_clock(row) for row in read_jsonl(os.path.join(r.path, "result.jsonl"))]
            for r in results}
    finals = [(r.trial_id, r.status, r.config, strip_wall_clock(r.metrics)) for r in results]
    with open(os.path.join(path, "pbt_global.txt"), encoding="utf-8") as handle:
        policy = handle.read()
    checkpoints = {r.trial_id: sorted(d for d in os.listdir(r.path) if d.startswith("checkpoint_")) for r in results}
    return events, rows, finals, policy, checkpoints


def test_is_wall_clock_field():
    for key in ("time", "timestamp", "time_total_s", "time_this_iter_s", "time_since_restore", "date"):
        assert is_wall_clock_field(key)
    for key in ("seq", "event", "trial_id", "training_iteration", "Q", "config", "donor_score", "checkpoint"):
        assert not is_wall_clock_field(key)


@pytest.mark.parametrize("synch", [True, False], ids=["synch", "async"])
def test_same_seed_same_everything(tmp_path, synch):
    a = run_toy_pbt(population=4, seed=7, synch=synch, storage_path=str(tmp_path / "a"), name="run")
    b = run_toy_pbt(population=4, seed=7, synch=synch, storage_path=str(tmp_path / "b"), name="run")
    snap_a, snap_b = _snapshot(a), _snapshot(b)
    assert snap_a[0] == snap_b[0]  # events
    assert snap_a[1] == snap_b[1]  # every result row
    assert snap_a[2] == snap_b[2]  # final configs and metrics
    assert snap_a[3] == snap_b[3]  # pbt_global.txt
    assert snap_a[4] == snap_b[4]  # checkpoint directories
    # the snapshot is not trivially empty
    assert len([e for e in snap_a[0] if e["event"] == "exploit"]) > 10
    # only wall-clock fields were dropped: the raw events agree key for key
    raw_a = read_jsonl(os.path.join(a.experiment_path, "events.jsonl"))
    raw_b = read_jsonl(os.path.join(b.experiment_path, "events.jsonl"))
    assert [sorted(e) for e in raw_a] == [sorted(e) for e in raw_b]


def test_tutorial_code_same_seed_same_events(tmp_path):
    """The tutorial's code as written (default experiment names, which carry a timestamp)."""
    a, sa = tc.run_pbt_2(seed=3, storage_path=str(tmp_path / "a"), verbose=0)
    b, sb = tc.run_pbt_2(seed=3, storage_path=str(tmp_path / "b"), verbose=0)
    ea, eb = _snapshot(a)[0], _snapshot(b)[0]
    for events in (ea, eb):
        events[0].pop("name")  # train_func_<date-time>
    assert ea == eb
    assert strip_wall_clock(sa.state_dict()) == strip_wall_clock(sb.state_dict())  # checkpoint refs carry time_total_s
    assert [r.config for r in a] == [r.config for r in b]
    assert [r.metrics["Q"] for r in a] == [r.metrics["Q"] for r in b]


def test_another_seed_makes_other_decisions(tmp_path):
    a = run_toy_pbt(population=4, seed=1, storage_path=str(tmp_path / "a"), name="run")
    b = run_toy_pbt(population=4, seed=2, storage_path=str(tmp_path / "b"), name="run")
    # the 4-trial run samples lr, so the starting configs differ too
    assert [e["config"]["lr"] for e in a.events_of("trial_add")] != [e["config"]["lr"] for e in b.events_of("trial_add")]
    changes_a = [e["changes"] for e in a.events_of("explore")]
    changes_b = [e["changes"] for e in b.events_of("explore")]
    assert changes_a != changes_b
    assert [r.config for r in a] != [r.config for r in b]


def test_another_seed_same_start_other_decisions(tmp_path):
    """The 2-trial run starts from fixed configs: only the scheduler's choices can differ."""
    a = run_toy_pbt(population=2, seed=1, storage_path=str(tmp_path / "a"), name="run")
    b = run_toy_pbt(population=2, seed=2, storage_path=str(tmp_path / "b"), name="run")
    assert [e["config"] for e in a.events_of("trial_add")] == [e["config"] for e in b.events_of("trial_add")]
    ops_a = [[(c["param"], c["op"], c["new"]) for c in e["changes"]] for e in a.events_of("explore")]
    ops_b = [[(c["param"], c["op"], c["new"]) for c in e["changes"]] for e in b.events_of("explore")]
    assert ops_a != ops_b


def test_synch_decisions_do_not_depend_on_concurrency(tmp_path):
    """Synchronous PBT decides at barriers only, so the slot count changes the order of reports, not decisions."""
    from pbtlab import Tuner, TuneConfig, tune
    from pbtlab.examples.runs import toy_scheduler
    from pbtlab.examples.toy import train_func

    def decisions(max_concurrent, path):
        results = Tuner(train_func, param_space={
            "lr": tune.qloguniform(5e-3, 1e-1, 5e-4), "h0": tune.grid_search([0.0, 1.0, 0.01, 0.99]),
            "h1": tune.sample_from(lambda spec: 1 - spec.config["h0"]), "checkpoint_interval": 4},
            tune_config=TuneConfig(metric="Q", mode="max", seed=5, max_concurrent_trials=max_concurrent,
                                   scheduler=toy_scheduler(4, True)),
            run_config=tune.RunConfig(stop={"training_iteration": 40}, storage_path=str(path), verbose=0)).fit()
        return ([strip_wall_clock(e) for e in results.events_of("exploit")],
                [strip_wall_clock(e) for e in results.events_of("explore")],
                [(r.config, r.metrics["Q"]) for r in results])

    full = decisions(None, tmp_path / "a")
    assert len(full[0]) == 18  # 9 barriers x 2 losers
    assert decisions(1, tmp_path / "b") == full
    assert decisions(3, tmp_path / "c") == full
