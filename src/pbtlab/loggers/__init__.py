"""The files Ray Tune writes into each trial's directory, so tools that read them keep working.

- ``params.json`` (the starting config) is written by the store when a trial is added.
- ``result.json``: Ray's JSON-lines results. It is a hard link to pbtlab's ``result.jsonl`` (same
  rows, no second copy), or a copy made at the end where links are not possible.
- ``progress.csv``: one row per report, nested keys flattened with ``/`` (``config/lr``), the header
  taken from the first row, as Ray's ``CSVLoggerCallback``.
- TensorBoard event files (``events.out.tfevents.*``), when ``tensorboardX`` is installed
  (``pip install 'pbtlab[tensorboard]'``): every numeric result field at ``training_iteration``, under
  ``ray/tune/<field>`` as Ray names them, so
  ``tensorboard --logdir <run>`` shows every trial. ``pbtlab tensorboard RUN_DIR`` adds one curve per
  lineage, stitched across exploits (``pbtlab.loggers.lineage_tensorboard``).

They are callbacks added by default, as in Ray; ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`` turns them off.

    >>> flatten({"a": 1, "config": {"lr": 0.1, "net": {"width": 8}}})
    {'a': 1, 'config/lr': 0.1, 'config/net/width': 8}
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

from pbtlab.callbacks import Callback
from pbtlab.loggers._tbx import EventFileWriter, flush_many
from pbtlab.nested import flatten
from pbtlab.rundir.store import RESULT_FILE, iter_jsonl

__all__ = [
    "CSVLoggerCallback", "default_loggers", "flat_row", "JsonLoggerCallback", "PROGRESS_CSV", "RESULT_JSON",
    "TBXLoggerCallback", "tensorboardx_available",
]

RESULT_JSON = "result.json"
PROGRESS_CSV = "progress.csv"


def _kept_rows(trial_dir: str) -> list[dict[str, Any]]:
    """The rows a resumed run kept (result.jsonl was truncated to the saved state before this runs)."""
    return list(iter_jsonl(os.path.join(trial_dir, RESULT_FILE), "results kept by the resume"))


class JsonLoggerCallback(Callback):
    """``result.json`` in each trial's directory: the same JSON lines as ``result.jsonl``."""

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        self._copies: list[str] = []
        for trial in info.get("trials", ()):
            self._link(trial.path)

    def on_trial_start(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self._link(trial.path)

    def _link(self, directory: str) -> None:
        source = os.path.join(directory, "result.jsonl")
        target = os.path.join(directory, RESULT_JSON)
        if os.path.exists(target) and os.path.exists(source) and os.path.samefile(source, target):
            return
        if not os.path.exists(source):
            open(source, "a", encoding="utf-8").close()
        if os.path.lexists(target):
            os.remove(target)
        try:
            os.link(source, target)
        except OSError:  # no hard links here (some network or FAT file systems): copy at the end instead
            self._copies.append(directory)

    def on_experiment_end(self, trials: Any, **info: Any) -> None:
        import shutil

        for directory in self._copies:
            shutil.copyfile(os.path.join(directory, "result.jsonl"), os.path.join(directory, RESULT_JSON))


class _BatchedLogger(Callback):
    """Keeps one item per report per trial and writes them in batches: when the trial ends, at the run's end,
    or every ``FLUSH_ROWS`` items, so the cost stays off each report. Subclasses say what to keep and how
    to write it."""

    FLUSH_ROWS = 1000
    ROWS_PER_FILE = 16

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        self._pending: dict[str, list[Any]] = {}
        self._num_pending = 0

    def _item(self, result: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _write(self, directory: str, items: list[Any]) -> None:
        raise NotImplementedError

    def on_trial_result(self, iteration: int, trials: Any, trial: Any, result: dict[str, Any], **info: Any) -> None:
        self._pending.setdefault(trial.path, []).append(self._item(result))
        self._num_pending += 1
        # At least ROWS_PER_FILE rows per file and flush: a large population does not open a file per row.
        if self._num_pending >= self.FLUSH_ROWS and self._num_pending >= self.ROWS_PER_FILE * len(self._pending):
            self.flush()

    def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self.flush(trial.path)

    def on_experiment_end(self, trials: Any, **info: Any) -> None:
        self.flush()

    def flush(self, only: str | None = None) -> None:
        for directory in [only] if only is not None else list(self._pending):
            items = self._pending.pop(directory, None)
            if items:
                self._num_pending -= len(items)
                self._write(directory, items)


class CSVLoggerCallback(_BatchedLogger):
    """``progress.csv`` in each trial's directory, written in batches (rebuilt from result.jsonl on resume)."""

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        """``info["trials"]``: every trial; a resumed run's files are rewritten from the rows it kept."""
        super().setup(stop, num_samples, total_num_samples, **info)
        self._header: dict[str, list[str]] = {}
        for trial in info.get("trials", ()):
            self._rebuild(trial.path)

    def _rebuild(self, directory: str) -> None:
        rows = [flatten(r) for r in _kept_rows(directory)]
        path = os.path.join(directory, PROGRESS_CSV)
        if not rows:
            if os.path.exists(path):
                os.remove(path)
            return
        header = self._header[directory] = list(rows[0])
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(_csv_values(rows, header))

    def _item(self, result: dict[str, Any]) -> dict[str, Any]:
        return flat_row(result)  # now: the row as reported (``done`` may be set on it later)

    def _write(self, directory: str, rows: list[dict[str, Any]]) -> None:
        header = self._header.get(directory)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if header is None:
            header = self._header[directory] = list(rows[0])
            writer.writerow(header)
        writer.writerows(_csv_values(rows, header))
        with open(os.path.join(directory, PROGRESS_CSV), "a", encoding="utf-8", newline="") as handle:
            handle.write(buffer.getvalue())


_LAST_FLAT: list[Any] = [None, None]  # (result, its flat row): the loggers that see one result flatten it once


def flat_row(result: dict[str, Any]) -> dict[str, Any]:
    """``flatten(result)``, computed once for the default loggers that receive the same result in turn
    (callbacks run on the driver's thread, one result at a time). Treat the returned dict as read-only."""
    if _LAST_FLAT[0] is result:
        return _LAST_FLAT[1]  # type: ignore[no-any-return]
    flat = flatten(result)
    _LAST_FLAT[0], _LAST_FLAT[1] = result, flat
    return flat


def _csv_values(rows: list[dict[str, Any]], header: list[str]) -> Iterator[Sequence[Any]]:
    """Each row's cells in ``header``'s order, as ``csv.DictWriter(header, extrasaction="ignore")`` would write
    them: a missing column is empty, an extra one is left out, a list or tuple is written as JSON. A row with
    the header's columns in its order (nearly every row) is taken as it is."""
    columns = tuple(header)
    for row in rows:
        values: Sequence[Any] = tuple(row.values()) if tuple(row) == columns else [row.get(k, "") for k in header]
        kinds = set(map(type, values))
        if not kinds <= _SCALAR_TYPES and any(issubclass(kind, (list, tuple)) for kind in kinds):
            values = [json.dumps(value) if isinstance(value, (list, tuple)) else value for value in values]
        yield values


_SCALAR_TYPES = frozenset({float, int, str, bool, type(None)})


class TBXLoggerCallback(_BatchedLogger):
    """TensorBoard event files per trial (tensorboardX): numeric result fields against ``training_iteration``.

    Written in batches, one event per row, by ``pbtlab.loggers._tbx`` (tensorboardX's bytes, without importing
    tensorboardX or protobuf): no writer thread competes with the trials. A resumed run appends to new files.
    As in Ray, it is a default logger only where tensorboardX is installed."""

    FLUSH_ROWS = 2000

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        super().setup(stop, num_samples, total_num_samples, **info)
        self._writers: dict[str, Any] = {}

    def _item(self, result: dict[str, Any]) -> tuple[int, float, dict[str, Any]]:
        return int(result.get("training_iteration", 0)), float(result.get("timestamp") or 0), flat_row(result)

    def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        """Nothing now: a finished trial's events wait for the next batch (every ``FLUSH_ROWS`` rows, and
        the run's end), so their checksums are computed together."""

    def flush(self, only: str | None = None) -> None:
        directories = [only] if only is not None else list(self._pending)
        writers = []
        for directory in directories:
            items = self._pending.pop(directory, None)
            if items:
                self._num_pending -= len(items)
                writers.append(self._add(directory, items))
        flush_many(writers)

    def _add(self, directory: str, rows: list[tuple[int, float, dict[str, Any]]]) -> EventFileWriter:
        writer = self._writers.get(directory)
        if writer is None:
            writer = self._writers[directory] = EventFileWriter(os.path.join(directory, "events"))
        plans: dict[tuple[tuple[str, ...], tuple[type, ...]], tuple[tuple[int, ...], tuple[str, ...]]] = {}
        for step, stamp, flat in rows:
            values = tuple(flat.values())
            shape = (tuple(flat), tuple(map(type, values)))  # rows of a trial share their columns and types
            plan = plans.get(shape)
            if plan is None:
                plan = plans[shape] = _scalar_plan(*shape)
            positions, tags = plan
            writer.add_row(step, stamp, tags, [float(values[i]) for i in positions])
        return writer

    def _write(self, directory: str, rows: list[tuple[int, float, dict[str, Any]]]) -> None:
        flush_many([self._add(directory, rows)])

    def on_experiment_end(self, trials: Any, **info: Any) -> None:
        super().on_experiment_end(trials, **info)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def _scalar_plan(keys: tuple[str, ...], kinds: tuple[type, ...]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Which columns of a flat row TensorBoard gets (numbers, not bools, not ``config/...``) and their tags.

        >>> _scalar_plan(("loss", "done", "config/lr", "name"), (float, bool, float, str))
        ((0,), ('ray/tune/loss',))
    """
    positions = tuple(i for i, (key, kind) in enumerate(zip(keys, kinds))
                      if kind is not bool and issubclass(kind, (int, float)) and not key.startswith("config/"))
    return positions, tuple(f"ray/tune/{keys[i]}" for i in positions)


@functools.cache
def tensorboardx_available() -> bool:
    """Whether tensorboardX is installed (looked up once per process)."""
    import importlib.util

    return importlib.util.find_spec("tensorboardX") is not None


def default_loggers(user_callbacks: list[Any]) -> list[Callback]:
    """The logger callbacks Ray adds by default, unless the user passed their own or turned them off."""
    if os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0") == "1":
        return []
    loggers: list[Callback] = []
    wanted: list[type[Callback]] = [JsonLoggerCallback, CSVLoggerCallback]
    if tensorboardx_available():
        wanted.append(TBXLoggerCallback)
    for cls in wanted:
        if not any(isinstance(c, cls) for c in user_callbacks):
            loggers.append(cls())
    return loggers
