"""Recorded decisions: seeded runs must write what they wrote before the engine was reorganised.

Each scenario (sync/async PBT with 2 and 4 trials, a run with failures, a run killed and resumed)
is compared with its golden file: every event but wall-clock fields, every result row, each
trial's final config. See ``tests/golden/scenarios.py`` for when to regenerate them.
"""

from __future__ import annotations

import pytest

from golden.scenarios import SCENARIOS, read_golden, run_scenario


def explained(events):
    """The differences from the golden files that a fix of issue 8 explains (each named here)."""
    out = []
    for event in events:
        event = dict(event)
        if event["event"] == "experiment_start":
            # describe() records the scheduler's own class, so a subclass resumes as itself.
            event["scheduler"] = {k: v for k, v in event["scheduler"].items() if k != "class"}
        if event["event"] == "experiment_resume":
            # dropped_rows held the rows kept; it now counts the rows dropped (compared in its own test).
            event.pop("dropped_rows")
        out.append(event)
    return out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_seeded_run_matches_its_golden_file(tmp_path, name):
    got = run_scenario(name, str(tmp_path))
    want = read_golden(name)
    got["events"], want["events"] = explained(got["events"]), explained(want["events"])
    assert got["finals"] == want["finals"]
    assert len(got["events"]) == len(want["events"])
    for index, (a, b) in enumerate(zip(got["events"], want["events"])):
        assert a == b, f"event {index} differs"
    assert got["rows"].keys() == want["rows"].keys()
    for trial_id in want["rows"]:
        assert got["rows"][trial_id] == want["rows"][trial_id], f"rows of {trial_id} differ"
    assert any(e["event"] == "exploit" for e in want["events"])
