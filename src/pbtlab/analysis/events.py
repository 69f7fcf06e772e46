"""One readable line per event record: what ``pbtlab events`` prints and the HTML report's event log shows.

    >>> format_event({"seq": 3, "event": "forced_start", "time": 0.0, "trial_id": "t0"})
    '#3 forced_start: trial_id=t0'
    >>> describe_event({"seq": 5, "event": "explore", "time": 0.0, "trial_id": "t1", "donor": None,
    ...                 "iteration": 4, "target_iteration": 4, "new_config": {"lr": 0.012},
    ...                 "changes": [{"param": "lr", "old": 0.01, "op": "*1.2", "new": 0.012}]})
    't1 (explore only: own weights): lr: 0.01 --(*1.2)--> 0.012'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pbtlab.errors import ExperimentError
from pbtlab.progress import format_cell
from pbtlab.rundir.records import EventKind, Exploit, Explore, event_from_dict

__all__ = ["describe_event", "format_event", "format_field", "HIDDEN_FIELDS", "SCHEDULER_NOTES"]

#: Fields left out of the generic ``key=value`` line: the kind and sequence (shown apart), the wall
#: clock, and the long ones (tracebacks, whole configs).
HIDDEN_FIELDS = frozenset({"seq", "event", "time", "traceback", "config", "old_config", "donor_config", "new_config"})


#: Early-stopping decisions, described by the sentence the scheduler wrote (``message``).
SCHEDULER_NOTES = frozenset({EventKind.RUNG_REACHED.value, EventKind.RUNG_PROMOTED.value,
                             EventKind.RUNG_STOPPED.value, EventKind.MEDIAN_STOPPED.value})


def format_field(value: Any) -> str:
    """A value as shown in an event line: floats to 6 significant digits, containers as JSON.

        >>> format_field(0.123456789), format_field(None), format_field({"a": 1}), format_field(float("nan"))
        ('0.123457', '', '{"a": 1}', 'nan')
    """
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return format_cell(value)


def _typed(event: Mapping[str, Any]) -> Exploit | Explore | None:
    """The exploit or explore record as its dataclass, or None (another kind, or fields missing)."""
    if event.get("event") not in (EventKind.EXPLOIT, EventKind.EXPLORE):
        return None
    try:
        record = event_from_dict({"time": 0.0, **event})
    except (ExperimentError, TypeError):
        return None
    return record if isinstance(record, (Exploit, Explore)) else None


def describe_event(event: Mapping[str, Any]) -> str:
    """The details of an event record, in one line (plain text; escape it before putting it in HTML)."""
    record = _typed(event)
    if isinstance(record, Exploit):
        where = f"checkpoint of iteration {record.donor_iteration}"
        if where not in str(record.checkpoint):  # Ray class trainables' checkpoints have no folder name of their own
            where += f": {record.checkpoint}"
        return (f"{record.trial_id} (score {format_field(record.target_score)}, iteration {record.target_iteration}) "
                f"clones {record.donor} (score {format_field(record.donor_score)}, {where})")
    if isinstance(record, Explore):
        changes = "; ".join(f"{c.get('param')}: {format_field(c.get('old'))} --({c.get('op')})--> "
                            f"{format_field(c.get('new'))}" for c in record.changes)
        who = "" if record.donor is not None else " (explore only: own weights)"
        return f"{record.trial_id}{who}: {changes or 'no change'}"
    if event.get("event") in SCHEDULER_NOTES and isinstance(event.get("message"), str):
        return str(event["message"])  # the scheduler's own sentence: trial, rung, score and cutoff
    return ", ".join(f"{k}={format_field(v)}" for k, v in event.items() if k not in HIDDEN_FIELDS)


def format_event(event: Mapping[str, Any]) -> str:
    """``#<seq> <kind>: <details>``: one line of ``pbtlab events``."""
    return f"#{event.get('seq')} {event.get('event')}: {describe_event(event)}"
