"""The pbtlab command: toy, show, events (called through pbtlab.cli.main, output captured)."""

from __future__ import annotations

import json
import os

import pytest

from pbtlab.cli import main


@pytest.fixture
def toy_run(storage, capsys):
    assert main(["toy", "--storage", storage, "--name", "toy", "--quiet"]) == 0
    out = capsys.readouterr().out
    return os.path.join(storage, "toy"), out


def test_toy_runs_the_tutorials_2_trial_pbt(toy_run):
    path, out = toy_run
    lines = out.splitlines()
    assert lines[0] == "== Status ==  PopulationBasedTraining: 24 checkpoints, 24 perturbs  |  2 TERMINATED"
    assert lines[1].split() == ["Trial", "name", "status", "h0", "h1", "lr", "iter", "total", "time", "(s)", "Q",
                                "theta0", "theta1"]
    rows = [line.split() for line in lines[3:5]]
    assert [r[1] for r in rows] == ["TERMINATED", "TERMINATED"]
    assert [r[5] for r in rows] == ["100", "100"]
    assert all(float(r[7]) >= 1.19 for r in rows)
    assert lines[-1] == f"Results in {path}"
    assert os.path.exists(os.path.join(path, "events.jsonl"))


def test_toy_options(storage, capsys):
    assert main(["toy", "--storage", storage, "--name", "t4", "--population", "4", "--iterations", "20",
                 "--interval", "5", "--async", "--seed", "3", "--quiet"]) == 0
    capsys.readouterr()
    with open(os.path.join(storage, "t4", "experiment.json"), encoding="utf-8") as handle:
        exp = json.load(handle)
    assert len(exp["trial_ids"]) == 4 and exp["seed"] == 3 and exp["stop"] == {"training_iteration": 20}
    assert exp["scheduler"]["synch"] is False and exp["scheduler"]["perturbation_interval"] == 5


def test_show(toy_run, capsys):
    path, _ = toy_run
    assert main(["show", path]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"Experiment toy  ({path})"
    assert lines[1].split() == ["trainable", "train_func", "seed", "0", "metric", "Q", "(max)", "executor", "inprocess"]
    assert "Trials" in lines
    table = lines[lines.index("Trials") + 1:]
    assert table[0].split() == ["trial", "status", "iter", "h0", "h1", "lr", "Q"]
    assert [row.split()[1:3] for row in table[2:4]] == [["TERMINATED", "100"], ["TERMINATED", "100"]]
    assert lines[-1] == ("Events: experiment_end 1, experiment_start 1, exploit 24, explore 24, trial_add 2, "
                         "trial_complete 2, trial_restore 24, trial_start 26")


def test_events(toy_run, capsys):
    path, _ = toy_run
    assert main(["events", path, "--kind", "exploit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 24
    with open(os.path.join(path, "events.jsonl"), encoding="utf-8") as handle:
        exploits = [e for e in map(json.loads, handle) if e["event"] == "exploit"]
    for line, e in zip(lines, exploits):
        assert line == (f"#{e['seq']} exploit: {e['trial_id']} (score {e['target_score']:.6g}, iteration "
                        f"{e['target_iteration']}) clones {e['donor']} (score {e['donor_score']:.6g}, "
                        f"checkpoint of iteration {e['donor_iteration']}: {e['checkpoint']})")


def test_events_explore_lines_and_json(toy_run, capsys):
    path, _ = toy_run
    assert main(["events", path, "--kind", "explore", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 24 and {r["event"] for r in records} == {"explore"}
    assert main(["events", path, "--kind", "explore"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    def shown(value):  # floats to 6 significant digits, as in the status table
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    changes = "; ".join(f"{c['param']}: {shown(c['old'])} --({c['op']})--> {shown(c['new'])}"
                        for c in records[0]["changes"])
    assert first == f"#{records[0]['seq']} explore: {records[0]['trial_id']}: {changes}"
    assert main(["events", path]) == 0
    everything = capsys.readouterr().out.splitlines()
    assert len(everything) == 104
    assert everything[-1].startswith("#103 experiment_end: scheduler=PopulationBasedTraining: 24 checkpoints, 24 perturbs")


def test_errors_are_reported_not_raised(tmp_path, capsys):
    missing = str(tmp_path / "nothing")
    assert main(["show", missing]) == 2
    assert capsys.readouterr().err == f"pbtlab: error: no experiment directory at {missing}\n"
    assert main(["events", missing]) == 2
    with pytest.raises(SystemExit) as info:
        main(["toy", "--population", "0"])
    assert info.value.code == 2
    assert "expected a number >= 1, got 0" in capsys.readouterr().err
