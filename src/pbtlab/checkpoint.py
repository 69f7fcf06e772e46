"""Directory checkpoints, as in Ray Tune: ``Checkpoint.from_directory(path)``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     ckpt = Checkpoint.from_directory(d)
    ...     with ckpt.as_directory() as path:
    ...         path == d
    True
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

from pbtlab.errors import ConfigError, describe


class Checkpoint:
    """A checkpoint is a directory of files the trainable wrote."""

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Wrap an existing directory; it is copied into the experiment when reported."""
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"Checkpoint.from_directory(path) needs a directory path, got {describe(path)}")
        if not os.path.isdir(path):
            what = "is a file, not a directory" if os.path.exists(path) else "does not exist"
            raise ConfigError(f"Checkpoint.from_directory(path): {os.fspath(path)!r} {what}")
        return cls(path)

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """Yield a local directory with the checkpoint's files (the checkpoint's own directory)."""
        if not os.path.isdir(self.path):
            raise ConfigError(f"checkpoint directory {self.path!r} does not exist any more")
        yield self.path

    def to_directory(self, path: str | os.PathLike[str] | None = None) -> str:
        """Copy the checkpoint's files into ``path`` (a new temporary directory if None); return it."""
        if path is None:
            import tempfile

            target = tempfile.mkdtemp(prefix="pbtlab_checkpoint_")
        else:
            target = os.fspath(path)
        shutil.copytree(self.path, target, dirs_exist_ok=True)
        return target

    def __fspath__(self) -> str:
        return self.path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and os.path.normpath(self.path) == os.path.normpath(other.path)

    def __hash__(self) -> int:
        return hash(os.path.normpath(self.path))  # equal checkpoints hash alike, as __eq__ compares normpaths

    def __repr__(self) -> str:
        return f"Checkpoint(path={self.path!r})"


def persist_directory(source: str, target_dir: str, name: str, move: bool = False) -> str:
    """Copy ``source`` to ``target_dir/name`` atomically (copy to a hidden name, then rename).

    ``move``: ``source`` is scratch space; it is moved instead (a rename on the same file system) and is
    gone afterwards."""
    final = os.path.join(target_dir, name)
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
