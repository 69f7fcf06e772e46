"""PopulationBasedTrainingReplay reproduces a winner's schedule exactly, from pbtlab's log and Ray's policy file."""

from __future__ import annotations

import json
import os

import pytest

from pbtlab.analysis.lineage import best_trial, hyperparameter_schedule, run_data
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.errors import ConfigError
from pbtlab.examples.runs import run_toy_pbt
from pbtlab.examples.toy import train_func
from pbtlab.schedulers import PopulationBasedTrainingReplay
from pbtlab.tuner import Tuner

PARAMS = ["lr", "h0", "h1"]


@pytest.fixture(scope="module")
def pbt_run(tmp_path_factory):
    """A seeded 4-trial PBT run of the tutorial's toy (deterministic: same config and state, same Q)."""
    results = run_toy_pbt(population=4, seed=0, iterations=20, storage_path=str(tmp_path_factory.mktemp("pbt")),
                          name="source")
    return results.experiment_path


def replay(path, scheduler, iterations=20):
    results = Tuner(train_func, param_space={}, tune_config=TuneConfig(metric="Q", mode="max", seed=0,
                                                                       scheduler=scheduler),
                    run_config=RunConfig(storage_path=str(path), name="replay", stop={"training_iteration": iterations},
                                         verbose=0)).fit()
    (result,) = list(results)
    return results, list(result.history())


def events_of(results, kind):
    with open(os.path.join(results.experiment_path, "events.jsonl")) as f:
        return [e for e in map(json.loads, f) if e["event"] == kind]


def test_replay_of_a_pbtlab_run_reproduces_the_winners_schedule_and_scores(pbt_run, tmp_path):
    run = run_data(pbt_run)
    schedule = hyperparameter_schedule(run, params=PARAMS)
    assert len(schedule.switches) >= 2  # the winner's ancestry changed config at least twice
    results, rows = replay(tmp_path, PopulationBasedTrainingReplay(pbt_run))
    assert [r["training_iteration"] for r in rows] == list(schedule.iterations)
    for param in PARAMS:
        assert tuple(r["config"][param] for r in rows) == schedule.values[param]
    # the toy is deterministic, so the replayed trial retraces the winner's scores exactly
    winner = best_trial(run)
    assert rows[-1]["Q"] == winner.final_row["Q"]
    explores = events_of(results, "explore")
    assert [e["iteration"] for e in explores] == [switch - 1 for switch, _ in schedule.switches]
    assert all(e["donor"] is None and {c["op"] for c in e["changes"]} == {"replay"} for e in explores)
    # the report at 20 met the stop criterion, so the scheduler last saw 19 (the contract: no call after a stop)
    assert events_of(results, "experiment_end")[0]["scheduler"] == \
        f"PopulationBasedTraining replay: Step 19, perturb {len(explores)}"


def test_replay_of_the_winners_policy_file_matches_the_event_log(pbt_run):
    winner = best_trial(run_data(pbt_run)).trial_id
    from_file = PopulationBasedTrainingReplay(os.path.join(pbt_run, f"pbt_policy_{winner}.txt"))
    from_log = PopulationBasedTrainingReplay(pbt_run, trial=winner)
    assert (from_file.initial_config, from_file.schedule) == (from_log.initial_config, from_log.schedule)


def test_replay_of_a_ray_policy_file(tmp_path):
    a = {"lr": 0.05, "h0": 0.0, "h1": 1.0, "checkpoint_interval": 4}
    b = {**a, "lr": 0.02, "h0": 0.5}
    c = {**a, "lr": 0.08, "h1": 0.25}
    other = {**a, "lr": 0.3}
    policy = tmp_path / "pbt_policy_abc_00003.txt"
    lines = [
        ["5_x", "4_y", 4, 4, other, other],  # an exploit outside the chain: Ray's reader stops before it
        ["2_h0=0.5", "0_h0=0.0", 4, 4, a, b],
        ["3_h0=1.0", "2_h0=0.5", 8, 8, b, c],
    ]
    policy.write_text("".join(json.dumps(line) + "\n" for line in lines))
    scheduler = PopulationBasedTrainingReplay(str(policy))
    assert scheduler.initial_config == a and scheduler.schedule == [(4, b), (8, c)]
    results, rows = replay(tmp_path, scheduler, iterations=12)
    expected = [a] * 4 + [b] * 4 + [c] * 4
    assert [r["training_iteration"] for r in rows] == list(range(1, 13))
    assert [{k: r["config"][k] for k in a} for r in rows] == expected
    restarts = [e for e in events_of(results, "trial_start") if e["reason"] == "explore"]
    assert [(e["iteration"], e["config"]["lr"]) for e in restarts] == [(4, 0.02), (8, 0.08)]
    assert [[(c["param"], c["old"], c["new"]) for c in e["changes"]] for e in events_of(results, "explore")] == [
        [("h0", 0.0, 0.5), ("lr", 0.05, 0.02)], [("h0", 0.5, 0.0), ("h1", 1.0, 0.25), ("lr", 0.02, 0.08)]]


def test_replay_resumes_from_its_description_and_state(tmp_path):
    policy = tmp_path / "pbt_policy_t.txt"
    policy.write_text(json.dumps(["1_b", "0_a", 3, 3, {"lr": 0.1}, {"lr": 0.2}]) + "\n")
    scheduler = PopulationBasedTrainingReplay(str(policy))
    scheduler.on_trial_add("t", {}, "t")
    rebuilt = PopulationBasedTrainingReplay.from_description(json.loads(json.dumps(scheduler.describe())))
    rebuilt.load_state_dict(json.loads(json.dumps(scheduler.state_dict())))
    policy.unlink()  # the schedule travels in experiment.json: the file is no longer needed
    assert rebuilt.describe() == scheduler.describe() and rebuilt.schedule == [(3, {"lr": 0.2})]
    assert rebuilt.state_dict() == scheduler.state_dict()


def test_replay_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        PopulationBasedTrainingReplay(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match="line 1: expected"):
        PopulationBasedTrainingReplay(str(bad))
    bad.write_text("not json\n")
    with pytest.raises(ConfigError, match="line 1: not JSON"):
        PopulationBasedTrainingReplay(str(bad))
    with pytest.raises(ConfigError, match="policy_file must be a path"):
        PopulationBasedTrainingReplay(3)  # type: ignore[arg-type]
    good = tmp_path / "good.txt"
    good.write_text(json.dumps(["1_b", "0_a", 3, 3, {"lr": 0.1}, {"lr": 0.2}]) + "\n")
    scheduler = PopulationBasedTrainingReplay(str(good))
    scheduler.on_trial_add("t0", {}, "t0")
    with pytest.raises(ConfigError, match="trains one trial"):
        scheduler.on_trial_add("t1", {}, "t1")
