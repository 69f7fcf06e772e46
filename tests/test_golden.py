"""Recorded decisions: seeded runs must write what they wrote before the engine was reorganised.

Each scenario (sync/async PBT with 2 and 4 trials, a run with failures, a run killed and resumed)
is compared with its golden file: every event but wall-clock fields, every result row, each
trial's final config. See ``tests/golden/scenarios.py`` for when to regenerate them.
"""

from __future__ import annotations

import pytest

from golden.scenarios import SCENARIOS, read_golden, run_scenario


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_seeded_run_matches_its_golden_file(tmp_path, name):
    got = run_scenario(name, str(tmp_path))
    want = read_golden(name)
    assert got["finals"] == want["finals"]
    assert len(got["events"]) == len(want["events"])
    for index, (a, b) in enumerate(zip(got["events"], want["events"])):
        assert a == b, f"event {index} differs"
    assert got["rows"].keys() == want["rows"].keys()
    for trial_id in want["rows"]:
        assert got["rows"][trial_id] == want["rows"][trial_id], f"rows of {trial_id} differ"
    assert any(e["event"] == "exploit" for e in want["events"])
