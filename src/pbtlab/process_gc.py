"""How pbtlab uses Python's cyclic garbage collector in a process that imports it.

Not at all, except that automatic collection is paused while pbtlab imports (:func:`paused`). Importing makes
modules, classes and functions, which live as long as the process, so the dozen collections an import would
trigger find next to nothing (about 2 ms of ``import pbtlab`` on a 2-core VM).

Freezing objects (:func:`gc.freeze`) was measured and is not done:

- *at exit, after one last collection* (an earlier version, about 9 ms of the tutorial's 0.12 s process): the
  interpreter's shutdown then skipped what was still alive, and so never finalized what only the cyclic
  collector frees. A module's globals and its functions form such a cycle: a script that defined a function
  and left a file open in its globals lost what it had written (``tests/test_process_gc.py``);
- *at the end of the import, thawed at the next full collection and at exit*: the same time as not freezing,
  within 0.5 ms over 30 alternating processes.

    >>> import gc
    >>> with paused():
    ...     gc.isenabled()
    False
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused"]


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Pause automatic collection for the block; restore it after, as it was, even on error."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
