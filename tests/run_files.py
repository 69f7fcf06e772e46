"""Reading a run directory's files in tests: JSON lines, and records without their wall-clock fields."""

from __future__ import annotations

import json
from typing import Any

from pbtlab.rundir.store import is_wall_clock_field


def read_jsonl(path: Any) -> list[dict[str, Any]]:
    """The records of a ``.jsonl`` file (blank lines skipped)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def strip_wall_clock(value: Any) -> Any:
    """``value`` without wall-clock fields at any depth, so that two seeded runs compare equal."""
    if isinstance(value, dict):
        return {k: strip_wall_clock(v) for k, v in value.items() if not is_wall_clock_field(k)}
    if isinstance(value, list):
        return [strip_wall_clock(v) for v in value]
    return value


def assert_rows_continue(rows: list[dict[str, Any]], iterations: int) -> None:
    """A trial's rows after crashes and resumes: they reach ``iterations``, and each row follows the one before it,
    or the iteration its ``restored_from`` names (an exploit or explore restarts from the donor's checkpoint)."""
    assert rows[-1]["training_iteration"] == iterations
    assert all(row["step"] == row["training_iteration"] for row in rows)
    for previous, row in zip(rows, rows[1:]):
        marker = row.get("restored_from")
        if marker is None or marker["reason"] == "resume":
            assert row["training_iteration"] == previous["training_iteration"] + 1
        else:
            assert row["training_iteration"] == marker["iteration"] + 1
