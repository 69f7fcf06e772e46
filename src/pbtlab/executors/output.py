"""``RunConfig(log_to_file=...)`` for trials that run as threads of the driver (the in-process executor).

Threads share the process's file descriptors, so their output cannot be redirected the way a worker
process's is. Instead, while a run uses ``log_to_file``, ``sys.stdout`` and ``sys.stderr`` are replaced
by :class:`TrialOutputProxy` objects: text written from inside a trial's function goes to that trial's
files, anything else (the driver's log, other code) to the original stream. The originals come back
when the run ends. Output written below Python (C extensions writing to fd 1) and from threads a trial
starts itself is not captured: use the process executor for those.

    >>> router = OutputRouter()
    >>> router.install()
    >>> router.restore()
"""

from __future__ import annotations

import os
import sys
import threading
from typing import IO, Any

from pbtlab.session import current_session, log_paths

__all__ = ["OutputRouter", "TrialOutputProxy"]


class TrialOutputProxy:
    """Stands in for ``sys.stdout`` (``index`` 0) or ``sys.stderr`` (1): routes each write by trial."""

    def __init__(self, router: OutputRouter, original: Any, index: int) -> None:
        self._router = router
        self._original = original
        self._index = index

    def _target(self) -> Any:
        session = current_session()
        if session is None:
            return self._original
        path = log_paths(session.spec)[self._index]
        return self._original if path is None else self._router.file(path)

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines: Any) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno... of the stream in use
        return getattr(self._target(), name)


class OutputRouter:
    """Installs the two proxies, owns the trials' open log files, and restores the streams.

    At most ``MAX_OPEN`` log files are open at once (the least recently written is closed, and opened again
    to append when its trial writes): a population of 1,024 trials would pass the open-file limit of many
    systems (256 on macOS, often 1,024 on Linux)."""

    MAX_OPEN = 64

    def __init__(self) -> None:
        self._files: dict[str, IO[str]] = {}
        self._lock = threading.Lock()
        self._saved: tuple[Any, Any] | None = None

    @property
    def installed(self) -> bool:
        return self._saved is not None

    def install(self) -> None:
        if self._saved is None:
            self._saved = (sys.stdout, sys.stderr)
            sys.stdout = TrialOutputProxy(self, sys.stdout, 0)  # type: ignore[assignment]
            sys.stderr = TrialOutputProxy(self, sys.stderr, 1)  # type: ignore[assignment]

    def file(self, path: str) -> IO[str]:
        """The open log file at ``path`` (appended to; line-buffered so it is readable while the run goes on)."""
        with self._lock:
            handle = self._files.pop(path, None)
            if handle is None:
                if len(self._files) >= self.MAX_OPEN:
                    self._files.pop(next(iter(self._files))).close()  # the least recently written
                os.makedirs(os.path.dirname(path), exist_ok=True)
                handle = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed in restore()
            self._files[path] = handle  # now the most recently written
            return handle

    def restore(self) -> None:
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()
