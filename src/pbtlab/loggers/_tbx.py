"""TensorBoard event files, written by pbtlab itself: the bytes tensorboardX writes, without importing it.

Importing tensorboardX (and protobuf under it) costs about 0.15 s per process, more than the whole
tutorial run. The file format is small and fixed, so it is written here directly:

- a file ``<prefix>.out.tfevents.<10 digits of time.time()>.<hostname>`` (tensorboardX's name);
- records framed as TFRecord: ``length`` (uint64 LE), its masked CRC-32C, the data, the data's masked CRC-32C;
- each record an ``Event`` protobuf: ``wall_time`` (field 1, double), ``step`` (2, int64), and either
  ``file_version`` (3, the first record: ``"brain.Event:2"``) or a ``Summary`` (5) of ``Value``\\ s,
  each a ``tag`` (1) and a ``simple_value`` (2, float32). proto3 leaves out a zero ``wall_time`` or ``step``.

``tests/test_loggers.py`` checks that the bytes equal tensorboardX's for the same events. The checksums come
from google-crc32c's C code where it is installed (the ``[tensorboard]`` extra): about 0.15 µs a record
against about 11 µs with numpy (0.06 against 2.3 ms for the tutorial's 400 records), numpy otherwise.

    >>> import os
    >>> writer = EventFileWriter(os.path.join(getfixture("tmp_path"), "events"))
    >>> writer.add_scalars(step=1, wall_time=1.5, values=[("ray/tune/loss", 0.25)])
    >>> writer.close()
    >>> len(open(writer.path, "rb").read())  # the file_version record and one scalar record
    91
"""

from __future__ import annotations

import functools
import os
import struct
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from pbtlab.resources import hostname  # the name tensorboardX puts in event file names

__all__ = [
    "crc32c", "EventFileWriter", "file_version_event", "flush_many", "frame", "frame_many", "scalars_event",
    "scalars_event_of",
]

_MASK32 = 0xFFFFFFFF


@functools.cache
def _crc32c_table() -> tuple[list[int], np.ndarray]:
    """The byte table of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as a list and as a numpy array:
    made on first use, as only the code without google-crc32c needs it (about 0.12 ms).

        >>> table, array = _crc32c_table()
        >>> hex(table[1]), array.dtype.name
        ('0xf26b8303', 'uint32')
    """
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table, np.array(table, dtype=np.uint32)


#: Below this many records, a Python loop beats numpy's per-call cost.
_VECTOR_FROM = 8


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data``.

        >>> hex(crc32c(b"123456789"))
        '0xe3069283'
    """
    crc = _MASK32
    table = _crc32c_table()[0]
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK32


@functools.cache
def native_crc32c() -> Callable[[bytes], int] | None:
    """google-crc32c's CRC-32C in C (``google_crc32c.value``), or None where it is not installed or would run
    its pure-Python fallback (imported on first use: about 1 ms)."""
    try:
        import google_crc32c
    except ImportError:
        return None
    if getattr(google_crc32c, "implementation", None) != "c":
        return None
    value: Callable[[bytes], int] = google_crc32c.value
    return value


def _crc32c_many(records: Sequence[bytes]) -> list[int]:
    """CRC-32C of each record: with google-crc32c where it is installed (:func:`native_crc32c`), else
    with numpy. There, records of one length (a run's rows nearly all share a few lengths) go through
    numpy together, a byte column at a time across all of them; a length with few records goes byte by
    byte."""
    native = native_crc32c()
    if native is not None:
        return [native(record) for record in records]
    if len(records) < _VECTOR_FROM:
        return [crc32c(record) for record in records]
    by_length: dict[int, list[int]] = {}
    for index, record in enumerate(records):
        by_length.setdefault(len(record), []).append(index)
    out = [0] * len(records)
    for length, indices in by_length.items():
        if len(indices) < _VECTOR_FROM or length == 0:
            for index in indices:
                out[index] = crc32c(records[index])
            continue
        columns = np.frombuffer(b"".join([records[i] for i in indices]), dtype=np.uint8)
        columns = np.ascontiguousarray(columns.reshape(len(indices), length).T).astype(np.uint32)
        crc = np.full(len(indices), _MASK32, dtype=np.uint32)
        table = _crc32c_table()[1]
        for column in columns:
            crc = table[(crc ^ column) & 0xFF] ^ (crc >> 8)
        for index, value in zip(indices, (crc ^ _MASK32).tolist()):
            out[index] = value
    return out


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & _MASK32


def _varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1  # int64 as protobuf writes it: ten bytes of two's complement
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _float32(value: float) -> bytes:
    try:
        return struct.pack("<f", value)
    except OverflowError:  # beyond float32: protobuf stores infinity with the sign
        return struct.pack("<f", float("inf") if value > 0 else float("-inf"))


_TAG_PREFIX: dict[str, bytes] = {}


def _value(tag: str, value: float) -> bytes:
    prefix = _TAG_PREFIX.get(tag)
    if prefix is None:
        encoded = tag.encode("utf-8")
        prefix = _TAG_PREFIX[tag] = b"\n" + _varint(len(encoded)) + encoded + b"\x15"
    body = prefix + _float32(value)
    return b"\n" + _varint(len(body)) + body


def _event_head(wall_time: float, step: int) -> bytes:
    head = b"\t" + struct.pack("<d", wall_time) if wall_time != 0 else b""
    return head + (b"\x10" + _varint(step) if step else b"")


def scalars_event(step: int, wall_time: float, values: Iterable[tuple[str, float]]) -> bytes:
    """One serialized ``Event`` whose ``Summary`` holds ``values`` as (tag, simple_value)."""
    summary = b"".join(_value(tag, value) for tag, value in values)
    return _event_head(wall_time, step) + b"*" + _varint(len(summary)) + summary


_PREFIXES: dict[tuple[str, ...], list[bytes]] = {}


def scalars_event_of(step: int, wall_time: float, tags: tuple[str, ...], values: Sequence[float]) -> bytes:
    """``scalars_event`` for rows that share their tags (a run's rows do): each tag's bytes are made once,
    and the floats are packed in one call."""
    prefixes = _PREFIXES.get(tags)
    if prefixes is None:
        prefixes = _PREFIXES[tags] = [_value(tag, 0.0)[:-4] for tag in tags]
    try:
        packed = struct.pack(f"<{len(values)}f", *values)
    except OverflowError:  # a value beyond float32: the one-by-one path stores it as infinity
        return scalars_event(step, wall_time, zip(tags, values))
    parts: list[bytes] = [b""] * (2 * len(prefixes))
    parts[0::2] = prefixes
    parts[1::2] = [packed[i:i + 4] for i in range(0, 4 * len(prefixes), 4)]
    summary = b"".join(parts)
    return _event_head(wall_time, step) + b"*" + _varint(len(summary)) + summary


def file_version_event(wall_time: float) -> bytes:
    version = b"brain.Event:2"
    return _event_head(wall_time, 0) + b"\x1a" + _varint(len(version)) + version


def frame(records: Sequence[bytes]) -> bytes:
    """``records`` framed as TFRecords, ready to append to an event file."""
    return frame_many([records])[0]


def frame_many(batches: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Each batch of records framed, the CRCs of all of them computed in one pass (one file per batch)."""
    records = [record for batch in batches for record in batch]
    headers = [struct.pack("<Q", len(record)) for record in records]
    crcs = _crc32c_many(headers + records)
    header_crcs, data_crcs = crcs[:len(records)], crcs[len(records):]
    out: list[bytes] = []
    position = 0
    for batch in batches:
        parts: list[bytes] = []
        for index in range(position, position + len(batch)):
            parts += (headers[index], struct.pack("<I", _masked(header_crcs[index])), records[index],
                      struct.pack("<I", _masked(data_crcs[index])))
        position += len(batch)
        out.append(b"".join(parts))
    return out


class EventFileWriter:
    """An event file named and started as tensorboardX's ``EventsWriter(prefix)`` does; scalar events are
    kept in memory and written (framed in one batch) by ``flush()`` and ``close()``.

    The file is opened only to write a batch: a run of 1,024 trials has 1,024 event files, more than the
    open-file limit of many systems (256 on macOS, often 1,024 on Linux)."""

    def __init__(self, file_prefix: str, filename_suffix: str = "") -> None:
        self.path = (f"{file_prefix}.out.tfevents.{str(time.time())[:10]}.{hostname()}"
                     f"{filename_suffix}")
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        open(self.path, "wb").close()  # the file exists from the start, as tensorboardX's does
        self._pending: list[bytes] = [file_version_event(time.time())]
        self.closed = False

    def add_scalars(self, step: int, wall_time: float, values: Iterable[tuple[str, float]]) -> None:
        self._pending.append(scalars_event(step, wall_time, values))

    def add_row(self, step: int, wall_time: float, tags: tuple[str, ...], values: Sequence[float]) -> None:
        """``add_scalars`` for ``zip(tags, values)``, faster when many rows share their tags."""
        self._pending.append(scalars_event_of(step, wall_time, tags, values))

    def flush(self) -> None:
        flush_many([self])

    def _take(self) -> list[bytes]:
        pending, self._pending = self._pending, []
        return pending

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True


def flush_many(writers: Sequence[EventFileWriter]) -> None:
    """Write every writer's pending events, framed together (one CRC pass for all files)."""
    batches = [writer._take() for writer in writers]
    for writer, data in zip(writers, frame_many(batches)):
        if data:
            with open(writer.path, "ab") as handle:
                handle.write(data)
