"""Checkpoints inside a run directory: where a trial's checkpoint lives, and how it gets there.

    >>> ref = CheckpointRef(trial_id="t0", path="/run/t0/checkpoint_000003", iteration=4, time_total_s=1.5, index=3)
    >>> CheckpointRef.from_dict(ref.to_dict()) == ref
    True
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import sys
import tempfile
import weakref
from collections.abc import Mapping
from typing import Any

from pbtlab import lazy_dataclass

__all__ = ["CheckpointRef", "finalizer_mark", "kept_positions", "made_since", "persist_directory"]


@lazy_dataclass.dataclass(frozen=True, slots=True)
class CheckpointRef:
    """A persisted checkpoint of a trial, with the clock values it was taken at."""

    trial_id: str
    path: str
    iteration: int
    time_total_s: float
    index: int
    score: float | None = None  # CheckpointConfig(checkpoint_score_attribute)'s value when it was taken

    def to_dict(self) -> dict[str, Any]:
        data = {"trial_id": self.trial_id, "path": self.path, "iteration": self.iteration,
                "time_total_s": self.time_total_s, "index": self.index}
        if self.score is not None:
            data["score"] = self.score
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointRef:
        return cls(**data)


def persist_directory(source: str, target_dir: str, name: str, move: bool = False) -> str:
    """Copy ``source`` to ``target_dir/name`` atomically (copy to a hidden name, then rename).

    ``move``: ``source`` is scratch space; it is moved instead (a rename on the same file system) and is
    gone afterwards."""
    final = os.path.join(target_dir, name)
    if move:
        try:  # one step, and as atomic as the staged rename below; an empty folder of that name is replaced
            os.rename(source, final)
            return final
        except OSError:  # another file system, or a file or a non-empty folder of that name: the staged path
            pass
    staging = os.path.join(target_dir, f".tmp_{name}_{os.getpid()}")
    if os.path.exists(staging):
        shutil.rmtree(staging)
    if move:
        shutil.move(source, staging)
    else:
        shutil.copytree(source, staging)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(staging, final)
    return final


#: ``itertools.count.__reduce__`` gives the count without a warning before Python 3.12 (deprecated there).
_COUNT_REDUCES = sys.version_info < (3, 12)


def finalizer_mark() -> int | None:
    """Where ``weakref.finalize``'s counter stands now: every finalizer made later (``tempfile.TemporaryDirectory``
    makes one) gets an index at least this. None if this Python keeps no such counter.

        >>> mark = finalizer_mark()
        >>> with tempfile.TemporaryDirectory() as scratch:
        ...     made_since(scratch, mark)
        True
    """
    counter = getattr(weakref.finalize, "_index_iter", None)
    if _COUNT_REDUCES and type(counter) is itertools.count:  # (count, (17,)): 0.1 µs where the repr takes 0.6
        value = counter.__reduce__()[1][0]
        return value if type(value) is int else None
    text = repr(counter)  # "count(17)"; read without taking a number
    if not (text.startswith("count(") and text.endswith(")")):
        return None
    try:
        return int(text[6:-1])
    except ValueError:
        return None


def made_since(path: str, mark: int | None) -> bool:
    """Whether ``path`` is the folder of a live ``tempfile.TemporaryDirectory`` made after :func:`finalizer_mark`
    returned ``mark``, which deletes it when its ``with`` block (or its object) ends.

    Such a folder, reported with a checkpoint, is scratch space of this step: moving it costs one rename
    where a copy costs a folder and two files per file. Anything else (a folder of the trainable's own, a
    ``TemporaryDirectory`` made before the step or with ``delete=False``, a Python whose ``tempfile`` or
    ``weakref`` work differently) answers False, and the folder is copied.
    """
    registry = getattr(weakref.finalize, "_registry", None)
    cleanup = getattr(getattr(tempfile.TemporaryDirectory, "_cleanup", None), "__func__", None)
    if mark is None or cleanup is None or not isinstance(registry, dict):
        return False
    wanted = {path, os.path.abspath(path)}
    try:
        for info in reversed(registry.values()):  # newest first: the step's own are at the end
            if info.index < mark:
                return False
            if (getattr(info.func, "__func__", None) is cleanup and info.args and info.args[0] in wanted
                    and info.kwargs.get("delete", True)):
                return True
    except (AttributeError, RuntimeError, TypeError):  # another thread changed the registry, or its shape differs
        return False
    return False


def kept_positions(scores: list[float | None], keep: int, order: str | None) -> list[int]:
    """Which of a trial's checkpoints ``CheckpointConfig(num_to_keep=keep)`` keeps, as positions in the
    list ``scores`` (oldest first): the ``keep`` most recent (``order`` None), or the ``keep`` best by score
    (``order`` "max"/"min"; a missing or non-finite score ranks last, ties go to the more recent one).
    As Ray's ``Result.best_checkpoints``: worst first, best (or newest) last.

        >>> kept_positions([5.0, 1.0, 9.0, 3.0], 2, None), kept_positions([5.0, 1.0, 9.0, 3.0], 2, "max")
        ([2, 3], [0, 2])
        >>> kept_positions([5.0, None, 9.0, 3.0], 2, "min")
        [0, 3]
    """
    if order is None:
        return list(range(max(len(scores) - keep, 0), len(scores)))
    sign = 1.0 if order == "max" else -1.0

    def rank(position: int) -> tuple[float, int]:
        score = scores[position]
        finite = isinstance(score, (int, float)) and score == score and abs(score) != float("inf")
        return (sign * float(score) if finite else float("-inf"), position)  # type: ignore[arg-type]

    return sorted(sorted(range(len(scores)), key=rank, reverse=True)[:keep], key=rank)
