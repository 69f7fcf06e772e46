"""A helper process that writes the default loggers' ``progress.csv`` and TensorBoard files in large runs.

The default loggers keep each report's row in memory and write rows in batches (``_BatchedLogger``).
Formatting a batch (CSV cells, TensorBoard records and their checksums) costs the driver about 40 µs per
report, on the thread that runs the trials. In a run of ``HELPER_FROM_TRIALS`` (64) trials or more, or from
a logger's first full batch on (``FLUSH_ROWS`` rows waiting), the loggers hand their batches to one helper
process instead, which formats and writes them on another core in the order they were made. A small run
(the tutorial's 2 trials and 200 reports) never starts it. The bytes written are the driver's: the helper calls the same functions (:mod:`pbtlab.loggers.formats`).

- The loggers' batches of the same rows (progress.csv's and TensorBoard's) go in one message, one pickle that
  holds each row once (:meth:`LoggerProcess.send`).
- The helper is a child Python (``sys.executable``) that reads pickled batches from a pipe. It ignores
  Ctrl-C and ends at the run's end (an "end" message after the last batch) or when the pipe closes (the
  driver died).
- The run's end waits until every batch is written. An error in the helper (a full disk) is raised in the
  driver at its next batch or at the end, as the same error in the driver would be (the run stops and keeps
  its last consistent state; every row is in each trial's ``result.jsonl``).
- With ``PBTLAB_ROW_WRITER=1`` it also encodes and appends the run's ``result.jsonl`` rows (the store's
  :class:`~pbtlab.rundir.store.RowWriter`), on a thread of its own: the driver hands over snapshots of plain
  rows (a dict copy; 1,024 rows a message, with the loggers' batches that share them in the same pickle)
  instead of encoding each as JSON. A state save waits until the helper confirms every row it counts; if the
  helper dies, the driver cuts each file back to its confirmed rows and writes the rest itself. It is off by
  default: measured head to head on a 2-core VM it gave no wall-time gain (docs/scaling.md).
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

from pbtlab.errors import PbtlabError

if TYPE_CHECKING:
    import queue
    import subprocess

    from pbtlab.rundir.store import ExperimentStore

__all__ = ["enabled", "enabled_for_rows", "LoggerProcess", "LoggerProcessError", "serve"]

_HEADER = struct.Struct("<QB")  # each message: its length and its channel, then the pickled (operation, *arguments)
#: channels: progress.csv and TensorBoard batches (the main thread); result rows (their own thread); rows and the
#: file batches held back since the last rows, in one pickle (the rows the batches share are pickled once); file
#: batches held back until each logger had sent one, in one pickle (the same: each row once for both files)
_FILES, _ROWS, _BOTH, _MANY = 0, 1, 2, 3
_ACK = struct.Struct("<Q")  # the helper's answer to ("sync", n): b"A" and n once every row sent before is written
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

    def __init__(self, store: ExperimentStore | None = None) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._users = 0
        self._store = store  # once started, the helper also encodes and appends this store's result rows
        self._syncs = 0
        self._said = ""  # what the helper said when it failed, if read before the end
        self._ending = False
        self._held: list[tuple[Any, ...]] = []  # file batches waiting for the next rows, or for each logger's (send)
        self._interrupted = False
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
            if self._store is not None and enabled_for_rows():
                self._store.write_rows_through(self)
            else:  # the driver writes the rows: file batches go at once (they wait for rows only to share them)
                self._store = None
        self._users += 1
        return True

    def send(self, operation: str, *arguments: Any, channel: int = _FILES) -> None:
        """Queue one operation for the helper (it carries out each channel's in order). File batches are held
        back until there are as many as loggers use the helper, then go in one message: progress.csv's and
        TensorBoard's batches of the same rows share them, and pickle writes each row once (a run of 1,024 trials
        sent 130 MB, each row twice). While the helper writes the store's rows, file batches wait for the next
        rows instead and go with them (:meth:`send_rows`)."""
        self._running()
        if self._interrupted:
            return
        if channel == _FILES:
            self._held.append((operation, *arguments))
            if self._store is None and len(self._held) >= self._users:
                self._send_held()
            return
        self._write(_pickled((operation, *arguments)), channel)

    def _send_held(self) -> None:
        held, self._held = self._held, []
        if held and not self._interrupted:  # after an interruption the files get nothing more (see _interrupt)
            self._write(_pickled(held), _MANY)

    def _running(self) -> subprocess.Popen[bytes]:
        """The helper's process; a ``LoggerProcessError`` if it is not running."""
        process = self._process
        if process is None or process.stdin is None:
            raise LoggerProcessError("the helper process that writes progress.csv and TensorBoard files is not "
                                     "running (an earlier batch failed)")
        return process

    def _write(self, data: bytes, channel: int) -> None:
        process = self._running()
        assert process.stdin is not None  # checked by _running
        try:
            process.stdin.write(_HEADER.pack(len(data), channel))
            process.stdin.write(data)
            process.stdin.flush()
        except OSError:  # the helper has ended: say why
            if not self._ending:
                self._end()
            raise LoggerProcessError("the helper process that writes progress.csv and TensorBoard files ended "
                                     "before the run did; every row is in each trial's result.jsonl") from None

    def send_rows(self, batches: list[tuple[str, list[str | dict[str, Any]]]]) -> None:
        """The store's :class:`~pbtlab.rundir.store.RowWriter`: append each ``(result file, rows)`` in the helper.
        The loggers' batches held since the last rows go in the same pickle: the rows they share with the store
        (its snapshots) are pickled once."""
        held, self._held = self._held, []
        try:
            self._write(_pickled((batches, held)), _BOTH)
        except LoggerProcessError:
            raise
        except BaseException:  # Ctrl-C part way: the pipe may hold half a message
            self._interrupt()
            raise

    def sync_rows(self) -> bool:
        """The store's :class:`~pbtlab.rundir.store.RowWriter`: wait until the helper has written every row sent;
        False when it has ended (it may have written some of them)."""
        try:
            if self._acknowledged():
                return True
        except BaseException:  # Ctrl-C while waiting: the answer may be half read
            self._interrupt()
            raise
        self._halt()  # another of its threads may still append: nothing of it may follow the store's own writes
        self._store = None  # the store writes its rows itself now; the loggers' next batch finds the helper gone
        return False

    def _halt(self) -> None:
        """End the helper now (SIGKILL) and wait until it has: the store is about to cut back and write the rows
        the helper did not confirm."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()

    def _interrupt(self) -> None:
        """A message to or from the helper was cut short (Ctrl-C): its pipe cannot be read in step any more. The
        helper is ended; the store writes its rows itself, and the loggers' files get nothing more this run (a
        resumed run rebuilds progress.csv from result.jsonl)."""
        self._halt()
        self._store = None
        self._interrupted = True

    def _acknowledged(self) -> bool:
        self._syncs += 1
        try:
            self.send("sync", self._syncs, channel=_ROWS)
        except LoggerProcessError:
            return False
        process = self._process
        if process is None or process.stdout is None:
            return False
        while True:
            kind = process.stdout.read(1)
            if kind != b"A":  # b"E" and what went wrong, or the end of the pipe: the helper has ended
                self._said = process.stdout.read().decode("utf-8", "replace").strip() if kind else ""
                return False
            data = process.stdout.read(_ACK.size)
            if len(data) < _ACK.size:
                return False
            if _ACK.unpack(data)[0] >= self._syncs:
                return True

    def send_csv(self, batches: list[tuple[str, list[str], bool, list[dict[str, Any]]]]) -> None:
        """:func:`pbtlab.loggers.formats.append_csv` for each ``(directory, header, new_file, rows)``, in the helper."""
        self.send("csv", batches)

    def send_tensorboard(self, batches: list[tuple[str, list[tuple[int, float, dict[str, Any]]]]]) -> None:
        """:func:`pbtlab.loggers.formats.add_tensorboard_rows` for each ``(directory, rows)``, then one flush, in the helper."""
        sent = []
        for directory, rows in batches:  # each row (step, time, flat row), or what the store kept (line, snapshot)
            clocks = [row[:2] if type(row) is tuple else None for row in rows]
            sent.append((directory, clocks, [row[2] if type(row) is tuple else row for row in rows]))
        self.send("tensorboard", sent)

    def release(self) -> None:
        """A logger is done with the helper; the last one ends it, after everything sent is written."""
        self._users -= 1
        if self._users <= 0:
            self._end()

    def _end(self) -> None:
        if self._ending:
            return
        self._ending = True
        try:
            self._finish()
        finally:
            self._ending = False

    def _finish(self) -> None:
        store = self._store
        if store is not None and self._process is not None:
            store.write_rows_through(None)  # every row handed over is written (by the helper, or else by the store)
        self._store = None
        try:
            self._send_held()
        except LoggerProcessError:  # the helper has ended: its exit status says why, below
            pass
        process, self._process = self._process, None
        self._users = 0
        if process is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        try:  # "end" as a message too: a process forked from the driver may hold the pipe open after it closes
            if process.stdin is not None:
                process.stdin.write(_HEADER.pack(len(_END), _FILES) + _END)
                process.stdin.flush()
        except OSError:  # it has ended already: its status says how
            pass
        _close_pipe(process)
        assert process.stdout is not None  # internal invariant: started with stdout=PIPE
        said = _error_text(process.stdout.read()) or self._said
        process.stdout.close()
        status = process.wait()
        if status != 0 and not self._interrupted:
            raise LoggerProcessError(
                f"the helper process that writes progress.csv and TensorBoard files failed: "
                f"{said or f'exit status {status}'}. Every row is in each trial's result.jsonl")


def _error_text(output: bytes) -> str:
    """What the helper said when it failed, from what it wrote after the acknowledgements read so far.

        >>> _error_text(b"A" + _ACK.pack(3) + b"EOSError: disk full")
        'OSError: disk full'
    """
    position = 0
    while position < len(output) and output[position:position + 1] == b"A":
        position += 1 + _ACK.size
    return output[position + 1:].decode("utf-8", "replace").strip()


def enabled_for_rows() -> bool:
    """Whether the helper also encodes and appends ``result.jsonl`` rows: only with ``PBTLAB_ROW_WRITER=1``. On the
    2-core VM of docs/scaling.md it saved the driver a few µs of CPU per report but no wall time, and held more
    memory, so the driver writes the rows by default."""
    return os.environ.get("PBTLAB_ROW_WRITER", "0").strip() == "1"


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


def _read_messages(stream: Any, channels: tuple[queue.SimpleQueue[Any], ...]) -> None:
    """Put each message read from ``stream`` on its channel's queue, then None on each at the end of the stream
    (a message cut short means the driver died while sending it: it is dropped, as it would be in the driver)."""
    try:
        while True:
            head = stream.read(_HEADER.size)
            if len(head) < _HEADER.size:
                break
            size, channel = _HEADER.unpack(head)
            data = stream.read(size)
            if len(data) < size:
                break
            if channel == _BOTH:  # rows, then the file batches held back for them: one pickle, shared rows
                rows, held = pickle.loads(data)
                channels[_ROWS].put(("rows", rows))
                for operation in held:
                    channels[_FILES].put(operation)
            elif channel == _MANY:  # file batches, in order: one pickle, shared rows
                for operation in pickle.loads(data):
                    channels[_FILES].put(operation)
            else:
                channels[channel].put(data)
    finally:
        for messages in channels:
            messages.put(None)


def _say(lock: threading.Lock, data: bytes) -> None:
    with lock:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _say_failed(lock: threading.Lock, error: BaseException) -> None:
    """Tell the driver what went wrong (``b"E"`` and the error), which it raises or reports."""
    _say(lock, f"E{type(error).__name__}: {error}".encode("utf-8", "replace"))


def _write_rows(messages: queue.SimpleQueue[Any], lock: threading.Lock) -> None:
    """The rows channel: encode the store's rows (with its own ``dumps``: the same bytes) and keep each file's
    lines until a ``sync``, which appends them, one open per file, and answers; the lines still kept when the
    driver stops sending are appended too. An error ends the helper, saying what it was."""
    from pbtlab.rundir.store import dumps

    kept: dict[str, list[str]] = {}
    try:
        while True:
            data = messages.get()
            if data is not None:
                operation, argument = pickle.loads(data) if type(data) is bytes else data
                if operation == "rows":
                    for path, items in argument:
                        kept.setdefault(path, []).extend(item if type(item) is str else dumps(item) for item in items)
                    continue
            for path, lines in kept.items():
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write("\n".join(lines) + "\n")
            kept.clear()
            if data is None:
                return
            _say(lock, b"A" + _ACK.pack(argument))
    except BaseException as error:
        _say_failed(lock, error)
        os._exit(1)


def serve() -> None:
    """The helper's main loop: carry out each operation read from standard input until it closes."""
    from pbtlab.loggers._tbx import EventFileWriter, flush_many
    from pbtlab.loggers.formats import SharedRows, add_tensorboard_rows, append_csv, event_writer, tensorboard_clock

    import queue
    import signal

    # The reader thread must get the interpreter back soon after each read returns, or the driver's next write
    # waits on a full pipe while this process formats a batch (the default switch interval is 5 ms).
    sys.setswitchinterval(0.0002)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which ends this at the run's end
    messages: queue.SimpleQueue[Any] = queue.SimpleQueue()  # pickled bytes, or an operation already unpickled
    row_messages: queue.SimpleQueue[Any] = queue.SimpleQueue()
    lock = threading.Lock()
    # A thread drains the pipe as fast as the driver writes: the driver never waits while a batch is written.
    # Result rows have their own thread: a state save waits for them, not for the progress.csv batch in hand.
    threading.Thread(target=_read_messages, args=(sys.stdin.buffer, (messages, row_messages)), daemon=True).start()
    row_writer = threading.Thread(target=_write_rows, args=(row_messages, lock), daemon=True)
    row_writer.start()
    writers: dict[str, EventFileWriter] = {}
    shared = SharedRows()  # progress.csv and TensorBoard get the same lines: each is read once
    try:
        while True:
            data = messages.get()
            if data is None:
                break  # the pipe closed: the run ended (or the driver died)
            operation, *arguments = pickle.loads(data) if type(data) is bytes else data
            if operation == "end":
                break
            if operation == "csv":
                for directory, header, new_file, rows in arguments[0]:
                    append_csv(directory, header, new_file, shared.flat_rows(rows))
            elif operation == "tensorboard":
                touched = []
                for directory, clocks, sent in arguments[0]:
                    writer = event_writer(writers, directory)
                    rows = [(*(tensorboard_clock(flat) if clock is None else clock), flat)
                            for clock, flat in zip(clocks, shared.flat_rows(sent))]
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
        row_messages.put(None)  # after "end" the driver sends nothing more; the row thread appends what it keeps
        row_writer.join()
    except Exception as error:
        _say_failed(lock, error)
        status = 1
    else:
        status = 0
    # Not a normal interpreter exit: the reader thread may still be blocked in a read of standard input, which
    # an exiting interpreter would abort on. Every file is closed by now.
    os._exit(status)
