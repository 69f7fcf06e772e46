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

__all__ = ["Checkpoint"]


class Checkpoint:
    """A checkpoint is a directory of files the trainable wrote."""

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Wrap an existing directory; it is copied into the experiment when reported (moved, when it is a
        ``tempfile.TemporaryDirectory`` made during that step: see ``tune.report``)."""
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
