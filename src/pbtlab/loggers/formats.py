"""How the default loggers' derived files are written: progress.csv rows and TensorBoard scalar events.

Shared by the loggers (``pbtlab.loggers``) and the helper process that writes for them in large runs
(``pbtlab.loggers.offload``), so both write the same bytes.

    >>> list(_csv_values([{"a": 1, "b": [1, 2]}], ["a", "b"]))
    [[1, '[1, 2]']]
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pbtlab.loggers._tbx import EventFileWriter
from pbtlab.nested import flatten

__all__ = [
    "add_tensorboard_rows", "append_csv", "event_writer", "flat_rows", "FloatText", "PROGRESS_CSV", "SharedRows",
    "tensorboard_clock", "tensorboard_rows",
]

PROGRESS_CSV = "progress.csv"


class FloatText(str):
    """A float read from a row's JSON line, kept as its text there: ``repr`` of the float, which is what ``str``
    gives and so what progress.csv writes, without formatting it again. TensorBoard takes ``float()`` of it."""

    __slots__ = ()


_LINE_DECODER = json.JSONDecoder(parse_float=FloatText)  # NaN and infinities stay floats: 'nan', 'inf' in CSV


def flat_rows(rows: list[Any]) -> list[dict[str, Any]]:
    """The flat rows of what a logger keeps: a row's JSON line (a str; its finite floats as :class:`FloatText`),
    the store's snapshot of it (with its ``config``), or a row already flattened (flattening it again gives the
    same columns).

        >>> flat_rows([{"a": 1}, '{"c": {"d": 5.0}}', {"e": {"f": 6}}])
        [{'a': 1}, {'c/d': '5.0'}, {'e/f': 6}]
    """
    return [_flat_row(row) for row in rows]


def _flat_row(row: Any) -> dict[str, Any]:
    """One row of :func:`flat_rows`."""
    return flatten(_LINE_DECODER.decode(row) if type(row) is str else row)


class SharedRows:
    """:func:`flat_rows` for two writers that get the same lines (progress.csv and TensorBoard, in the loggers'
    helper): each line is read once, by whichever writer comes first, and handed to the other.

        >>> shared = SharedRows()
        >>> first, again = shared.flat_rows(['{"a": 1}']), shared.flat_rows(['{"a": 1}'])
        >>> first[0] is again[0], shared.held
        (True, 0)
    """

    #: Lines read for one writer and not yet asked for by the other, at most; beyond that they are let go (one
    #: writer alone, e.g. TensorBoard written by the driver), and would be read again.
    LIMIT = 32768

    def __init__(self) -> None:
        self._read: dict[str, dict[str, Any]] = {}

    @property
    def held(self) -> int:
        return len(self._read)

    def flat_rows(self, rows: list[Any]) -> list[dict[str, Any]]:
        read, out = self._read, []
        for row in rows:
            if type(row) is not str:
                out.append(_flat_row(row))
                continue
            flat = read.pop(row, None)
            if flat is None:
                if len(read) >= self.LIMIT:
                    read.clear()
                flat = read[row] = _flat_row(row)
            out.append(flat)
        return out


def tensorboard_rows(rows: list[Any]) -> list[tuple[int, float, dict[str, Any]]]:
    """``(training_iteration, timestamp, flat row)`` for each row a TensorBoard logger keeps: such a tuple already,
    or anything :func:`flat_rows` takes.

        >>> tensorboard_rows(['{"training_iteration": 2, "timestamp": 7, "loss": 0.5}'])
        [(2, 7.0, {'training_iteration': 2, 'timestamp': 7, 'loss': '0.5'})]
    """
    out = []
    for row in rows:
        if type(row) is tuple:
            out.append(row)
        else:
            flat = _flat_row(row)
            out.append((*tensorboard_clock(flat), flat))
    return out


def append_csv(directory: str, header: list[str], new_file: bool, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (flat rows) to ``directory/progress.csv`` in ``header``'s columns, after the header
    line when ``new_file``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if new_file:
        writer.writerow(header)
    writer.writerows(_csv_values(rows, header))
    with open(os.path.join(directory, PROGRESS_CSV), "a", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())


def _csv_values(rows: list[dict[str, Any]], header: list[str]) -> Iterator[Sequence[Any]]:
    """Each row's cells in ``header``'s order, as ``csv.DictWriter(header, extrasaction="ignore")`` would write
    them: a missing column is empty, an extra one is left out, a list or tuple is written as JSON. A row with
    the header's columns in its order (nearly every row) is taken as it is."""
    columns = tuple(header)
    for row in rows:
        values: Sequence[Any] = tuple(row.values()) if tuple(row) == columns else [row.get(k, "") for k in header]
        kinds = set(map(type, values))
        if not kinds <= _SCALAR_TYPES and any(issubclass(kind, (list, tuple)) for kind in kinds):
            values = [json.dumps(_as_floats(value)) if isinstance(value, (list, tuple)) else value for value in values]
        yield values


def _as_floats(value: Any) -> Any:
    """``value`` with each :class:`FloatText` inside it (a list read from a JSON line) the float it stands for.

        >>> _as_floats([1, FloatText("2.5"), {"a": [FloatText("0.1")]}])
        [1, 2.5, {'a': [0.1]}]
    """
    kind = type(value)
    if kind is FloatText:
        return float(value)
    if kind is list or kind is tuple:
        return [_as_floats(item) for item in value]
    if kind is dict:
        return {key: _as_floats(item) for key, item in value.items()}
    return value


_SCALAR_TYPES = frozenset({float, int, str, bool, type(None), FloatText})


def tensorboard_clock(row: Mapping[str, Any]) -> tuple[int, float]:
    """A row's TensorBoard step and wall time: its ``training_iteration`` and ``timestamp`` (a result row or
    its flat row: both are top-level fields).

        >>> tensorboard_clock({"training_iteration": 3, "timestamp": 1700000000, "loss": 0.5})
        (3, 1700000000.0)
    """
    return int(row.get("training_iteration", 0)), float(row.get("timestamp") or 0)


def event_writer(writers: dict[str, EventFileWriter], directory: str) -> EventFileWriter:
    """The event file of ``directory`` in ``writers``, started (tensorboardX's name) the first time."""
    writer = writers.get(directory)
    if writer is None:
        writer = writers[directory] = EventFileWriter(os.path.join(directory, "events"))
    return writer


def add_tensorboard_rows(writer: EventFileWriter, rows: list[tuple[int, float, dict[str, Any]]]) -> None:
    """Add one scalar event per row, ``(training_iteration, timestamp, flat row)``, to ``writer`` (unwritten
    until it is flushed)."""
    plans: dict[tuple[tuple[str, ...], tuple[type, ...]], tuple[tuple[int, ...], tuple[str, ...]]] = {}
    for step, stamp, flat in rows:
        values = tuple(flat.values())
        shape = (tuple(flat), tuple(map(type, values)))  # rows of a trial share their columns and types
        plan = plans.get(shape)
        if plan is None:
            plan = plans[shape] = _scalar_plan(*shape)
        positions, tags = plan
        writer.add_row(step, stamp, tags, [float(values[i]) for i in positions])


def _scalar_plan(keys: tuple[str, ...], kinds: tuple[type, ...]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Which columns of a flat row TensorBoard gets (numbers, not bools, not ``config/...``) and their tags.

        >>> _scalar_plan(("loss", "done", "config/lr", "name", "acc"), (float, bool, float, str, FloatText))
        ((0, 4), ('ray/tune/loss', 'ray/tune/acc'))
    """
    positions = tuple(i for i, (key, kind) in enumerate(zip(keys, kinds))
                      if (kind is FloatText or kind is not bool and issubclass(kind, (int, float)))
                      and not key.startswith("config/"))
    return positions, tuple(f"ray/tune/{keys[i]}" for i in positions)
