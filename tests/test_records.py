"""records.py: the one schema. Every event kind round-trips, bad records are refused, the docs match."""

from __future__ import annotations

import dataclasses
import os

import pytest

from pbtlab.errors import ExperimentError
from pbtlab.rundir.records import (
    EVENT_TYPES,
    EventKind,
    ExperimentSpec,
    RunState,
    event_from_dict,
    schema_markdown,
)

DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "architecture.md")


def sample(cls):
    values = {}
    for field in dataclasses.fields(cls):
        values[field.name] = {"seq": 3, "time": 1.5}.get(field.name, f"value of {field.name}")
    return cls(**values)


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_kind_round_trips_through_json(kind):
    record = sample(EVENT_TYPES[kind])
    data = record.to_dict()
    assert list(data)[:3] == ["seq", "event", "time"] and data["event"] == kind.value
    assert event_from_dict(data) == record


def test_unknown_kinds_and_missing_fields_are_refused_with_the_place():
    with pytest.raises(ExperimentError, match=r"events.jsonl line 4: unknown event kind 'nope'"):
        event_from_dict({"seq": 0, "event": "nope", "time": 0}, "events.jsonl line 4")
    with pytest.raises(ExperimentError, match=r"a 'trial_add' record lacks \['config', 'tag'\]"):
        event_from_dict({"seq": 0, "event": "trial_add", "time": 0, "trial_id": "t"})


def test_experiment_spec_fills_settings_added_later_and_refuses_foreign_files():
    spec = ExperimentSpec.from_dict({"name": "r", "seed": 1, "scheduler": {"type": "FIFOScheduler"},
                                     "trial_ids": ["a"]})
    assert (spec.time_budget_s, spec.fail_fast, spec.progress_interval_s) == (None, False, 5.0)
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ExperimentError, match=r"not a pbtlab experiment.json \(missing \['seed', 'scheduler'"):
        ExperimentSpec.from_dict({"name": "x", "trial_ids": []})


def test_run_state_checks_its_version():
    state = RunState(trials=[], scheduler={}, next_seq=0, rows_written={}, events_written=0, saved_at=0.0)
    assert RunState.from_dict(state.to_dict()) == state
    with pytest.raises(ExperimentError, match="format version 99"):
        RunState.from_dict({**state.to_dict(), "format_version": 99})


def test_architecture_doc_has_the_generated_event_table():
    with open(DOCS, encoding="utf-8") as handle:
        assert schema_markdown() in handle.read(), "regenerate it with pbtlab.rundir.records.schema_markdown()"
