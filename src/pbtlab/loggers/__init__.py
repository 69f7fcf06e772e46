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
import json
import os
import sys
from typing import Any

from pbtlab.callbacks import Callback, CallbackList
from pbtlab.loggers._tbx import EventFileWriter, flush_many
from pbtlab.loggers.formats import (
    PROGRESS_CSV, _csv_values, add_tensorboard_rows, append_csv, event_writer, flat_rows, tensorboard_clock,
    tensorboard_rows,
)
from pbtlab.loggers.offload import LoggerProcess
from pbtlab.nested import flatten
from pbtlab.rundir.store import RESULT_FILE, ExperimentStore, is_plain_row, iter_jsonl, last_result_item

__all__ = [
    "add_tensorboard_rows", "append_csv", "CSVLoggerCallback", "default_loggers", "flat_row", "JsonLoggerCallback",
    "PROGRESS_CSV", "read_rows_from_store", "RESULT_JSON", "TBXLoggerCallback", "tensorboardx_available",
]

RESULT_JSON = "result.json"


def _kept_rows(trial_dir: str) -> list[dict[str, Any]]:
    """The rows a resumed run kept (result.jsonl was truncated to the saved state before this runs)."""
    return list(iter_jsonl(os.path.join(trial_dir, RESULT_FILE), "results kept by the resume"))


class JsonLoggerCallback(Callback):
    """``result.json`` in each trial's directory: the same JSON lines as ``result.jsonl``."""

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        self._copies: list[str] = []
        self._linked: set[str] = set()  # done for this run: a restart (every exploit) checks no file again
        for trial in info.get("trials", ()):
            self._link(trial.path)

    def on_trial_start(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        if trial.path not in self._linked:
            self._link(trial.path)

    def _link(self, directory: str) -> None:
        self._linked.add(directory)
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
    to write it.

    A default logger (one ``default_loggers`` made) hands its batches to a helper process from its first full
    batch on (:mod:`pbtlab.loggers.offload`), where it can: a large run's driver then does not format them.
    Unless another callback wants each result, it is also not called at every report: the run's store gives it
    the rows it writes (:meth:`take_rows`, see :func:`read_rows_from_store`)."""

    FLUSH_ROWS = 1000
    ROWS_PER_FILE = 16
    HELPER_FROM_TRIALS = 64  # a run of this many trials hands its batches to the helper from its start
    _helper: LoggerProcess | None = None  # set by default_loggers
    _sharing: tuple[_BatchedLogger, ...] = ()  # set by default_loggers: the other loggers of that helper
    _store: ExperimentStore | None = None  # set by read_rows_from_store: the rows come from there

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        self._pending: dict[str, list[Any]] = {}
        self._num_pending = 0
        self._offloaded = False
        if (total_num_samples or 0) >= self.HELPER_FROM_TRIALS:  # a large population: from the start
            self._start_helper()
        if self._store is not None:
            self._store.read_rows_with(self)

    def _start_helper(self) -> None:
        if not self._offloaded and self._helper is not None and self._may_offload():
            self._offloaded = self._helper.use()

    def _item(self, result: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _write(self, directory: str, items: list[Any]) -> None:
        raise NotImplementedError

    def _may_offload(self) -> bool:
        """Whether this logger's batches may go to the helper from now on (it has written nothing it keeps open)."""
        return True

    def on_trial_result(self, iteration: int, trials: Any, trial: Any, result: dict[str, Any], **info: Any) -> None:
        self._pending.setdefault(trial.path, []).append(self._item(result))
        self._num_pending += 1
        self._flush_if_full()

    def takes_lines(self) -> bool:
        """The store's rows as JSON lines once the helper writes this logger's files (cheap to send; the helper
        reads each once for both files), else as copies of the rows (flattened here, not read back from text)."""
        return self._offloaded

    def take_rows(self, batches: list[tuple[str, list[str | dict[str, Any]]]]) -> None:
        """The store's new rows, ``(trial directory, rows)`` per trial (:class:`~pbtlab.rundir.store.RowReader`),
        in place of ``on_trial_result``."""
        waiting = self._pending
        for trial_dir, rows in batches:
            pending = waiting.get(trial_dir)
            if pending is None:
                waiting[trial_dir] = rows
            else:
                pending.extend(rows)
            self._num_pending += len(rows)
        self._flush_if_full()

    def _flush_if_full(self) -> None:
        # At least ROWS_PER_FILE rows per file and flush: a large population does not open a file per row. Once the
        # helper writes, every logger flushes as often (the helper gets each logger's batch of a row in one message).
        rows = _BatchedLogger.FLUSH_ROWS if self._offloaded else self.FLUSH_ROWS
        if self._num_pending >= rows and self._num_pending >= self.ROWS_PER_FILE * len(self._pending):
            started = self._helper is not None and self._helper.started
            self._start_helper()
            if self._offloaded and not started:
                # This batch starts the helper mid-run: the other loggers that can hand theirs over start now too,
                # so that their batches hold the same rows as this logger's and go in the same messages.
                for other in self._sharing:
                    other._start_helper()
            self.flush()

    def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self.flush(trial.path)

    def on_experiment_end(self, trials: Any, **info: Any) -> None:
        self._stop_reading()
        self.flush()
        self._release_helper()

    def _stop_reading(self) -> None:
        """Take the store's last rows; it gives this logger no more."""
        if self._store is not None:
            self._store.stop_reading(self)

    def _release_helper(self) -> None:
        """After this logger's last batch: the helper may end once every logger that used it is done."""
        if self._offloaded and self._helper is not None:
            self._offloaded = False
            self._helper.release()

    def flush(self, only: str | None = None) -> None:
        for directory, items in self._take(only):
            self._write(directory, items)

    def _take(self, only: str | None) -> list[tuple[str, list[Any]]]:
        """The waiting items of ``only`` (a trial's directory), or of every trial, as (directory, items); they
        are no longer waiting."""
        batches = []
        for directory in [only] if only is not None else list(self._pending):
            items = self._pending.pop(directory, None)
            if items:
                self._num_pending -= len(items)
                batches.append((directory, items))
        return batches


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

    def _item(self, result: dict[str, Any]) -> dict[str, Any] | str:
        if self._offloaded:
            stored = stored_row(result)
            if stored is not None:
                return stored  # the helper flattens it
        return flat_row(result)  # now: the row as reported (``done`` may be set on it later)

    def flush(self, only: str | None = None) -> None:
        if not self._offloaded:
            return super().flush(only)
        # every file's rows in one message: the helper then opens each file once per flush
        batches = [(directory, *self._header_of(directory, rows), rows) for directory, rows in self._take(only)]
        if batches:
            self._helper.send_csv(batches)  # type: ignore[union-attr]

    def _header_of(self, directory: str, rows: list[dict[str, Any]]) -> tuple[list[str], bool]:
        """The file's columns (the first row's, as Ray), and whether the file is new (its header not written)."""
        header = self._header.get(directory)
        if header is None:
            first = rows[0]
            header = self._header[directory] = list(flatten(json.loads(first) if isinstance(first, str) else first))
            return header, True
        return header, False

    def _write(self, directory: str, rows: list[Any]) -> None:
        if self._store is not None:  # lines and snapshots from the store (a flat row stays as it is)
            rows = flat_rows(rows)
        append_csv(directory, *self._header_of(directory, rows), rows)


_LAST_FLAT: list[Any] = [None, None]  # (result, its flat row): the loggers that see one result flatten it once


def flat_row(result: dict[str, Any]) -> dict[str, Any]:
    """``flatten(result)``, computed once for the default loggers that receive the same result in turn
    (callbacks run on the driver's thread, one result at a time). Treat the returned dict as read-only."""
    if _LAST_FLAT[0] is result:
        return _LAST_FLAT[1]  # type: ignore[no-any-return]
    flat = flatten(result)
    _LAST_FLAT[0], _LAST_FLAT[1] = result, flat
    return flat


def stored_row(result: dict[str, Any]) -> str | dict[str, Any] | None:
    """What the store kept of ``result`` (its ``result.jsonl`` line, or its plain snapshot while the helper
    encodes the rows) when ``result`` equals the row the store took last and is plain (``is_plain_row``: a
    numpy int or float32, a tuple or an object would not come back the same from its line); else None. The
    helper builds the same flat row from it, so the driver does not flatten the row or pickle its numpy values."""
    if _LAST_STORED[0] is result:  # the other default logger asked about the same result
        return _LAST_STORED[1]  # type: ignore[no-any-return]
    row, stored = last_result_item()
    if stored is None or (row is not result and row != result):
        stored = None
    elif type(stored) is str and not is_plain_row(result):  # a snapshot is plain by construction
        stored = None
    _LAST_STORED[0], _LAST_STORED[1] = result, stored
    return stored


_LAST_STORED: list[Any] = [None, None]  # (result, stored_row(result)) for the last result asked about


class TBXLoggerCallback(_BatchedLogger):
    """TensorBoard event files per trial (tensorboardX): numeric result fields against ``training_iteration``.

    Written in batches, one event per row, by ``pbtlab.loggers._tbx`` (tensorboardX's bytes, without importing
    tensorboardX or protobuf): no writer thread competes with the trials. A resumed run appends to new files.
    As in Ray, it is a default logger only where tensorboardX is installed."""

    FLUSH_ROWS = 2000

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        self._writers: dict[str, Any] = {}
        super().setup(stop, num_samples, total_num_samples, **info)

    def _item(self, result: dict[str, Any]) -> tuple[int, float, dict[str, Any]] | str | dict[str, Any]:
        if self._offloaded:
            stored = stored_row(result)
            if stored is not None:
                return stored  # the helper flattens it and takes the step and time from it
        return (*tensorboard_clock(result), flat_row(result))

    def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        """Nothing now: a finished trial's events wait for the next batch (every ``FLUSH_ROWS`` rows, and
        the run's end), so their checksums are computed together."""

    def _may_offload(self) -> bool:
        return not self._writers  # a file this process has written to stays with it

    def flush(self, only: str | None = None) -> None:
        batches = self._take(only)
        if self._offloaded:
            if batches:
                self._helper.send_tensorboard(batches)  # type: ignore[union-attr]
            return
        flush_many([self._add(directory, items) for directory, items in batches])

    def _add(self, directory: str, rows: list[Any]) -> EventFileWriter:
        writer = event_writer(self._writers, directory)
        add_tensorboard_rows(writer, tensorboard_rows(rows) if self._store is not None else rows)
        return writer

    def on_experiment_end(self, trials: Any, **info: Any) -> None:
        self._stop_reading()
        self.flush()
        if self._offloaded:
            self._helper.send("tensorboard_close")  # type: ignore[union-attr]
        self._release_helper()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


@functools.cache
def tensorboardx_available() -> bool:
    """Whether tensorboardX is installed (looked up once per process, through the import system's finders
    as ``importlib.util.find_spec`` does, without importing ``importlib.util``)."""
    if "tensorboardX" in sys.modules:
        return sys.modules["tensorboardX"] is not None  # None: its import is blocked
    return any(getattr(finder, "find_spec", None) is not None and finder.find_spec("tensorboardX", None) is not None
               for finder in sys.meta_path)


def default_loggers(user_callbacks: list[Any], store: ExperimentStore | None = None) -> list[Callback]:
    """The logger callbacks Ray adds by default, unless the user passed their own or turned them off. Once their
    helper process starts, it also writes ``store``'s result rows."""
    if os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0") == "1":
        return []
    loggers: list[Callback] = []
    wanted: list[type[Callback]] = [JsonLoggerCallback, CSVLoggerCallback]
    if tensorboardx_available():
        wanted.append(TBXLoggerCallback)
    helper = LoggerProcess(store)  # started by the first logger that fills a batch, if any does
    for cls in wanted:
        if not any(isinstance(c, cls) for c in user_callbacks):
            logger = cls()
            if isinstance(logger, _BatchedLogger):
                logger._helper = helper
            loggers.append(logger)
    batched = [logger for logger in loggers if isinstance(logger, _BatchedLogger)]
    for logger in batched:
        logger._sharing = tuple(other for other in batched if other is not logger)
    return loggers


def read_rows_from_store(callbacks: CallbackList, loggers: list[Callback], store: ExperimentStore) -> None:
    """Unless a callback before them wants each result (it may change the row they would write), the default
    ``loggers`` take their rows from ``store`` as it writes them (:meth:`_BatchedLogger.take_rows`) and are left
    out of ``callbacks``' ``on_trial_result``: the same files, with no call per report.

    ``callbacks`` holds the user's callbacks, then ``loggers``."""
    fed = [logger for logger in loggers if isinstance(logger, _BatchedLogger)]
    if not fed or any(all(callback is not logger for logger in loggers)
                      for callback, _ in callbacks.listeners("on_trial_result")):
        return
    for logger in fed:
        logger._store = store  # it asks the store for rows in setup
    callbacks.leave_out("on_trial_result", fed)
