"""The experiment directory: what a run writes, and reading it back.

Layout (paths inside are relative to the experiment directory, so a run can be moved)::

    <storage_path>/<name>/
        experiment.json        settings: name, seed, metric, mode, scheduler, param_space, trial ids
        events.jsonl           every decision and trial life-cycle event, one JSON object a line
        state.json             each trial's recovery point and the scheduler's state, for resuming
        pbt_global.txt         Ray-compatible policy log (when the PBT scheduler has log_config)
        <trial_id>/params.json     the trial's starting config
        <trial_id>/result.jsonl    every report of the trial, one JSON object a line
        <trial_id>/checkpoint_000003/   the trial's checkpoints, as the trainable wrote them

Writes are buffered and flushed together with ``state.json``; a file is replaced atomically
(written to a temporary name, then renamed), so a crash never leaves half a state behind. While the loggers'
helper process runs (large runs) and ``PBTLAB_ROW_WRITER=1`` is set, it encodes and appends the result rows
(:class:`RowWriter`), and ``state.json`` is written only once it has confirmed every row the state counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import numpy as np

from pbtlab.errors import ExperimentError
from pbtlab.nested import flatten

__all__ = [
    "dumps", "EVENTS_FILE", "EXPERIMENT_FILE", "ExperimentStore", "inside_run", "is_wall_clock_field",
    "is_plain_row", "iter_jsonl", "json_default", "line_cut", "PARAMS_FILE", "plain_snapshot", "read_json",
    "RESULT_FILE",
    "RowWriter", "STATE_FILE", "truncate_lines", "write_json_atomic",
]

EXPERIMENT_FILE = "experiment.json"
EVENTS_FILE = "events.jsonl"
STATE_FILE = "state.json"
RESULT_FILE = "result.jsonl"
PARAMS_FILE = "params.json"


def json_default(value: Any) -> Any:
    """Make numpy scalars/arrays and other objects JSON-friendly."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return value.item()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


#: One encoder for every line (``json.dumps`` with ``default=`` builds a new one per call).
_LINE_ENCODER = json.JSONEncoder(default=json_default)

try:  # the C encoder _LINE_ENCODER.encode makes at every call, made once (about 1.5 µs of a row's 7)
    from _json import encode_basestring_ascii as _c_escape
    from _json import make_encoder as _c_make_encoder
except ImportError:  # pragma: no cover - CPython always has _json
    _C_LINE_ENCODER = None
else:  # the same settings; no markers: a circular value recurses, and _LINE_ENCODER then names the error
    _C_LINE_ENCODER = _c_make_encoder(None, json_default, _c_escape, None, ": ", ", ", False, False, True)


_LAST_ROW: list[Any] = [None, None]  # the result row last appended to a result.jsonl, and what the store kept


def last_result_item() -> tuple[Mapping[str, Any] | None, str | dict[str, Any] | None]:
    """The result row the store took last, and what it kept of it: the row's line in ``result.jsonl``, or (while
    a :class:`RowWriter` encodes the rows) its :func:`plain_snapshot`. A logger that receives a copy of that row
    can hand on what the store kept instead of encoding the row again."""
    return _LAST_ROW[0], _LAST_ROW[1]


#: Types whose values a row writer in another process encodes to the same JSON as this process would.
_PLAIN_TYPES = frozenset({float, int, str, bool, type(None)})
_FLOAT64 = np.float64


def is_plain_row(row: Mapping[str, Any]) -> bool:
    """Whether every value of ``row`` is one that :func:`plain_snapshot` takes: its JSON line, read back, gives
    the same values (and, flattened, the same column names) as the row itself.

        >>> is_plain_row({"loss": np.float64(0.5), "config": {"lr": 0.1}}), is_plain_row({"config": {True: 1}})
        (True, False)
    """
    plain, float64 = _PLAIN_TYPES, _FLOAT64
    for value in row.values():
        kind = type(value)
        if kind in plain or kind is float64:
            continue
        if kind is not dict:
            return False
        for name, item in value.items():
            if type(name) is not str or (type(item) not in plain and type(item) is not float64):
                return False
    return True


def plain_snapshot(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """A copy of ``row`` that encodes to the same JSON line, when every value is a float, int, str, bool, None or
    numpy float64 (kept as the float it equals), or a dict of those with str keys (``config``); else None.
    (:func:`is_plain_row`'s rule, checked and copied in one pass.)

        >>> plain_snapshot({"loss": np.float64(0.5), "config": {"lr": 0.1}})
        {'loss': 0.5, 'config': {'lr': 0.1}}
        >>> plain_snapshot({"loss": np.float32(0.5)}) is None, plain_snapshot({"config": {1: 2}}) is None
        (True, True)
    """
    plain, float64 = _PLAIN_TYPES, _FLOAT64
    snapshot: dict[str, Any] = {}
    for key, value in row.items():
        kind = type(value)
        if kind in plain:
            snapshot[key] = value
        elif kind is float64:
            snapshot[key] = float(value)
        elif kind is dict:
            inner = {}
            for name, item in value.items():
                if type(name) is not str:
                    return None
                kind = type(item)
                if kind in plain:
                    inner[name] = item
                elif kind is float64:
                    inner[name] = float(item)
                else:
                    return None
            snapshot[key] = inner
        else:
            return None
    return snapshot


def _append_rows(path: str, items: list[str | dict[str, Any]]) -> None:
    """Append rows to a ``result.jsonl``: JSON lines as they are, :func:`plain_snapshot` rows encoded now."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join([item if type(item) is str else dumps(item) for item in items]) + "\n")


class RowReader(Protocol):
    """Something that derives files from each trial's result rows (the default loggers' progress.csv and
    TensorBoard files), fed by the store as it writes them instead of called at every report."""

    def takes_lines(self) -> bool:
        """Whether the reader would rather have each row's JSON line (to send to another process) than a copy of
        the row (to flatten here). Either may come: it is a preference, asked after each pass of rows."""

    def take_rows(self, batches: list[tuple[str, list[str | dict[str, Any]]]]) -> None:
        """``(trial_dir, rows)`` for each trial with new rows, its rows in order. With lines: each row's
        ``result.jsonl`` line, the store's :func:`plain_snapshot` of it, or (a row that is not plain, whose line
        would not read back the same) its ``flatten``-ed copy taken when it was reported; else a shallow copy of
        each row taken when it was reported. The lists are the reader's to keep."""


class RowWriter(Protocol):
    """Another process that encodes result rows and appends them to their files (the loggers' helper)."""

    def send_rows(self, batches: list[tuple[str, list[str | dict[str, Any]]]]) -> None:
        """Queue ``(result file, rows)`` for appending, each row a JSON line or a :func:`plain_snapshot` to encode.
        Raises ``OSError`` or ``RuntimeError`` when the writer is gone; once it raises (anything, Ctrl-C too), the
        writer appends nothing more."""

    def sync_rows(self) -> bool:
        """Wait until every row queued so far is in its file; False if the writer is gone (it may have written
        some of them, and appends nothing more)."""


def dumps(value: Any) -> str:
    """``value`` as one line of JSON (numpy values as numbers or lists).

        >>> dumps({"loss": 0.5, "config": {"lr": 0.1}})
        '{"loss": 0.5, "config": {"lr": 0.1}}'
    """
    if _C_LINE_ENCODER is not None:
        try:
            return "".join(_C_LINE_ENCODER(value, 0))
        except RecursionError:
            pass
    return _LINE_ENCODER.encode(value)


def write_json_atomic(path: str, value: Any, indent: int | None = None, durable: bool = False) -> None:
    """Replace ``path`` with ``value`` as JSON, atomically: a reader (or a resumed run) sees the old file or
    the new one, never half of one. ``durable`` also survives power loss (fsync), at a cost."""
    text = json.dumps(value, default=json_default, indent=indent)  # the C encoder; json.dump is pure Python
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as handle:
        handle.write(text)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(staging, path)


def read_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ExperimentError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExperimentError(f"{what} is damaged ({error}): {path}") from None


def iter_jsonl(path: str, what: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSON-lines file; a damaged line raises an error naming file and line."""
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and number > limit:
                return
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise ExperimentError(f"{what} is damaged at line {number} ({error}): {path}") from None
            if not isinstance(value, dict):
                raise ExperimentError(f"{what} line {number} is not a JSON object: {path}")
            yield value


def line_cut(path: str, keep: int) -> tuple[int, int] | None:
    """Where to cut a file to keep only its first ``keep`` lines: ``(byte offset, lines dropped)``, or None
    when there is nothing to cut (a half-written last line counts as one dropped line). Reads only."""
    if not os.path.exists(path):
        return None
    offset = 0
    kept = 0
    dropped = 0
    with open(path, "rb") as handle:
        for line in handle:
            if kept < keep and line.endswith(b"\n"):
                kept += 1
                offset += len(line)
            else:
                dropped += 1
    return (offset, dropped) if dropped else None


def truncate_lines(path: str, keep: int) -> int:
    """Keep only the first ``keep`` lines of a file (drop what was written after the last state save).

    Cuts in place with ``os.truncate`` at a byte offset, so the file is never empty in between and every
    hard link to it (``result.json``) stays valid. Returns how many lines were dropped."""
    cut = line_cut(path, keep)
    if cut is None:
        return 0
    os.truncate(path, cut[0])
    return cut[1]


def inside_run(run_path: str, path: Any, what: str) -> str:
    """``path`` (relative to the run directory, as the run's files name it) as an absolute path, if it lies
    strictly inside the run directory; an ``ExperimentError`` naming it otherwise (nothing outside a run is
    ever deleted, whatever a damaged or crafted ``events.jsonl``/``state.json`` says).

        >>> inside_run("/runs/a", "t0/checkpoint_000001", "a checkpoint")
        '/runs/a/t0/checkpoint_000001'
        >>> inside_run("/runs/a", "../b", "a checkpoint")
        Traceback (most recent call last):
        ...
        pbtlab.errors.ExperimentError: a checkpoint named '../b' lies outside the run directory /runs/a (at /runs/b); refusing to touch it
    """
    if not isinstance(path, str):
        raise ExperimentError(f"{what} must be a path relative to the run directory {run_path}, got {path!r}")
    root = os.path.realpath(run_path)
    target = os.path.realpath(os.path.join(run_path, path))
    if os.path.commonpath([root, target]) != root or target == root:
        raise ExperimentError(f"{what} named {path!r} lies outside the run directory {run_path} (at {target}); "
                              "refusing to touch it")
    return os.path.join(run_path, path)


class ExperimentStore:
    """Appends results and events to an experiment directory; flushes on demand."""

    #: Buffered lines that force a flush between state saves, so memory stays flat in a run that goes long
    #: without a recovery point (e.g. a trainable that never checkpoints); rows past a trial's recovery
    #: point are dropped on resume, as after a crash.
    FLUSH_LINES = 32768
    #: While a :class:`RowWriter` encodes the rows: how many to hand it at a time, so that it works while the run
    #: goes on and a state save waits only for the last of them.
    SEND_ROWS = 1024
    #: How many rows to give the readers at a time between flushes, so that they (and the loggers' helper) work
    #: while the run goes on rather than all at the end...
    PASS_ROWS = 1024
    #: ...and, with many trials, how many per trial with rows waiting: a pass costs a step per trial (and the
    #: loggers' batches it fills one per file), which a row or two each would pay per row (at 1,024 trials, 4.5
    #: against 2.6 µs a report).
    PASS_ROWS_PER_TRIAL = 16

    def __init__(self, path: str) -> None:
        self.path = path
        self._results: dict[str, list[str | dict[str, Any]]] = {}
        self._events: list[str] = []
        self._buffered = 0
        #: rows in each trial's result.jsonl, or handed to the writer to append there
        self.rows_written: dict[str, int] = {}
        self._writer: RowWriter | None = None
        self._unsent = 0  # rows taken since the last hand-over to the writer
        self._waiting: list[str] = []  # with a writer: the trials with rows taken since then
        self._result_paths: dict[str, str] = {}  # each trial's result.jsonl
        self._in_flight: list[tuple[str, list[str | dict[str, Any]]]] = []  # handed over, not yet confirmed
        self._confirmed: dict[str, int] = {}  # each trial's rows known to be in its file
        self.events_written = 0
        self.trial_dirs: dict[str, str] = {}  # trial id -> directory name, where it is not the id
        self._policies: dict[str, _PolicyFile] = {}  # policy log files this store wrote or read, by name
        self._readers: list[RowReader] = []
        self._unread: dict[str, list[str | dict[str, Any]]] = {}  # each trial's rows its readers have not had, as lines
        self._unread_rows: dict[str, list[str | dict[str, Any]]] = {}  # the same rows, as copies
        self._lines_wanted = self._rows_wanted = False  # which of the two are kept (a reader prefers each)
        self._num_unread = 0
        self._reader_dirs: dict[str, str] = {}  # each trial's directory, as the readers get it (joined once)

    def trial_dir(self, trial_id: str) -> str:
        """``<run>/<trial_id>``, or the name ``TuneConfig(trial_dirname_creator)`` gave it."""
        return os.path.join(self.path, self.trial_dirs.get(trial_id, trial_id))

    def result_path(self, trial_id: str) -> str:
        """The trial's ``result.jsonl`` (joined once per trial)."""
        path = self._result_paths.get(trial_id)
        if path is None:
            path = self._result_paths[trial_id] = os.path.join(self.trial_dir(trial_id), RESULT_FILE)
        return path

    def relative(self, path: str) -> str:
        """``path`` relative to the run directory (a path under it, as the run's own paths are, is sliced)."""
        prefix = self.path + os.sep
        if path.startswith(prefix):
            rest = path[len(prefix):]
            if rest and os.path.normpath(rest) == rest:
                return rest
        return os.path.relpath(path, self.path)

    def absolute(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.join(self.path, path)

    def deletable(self, path: str) -> str:
        """The absolute path of a checkpoint to delete, named relative to the run; an ``ExperimentError``
        when it lies outside the run directory (see :func:`inside_run`)."""
        return inside_run(self.path, path, "a checkpoint to delete")

    def create(self, experiment: Mapping[str, Any]) -> None:
        os.makedirs(self.path, exist_ok=True)
        write_json_atomic(os.path.join(self.path, EXPERIMENT_FILE), dict(experiment), indent=2)

    def add_trial(self, trial_id: str, config: Mapping[str, Any]) -> None:
        os.makedirs(self.trial_dir(trial_id), exist_ok=True)
        write_json_atomic(os.path.join(self.trial_dir(trial_id), PARAMS_FILE), dict(config), indent=2)
        self._results.setdefault(trial_id, [])
        self.rows_written.setdefault(trial_id, 0)

    def append_result(self, trial_id: str, row: Mapping[str, Any]) -> None:
        """Take a report's row for the trial's ``result.jsonl``. It is encoded now, or, while a row writer works
        for this store, snapshotted (:func:`plain_snapshot`) and encoded by the writer (same bytes); a row the
        snapshot cannot take is encoded now, so a value JSON cannot take still fails here."""
        writer = self._writer
        item: str | dict[str, Any] | None = plain_snapshot(row) if writer is not None else None
        if item is None:
            item = dumps(row)
        _LAST_ROW[0], _LAST_ROW[1] = row, item
        if self._readers:
            if self._lines_wanted:
                unread = self._unread.get(trial_id)
                if unread is None:
                    unread = self._unread[trial_id] = []
                unread.append(item if type(item) is not str or is_plain_row(row) else flatten(row))
            if self._rows_wanted:  # a copy: the row's ``done`` may be set later (the trial's function returned)
                unread = self._unread_rows.get(trial_id)
                if unread is None:
                    unread = self._unread_rows[trial_id] = []
                unread.append(dict(row))
            self._num_unread += 1
            if self._num_unread >= self.PASS_ROWS and self._num_unread >= self.PASS_ROWS_PER_TRIAL * len(
                    self._unread if self._lines_wanted else self._unread_rows):
                self._pass_to_readers()
        items = self._results[trial_id]
        if writer is not None and not items:
            self._waiting.append(trial_id)
        items.append(item)
        self._buffered += 1
        if self._buffered >= self.FLUSH_LINES:
            self.flush()
        elif writer is not None:
            self._unsent += 1
            if self._unsent >= self.SEND_ROWS:
                self._hand_over(writer)

    def read_rows_with(self, reader: RowReader) -> None:
        """From now on, give ``reader`` the result rows every :attr:`PASS_ROWS` rows (at least
        :attr:`PASS_ROWS_PER_TRIAL` per trial with rows waiting) and at each :meth:`flush`, each trial's in order,
        rather than have it called at every report: as JSON lines or as copies of the rows, as it prefers
        (:meth:`RowReader.takes_lines`). A row's line stands for the row where it reads back the same
        (:func:`is_plain_row`); any other row is flattened when it is taken."""
        if reader not in self._readers:
            self._pass_to_readers()  # the rows taken so far go to the readers there were
            self._readers.append(reader)
            self._choose_forms()

    def stop_reading(self, reader: RowReader) -> None:
        """``reader`` has had every row written so far and gets no more."""
        self._pass_to_readers()
        if reader in self._readers:
            self._readers.remove(reader)
        self._choose_forms()

    def _choose_forms(self) -> None:
        """Keep the rows in the forms the readers prefer now (at least one while there are readers)."""
        lines = [reader.takes_lines() for reader in self._readers]
        self._lines_wanted, self._rows_wanted = any(lines), not all(lines)

    def _pass_to_readers(self) -> None:
        lines, rows = self._unread, self._unread_rows
        self._unread, self._unread_rows = {}, {}
        self._num_unread = 0
        handed: set[int] = set()  # each list goes to one reader; another gets copies of it
        for reader in self._readers:
            unread = lines if (reader.takes_lines() and lines) or not rows else rows
            batches = []
            for trial_id, items in unread.items():
                if id(items) in handed:
                    items = list(items)
                else:
                    handed.add(id(items))
                batches.append((self._reader_dir(trial_id), items))
            if batches:
                reader.take_rows(batches)
        self._choose_forms()

    def _reader_dir(self, trial_id: str) -> str:
        directory = self._reader_dirs.get(trial_id)
        if directory is None:
            directory = self._reader_dirs[trial_id] = self.trial_dir(trial_id)
        return directory

    def write_rows_through(self, writer: RowWriter | None) -> None:
        """From now on, hand result rows to ``writer`` to encode and append (:meth:`save_state` waits until they
        are in their files before it writes the state that counts them); None: write them here again, after
        every row handed over is confirmed written (or, if the writer is gone, written again from here)."""
        if writer is not None:
            self._writer = writer
            self._confirmed = dict(self.rows_written)
            self._waiting = [trial_id for trial_id, items in self._results.items() if items]  # taken before now
            return
        writer, self._writer = self._writer, None
        if writer is not None:
            self._hand_over(writer)
            self._confirm(writer)

    def _send_rows(self) -> None:
        writer = self._writer
        if writer is not None:
            self._hand_over(writer)

    def _hand_over(self, writer: RowWriter) -> None:
        """Give the writer every row taken since the last hand-over."""
        self._unsent = 0
        results, written = self._results, self.rows_written
        batches = [(trial_id, results[trial_id]) for trial_id in self._waiting if results[trial_id]]
        self._waiting = []
        if not batches:
            return
        sent = []
        for trial_id, items in batches:
            results[trial_id] = []
            written[trial_id] += len(items)
            sent.append((self.result_path(trial_id), items))
        self._in_flight.extend(batches)
        try:
            writer.send_rows(sent)
        except (OSError, RuntimeError):  # the writer is gone: this process writes every row it did not confirm
            self._write_back()
        except BaseException:  # Ctrl-C part way: the same, then the interruption goes on
            self._write_back()
            raise

    def _confirm(self, writer: RowWriter) -> None:
        """Wait until the writer has written every row handed over; write them here if it cannot."""
        if not self._in_flight:
            return
        try:
            confirmed = writer.sync_rows()
        except BaseException:  # Ctrl-C while waiting: write them here, then the interruption goes on
            self._write_back()
            raise
        if confirmed:
            self._in_flight.clear()
            self._confirmed.update(self.rows_written)
        else:
            self._write_back()

    def _write_back(self) -> None:
        """The writer is gone: cut each file it was appending to back to its confirmed rows (it may have written
        some of the rest, or half a line) and append the rest from here, in order. Rows are written here from now."""
        self._writer = None
        pending: dict[str, list[str | dict[str, Any]]] = {}
        for trial_id, items in self._in_flight:
            pending.setdefault(trial_id, []).extend(items)
        self._in_flight.clear()
        for trial_id, items in pending.items():
            path = self.result_path(trial_id)
            truncate_lines(path, self._confirmed.get(trial_id, 0))
            _append_rows(path, items)
        self._confirmed.update(self.rows_written)

    def append_event(self, event: Mapping[str, Any]) -> None:
        self._events.append(dumps(event))
        self._buffered += 1
        if self._buffered >= self.FLUSH_LINES:
            self.flush()

    @property
    def num_events(self) -> int:
        return self.events_written + len(self._events)

    def flush(self) -> None:
        """Write what is buffered: rows (or hand them to the row writer), events, policy logs; then give the
        rows to the readers (:meth:`read_rows_with`)."""
        self._buffered = 0
        self._send_rows()
        self._waiting = []
        for trial_id, items in self._results.items():
            if not items:
                continue
            _append_rows(self.result_path(trial_id), items)
            self.rows_written[trial_id] += len(items)
            items.clear()
        if self._events:
            with open(os.path.join(self.path, EVENTS_FILE), "a", encoding="utf-8") as handle:
                handle.write("\n".join(self._events) + "\n")
            self.events_written += len(self._events)
            self._events.clear()
        for name, policy in self._policies.items():
            policy.write(os.path.join(self.path, name))
        if self._num_unread:
            self._pass_to_readers()

    def save_state(self, state: Mapping[str, Any], durable: bool = False) -> None:
        """Flush buffered rows and events, then write ``state.json`` recording how many there are.

        The order matters: a crash between the two leaves rows past the state, which resuming drops.
        """
        self.flush()
        if self._writer is not None:
            self._confirm(self._writer)
        full = dict(state)
        # The rows of each trial that belong to the state: as given (each trial's recovery point), else all.
        full["rows_written"] = dict(state.get("rows_written", self.rows_written))
        full["events_written"] = self.events_written
        write_json_atomic(os.path.join(self.path, STATE_FILE), full, durable=durable)

    def append_policy(self, filename: str, line: str, copy_from: str | None = None) -> None:
        """Append ``line`` to the policy log ``filename`` (``copy_from``: first replace its content by that file's).

        Kept in memory and written with the rows and events (:meth:`flush`), so an exploit opens no file; a
        resumed run rebuilds the policy logs from the events it kept."""
        policy = self._policy(filename)
        donor = self._policy(copy_from) if copy_from is not None else None
        if donor is not None and donor.exists:  # as Ray: a donor without a policy file yet leaves the target's
            policy.replace(donor.lines)
        policy.lines.append(line)

    def _policy(self, filename: str) -> _PolicyFile:
        policy = self._policies.get(filename)
        if policy is None:
            policy = self._policies[filename] = _PolicyFile.read(os.path.join(self.path, filename))
        return policy


class _PolicyFile:
    """A policy log's lines, and how many of them its file on disk holds (-1: the file must be rewritten)."""

    __slots__ = ("lines", "on_disk")

    def __init__(self, lines: list[str], on_disk: int) -> None:
        self.lines = lines
        self.on_disk = on_disk

    @property
    def exists(self) -> bool:
        """The file exists on disk or will at the next flush (a policy log is never empty)."""
        return bool(self.lines) or self.on_disk != 0

    @classmethod
    def read(cls, path: str) -> _PolicyFile:
        if not os.path.exists(path):
            return cls([], 0)
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        return cls(lines, len(lines))

    def replace(self, lines: list[str]) -> None:
        self.lines = list(lines)
        self.on_disk = -1

    def write(self, path: str) -> None:
        """Bring the file up to date: append the new lines, or rewrite it after :meth:`replace`."""
        if self.on_disk == len(self.lines):
            return
        mode, new = ("w", self.lines) if self.on_disk < 0 else ("a", self.lines[self.on_disk:])
        with open(path, mode, encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in new))
        self.on_disk = len(self.lines)


def is_wall_clock_field(key: str) -> bool:
    """Fields that differ between two runs of the same seed (used by determinism checks)."""
    return key in {"time", "timestamp", "time_total_s", "time_this_iter_s", "time_since_restore",
                   "time_value", "date", "traceback"} or key.startswith("time_")
