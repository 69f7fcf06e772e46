"""A helper process that writes the default loggers' ``progress.csv`` and TensorBoard files in large runs.

The default loggers keep each report's row in memory and write rows in batches (``_BatchedLogger``).
Formatting a batch (CSV cells, TensorBoard records and their checksums) costs the driver about 40 µs per
report, on the thread that runs the trials. In a run of ``HELPER_FROM_TRIALS`` (64) trials or more, or from
a logger's first full batch on (``FLUSH_ROWS`` rows waiting), the loggers hand their batches to one helper
process instead, which formats and writes them on another core in the order they were made. A small run
(the tutorial's 2 trials and 200 reports) never starts it. The bytes written are the driver's: the helper calls the same functions (:mod:`pbtlab.loggers.formats`).

- The helper is a child Python (``sys.executable``) that reads pickled batches from a pipe. It ignores
  Ctrl-C and ends at the run's end (an "end" message after the last batch) or when the pipe closes (the
  driver died).
- The run's end waits until every batch is written. An error in the helper (a full disk) is raised in the
  driver at its next batch or at the end, as the same error in the driver would be (the run stops and keeps
  its last consistent state; every row is in each trial's ``result.jsonl``).
- It is started only where a second CPU is available; ``PBTLAB_LOGGER_PROCESS=0`` keeps every write in
  the driver.

    >>> helper = LoggerProcess()
    >>> helper.started
    False
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import queue
    import subprocess

from pbtlab.errors import PbtlabError

__all__ = ["enabled", "LoggerProcess", "LoggerProcessError", "serve"]

_HEADER = struct.Struct("<Q")  # each message: its length, then the pickled (operation, *arguments)
_END = pickle.dumps(("end",), protocol=pickle.HIGHEST_PROTOCOL)
_HELPER_MAIN = ("import json, os, sys; sys.path[:] = json.loads(os.environ.pop('PBTLAB_HELPER_SYS_PATH')); "
                "from pbtlab.loggers.offload import serve; serve()")


class LoggerProcessError(PbtlabError, RuntimeError):
    """The helper process that writes progress.csv and TensorBoard files failed."""


def enabled() -> bool:
    """Whether a helper may be started: ``PBTLAB_LOGGER_PROCESS`` is not 0 and this process may use two CPUs."""
    if os.environ.get("PBTLAB_LOGGER_PROCESS", "1").strip() == "0":
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return cpus >= 2


#: What the pipe to the helper may hold (Linux's default is 64 KiB): a flush's batch (up to ~1 MB of rows) is
#: then written at once while the helper is busy with the previous one, where the driver waited for it to read.
PIPE_BYTES = 1 << 20


def _widen_pipe(pipe: Any) -> None:
    """Let ``pipe`` hold :data:`PIPE_BYTES` where the system allows it (Linux's ``F_SETPIPE_SZ``); else leave it."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError, ValueError):  # not Linux, or above /proc/sys/fs/pipe-max-size
        pass


def _close_pipe(process: subprocess.Popen[bytes]) -> None:
    """Close the driver's end of the helper's pipe: the helper sees the pipe close and ends."""
    try:
        if process.stdin is not None:
            process.stdin.close()
    except OSError:
        pass


class LoggerProcess:
    """One helper process, shared by the loggers of one run; started by the first :meth:`use`, ended when the
    last logger that used it calls :meth:`release`."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._users = 0
        self.pid: int | None = None  # the helper's process id, once started

    @property
    def started(self) -> bool:
        return self._process is not None

    def use(self) -> bool:
        """Start the helper unless it runs already; False when it cannot start here (the caller writes itself)."""
        if self._process is None:
            if not enabled() or not sys.executable:
                return False
            # The helper imports what this process imports: the same sys.path (a script that put a source
            # checkout on it gets that checkout in the helper too).
            env = dict(os.environ, PBTLAB_HELPER_SYS_PATH=json.dumps([os.path.abspath(p) for p in sys.path]))
            import subprocess  # here: a run that never starts the helper does not import it (about 3 ms)

            try:
                self._process = subprocess.Popen([sys.executable, "-c", _HELPER_MAIN], stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, env=env, close_fds=True)
            except OSError:
                return False
            self.pid = self._process.pid
            _widen_pipe(self._process.stdin)
            self._finalizer = weakref.finalize(self, _close_pipe, self._process)
        self._users += 1
        return True

    def send(self, operation: str, *arguments: Any) -> None:
        """Queue one operation for the helper (it carries them out in order)."""
        process = self._process
        if process is None or process.stdin is None:
            raise LoggerProcessError("the helper process that writes progress.csv and TensorBoard files is not "
                                     "running (an earlier batch failed)")
        data = _pickled((operation, *arguments))
        try:
            process.stdin.write(_HEADER.pack(len(data)))
            process.stdin.write(data)
            process.stdin.flush()
        except OSError:  # the helper has ended: say why
            self._end()
            raise LoggerProcessError("the helper process that writes progress.csv and TensorBoard files ended "
                                     "before the run did; every row is in each trial's result.jsonl") from None

    def send_csv(self, batches: list[tuple[str, list[str], bool, list[dict[str, Any]]]]) -> None:
        """:func:`pbtlab.loggers.formats.append_csv` for each ``(directory, header, new_file, rows)``, in the helper."""
        self.send("csv", [(directory, header, new_file, *_packed(rows)) for directory, header, new_file, rows in batches])

    def send_tensorboard(self, batches: list[tuple[str, list[tuple[int, float, dict[str, Any]]]]]) -> None:
        """:func:`pbtlab.loggers.formats.add_tensorboard_rows` for each ``(directory, rows)``, then one flush, in the helper."""
        packed = []
        for directory, rows in batches:  # each row (step, time, flat row), or its JSON line
            columns, values = _packed([row if type(row) is str else row[2] for row in rows])
            clocks = [None if type(row) is str else row[:2] for row in rows]
            packed.append((directory, clocks, columns, values))
        self.send("tensorboard", packed)

    def release(self) -> None:
        """A logger is done with the helper; the last one ends it, after everything sent is written."""
        self._users -= 1
        if self._users <= 0:
            self._end()

    def _end(self) -> None:
        process, self._process = self._process, None
        self._users = 0
        if process is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        try:  # "end" as a message too: a process forked from the driver may hold the pipe open after it closes
            if process.stdin is not None:
                process.stdin.write(_HEADER.pack(len(_END)) + _END)
                process.stdin.flush()
        except OSError:  # it has ended already: its status says how
            pass
        _close_pipe(process)
        assert process.stdout is not None  # internal invariant: started with stdout=PIPE
        said = process.stdout.read().decode("utf-8", "replace").strip()
        process.stdout.close()
        status = process.wait()
        if status != 0:
            raise LoggerProcessError(
                f"the helper process that writes progress.csv and TensorBoard files failed: "
                f"{said or f'exit status {status}'}. Every row is in each trial's result.jsonl")


def _packed(rows: list[Any]) -> tuple[list[tuple[str, ...]], list[Any]]:
    """Flat rows as (their distinct column tuples, each row's (column tuple's index, values)): a run's rows
    share a few column tuples, so each is sent once, not once per row. A row given as its JSON line (a str)
    goes as it is.

        >>> _packed([{"a": 1, "b": 2}, {"a": 3, "b": 4}, '{"c": {"d": 5}}'])
        ([('a', 'b')], [(0, (1, 2)), (0, (3, 4)), '{"c": {"d": 5}}'])
        >>> _unpacked(*_packed([{"a": 1}, '{"c": {"d": 5}}']))
        [{'a': 1}, {'c/d': 5}]
    """
    indices: dict[tuple[str, ...], int] = {}
    packed: list[Any] = []
    for row in rows:
        if type(row) is str:
            packed.append(row)
            continue
        columns = tuple(row)
        index = indices.get(columns)
        if index is None:
            index = indices[columns] = len(indices)
        packed.append((index, tuple(row.values())))
    return list(indices), packed


def _unpacked(columns: list[tuple[str, ...]], packed: list[Any]) -> list[dict[str, Any]]:
    from pbtlab.nested import flatten

    return [flatten(json.loads(entry)) if type(entry) is str else dict(zip(columns[entry[0]], entry[1]))
            for entry in packed]


def _float64_as_float(value: Any) -> tuple[type, tuple[float]]:
    return float, (float(value),)


def _pickled(message: Any) -> bytes:
    """``message`` pickled for the helper. A numpy float64 goes as the float it equals (pickling numpy scalars
    costs ~0.7 µs each; CSV cells and TensorBoard values come out the same). A value pickle refuses goes as
    its ``str()``, which is what CSV writes for it (and TensorBoard skips: it is not a number)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {np.float64: _float64_as_float}
    try:
        pickler.dump(message)
    except Exception:  # an unpicklable value somewhere in a row (rare): send its text instead
        return _pickled(_as_picklable(message))
    return buffer.getvalue()


def _as_picklable(value: Any) -> Any:
    """``value`` with every leaf that pickle refuses replaced by its ``str()``."""
    kind = type(value)
    if kind is dict:
        return {key: _as_picklable(item) for key, item in value.items()}
    if kind in (list, tuple):
        return kind(_as_picklable(item) for item in value)
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return str(value)
    return value


def _read_messages(stream: Any, messages: queue.SimpleQueue[bytes | None]) -> None:
    """Put each message read from ``stream`` on ``messages``, then None at the end of the stream (a message
    cut short means the driver died while sending it: it is dropped, as it would be in the driver)."""
    try:
        while True:
            head = stream.read(_HEADER.size)
            if len(head) < _HEADER.size:
                break
            (size,) = _HEADER.unpack(head)
            data = stream.read(size)
            if len(data) < size:
                break
            messages.put(data)
    finally:
        messages.put(None)


def serve() -> None:
    """The helper's main loop: carry out each operation read from standard input until it closes."""
    from pbtlab.loggers._tbx import EventFileWriter, flush_many
    from pbtlab.loggers.formats import add_tensorboard_rows, append_csv, event_writer, tensorboard_clock

    import queue
    import signal

    # The reader thread must get the interpreter back soon after each read returns, or the driver's next write
    # waits on a full pipe while this process formats a batch (the default switch interval is 5 ms).
    sys.setswitchinterval(0.0002)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which ends this at the run's end
    messages: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    # A thread drains the pipe as fast as the driver writes: the driver never waits while a batch is written.
    threading.Thread(target=_read_messages, args=(sys.stdin.buffer, messages), daemon=True).start()
    writers: dict[str, EventFileWriter] = {}
    try:
        while True:
            data = messages.get()
            if data is None:
                break  # the pipe closed: the run ended (or the driver died)
            operation, *arguments = pickle.loads(data)
            if operation == "end":
                break
            if operation == "csv":
                for directory, header, new_file, columns, packed in arguments[0]:
                    append_csv(directory, header, new_file, _unpacked(columns, packed))
            elif operation == "tensorboard":
                touched = []
                for directory, clocks, columns, packed in arguments[0]:
                    writer = event_writer(writers, directory)
                    rows = [(*(tensorboard_clock(flat) if clock is None else clock), flat)
                            for clock, flat in zip(clocks, _unpacked(columns, packed))]
                    add_tensorboard_rows(writer, rows)
                    touched.append(writer)
                flush_many(touched)
            elif operation == "tensorboard_close":
                for writer in writers.values():
                    writer.close()
                writers.clear()
            else:
                raise ValueError(f"unknown operation {operation!r}")
        for writer in writers.values():
            writer.close()
    except Exception as error:
        sys.stdout.write(f"{type(error).__name__}: {error}")
        status = 1
    else:
        status = 0
    finally:
        sys.stdout.flush()
    # Not a normal interpreter exit: the reader thread may still be blocked in a read of standard input, which
    # an exiting interpreter would abort on. Every file is closed by now.
    os._exit(status)
