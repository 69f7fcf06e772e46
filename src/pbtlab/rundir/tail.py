"""Following a run's JSON-lines files as they grow, by byte offset (``pbtlab serve`` reads live runs this way).

Nothing here unpickles anything; a damaged line is reported, never fatal.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "events.jsonl")
    >>> with open(path, "w") as handle:
    ...     _ = handle.write('{"seq": 0}' + chr(10) + '{"seq": 1')
    >>> tail = FileTail(path)
    >>> chunk = tail.read()
    >>> chunk.records, chunk.pending_bytes
    ([{'seq': 0}], 9)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from pbtlab import lazy_dataclass

__all__ = ["DamagedLine", "FileTail", "TailChunk", "inside", "read_json_file"]

#: Largest chunk read from one file per tick; the rest follows on the next tick.
MAX_CHUNK_BYTES = 8 * 1024 * 1024


@lazy_dataclass.dataclass(frozen=True, slots=True)
class DamagedLine:
    """A line that is not a JSON object: ``file`` (relative to the experiment), its 1-based ``line``, why."""

    file: str
    line: int
    message: str

    def describe(self) -> str:
        return f"{self.file} line {self.line} is damaged ({self.message}); it is skipped"


@lazy_dataclass.dataclass(frozen=True, slots=True)
class TailChunk:
    """What one read of a file found: complete records, damaged lines, bytes of an unfinished last line,
    and ``reset`` when the file shrank (rewritten, e.g. truncated by a resume)."""

    records: list[dict[str, Any]]
    damaged: list[DamagedLine]
    pending_bytes: int
    reset: bool = False


class FileTail:
    """Follows one JSON-lines file by byte offset; only complete lines (ending in a newline) are parsed.

    Each read costs what was appended since the last one, not the file's size.
    """

    def __init__(self, path: str, label: str | None = None) -> None:
        self.path = path
        self.label = label or os.path.basename(path)
        self.offset = 0
        self.lines = 0

    def size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def read(self, size: int | None = None) -> TailChunk:
        size = self.size() if size is None else size
        if size < self.offset:
            return TailChunk([], [], 0, reset=True)
        if size == self.offset:
            return TailChunk([], [], 0)
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(min(size - self.offset, MAX_CHUNK_BYTES))
        except OSError as error:
            return TailChunk([], [DamagedLine(self.label, self.lines + 1, f"cannot read: {error.strerror}")], 0)
        end = data.rfind(b"\n")
        if end < 0:
            return TailChunk([], [], len(data))
        lines = data[:end].split(b"\n")
        if all(line.strip() for line in lines):  # the common case: one parse for the whole chunk
            try:
                values = json.loads(b"[" + b",".join(lines) + b"]")
            except (json.JSONDecodeError, UnicodeDecodeError):
                values = None
            if values is not None and len(values) == len(lines) and all(isinstance(v, dict) for v in values):
                self.lines += len(lines)
                self.offset += end + 1
                return TailChunk(values, [], len(data) - end - 1)
        records: list[dict[str, Any]] = []
        damaged: list[DamagedLine] = []
        for raw in lines:
            self.lines += 1
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                damaged.append(DamagedLine(self.label, self.lines, str(error)))
                continue
            if not isinstance(value, dict):
                damaged.append(DamagedLine(self.label, self.lines, f"not a JSON object but {type(value).__name__}"))
                continue
            records.append(value)
        self.offset += end + 1
        return TailChunk(records, damaged, len(data) - end - 1)


def read_json_file(path: str) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, why)`` when the file is missing or damaged."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle), None
    except FileNotFoundError:
        return None, f"{os.path.basename(path)} is missing"
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, f"{os.path.basename(path)} is damaged ({error})"


def inside(root: str, path: str) -> bool:
    """Whether ``path`` (after resolving symlinks) is ``root`` or below it."""
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    return os.path.commonpath([real_root, real]) == real_root
