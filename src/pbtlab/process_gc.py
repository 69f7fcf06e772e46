"""How pbtlab uses Python's cyclic garbage collector in a process that imports it.

Only while pbtlab imports (:func:`paused`): automatic collection is paused, and at the end what is alive is
moved to the oldest generation without being examined (``gc.freeze()`` then ``gc.unfreeze()``: nothing
stays frozen). Importing makes modules, classes and functions, about 11,000 objects that live as long as the
process: the dozen collections the import would trigger find next to nothing (about 2 ms of ``import
pbtlab`` on a 2-core VM), and the young collections after it would examine all of them once more on their
way to the oldest generation (1.1% of the tutorial's process in instructions, about 1 ms). What changes for the
caller: garbage in a reference cycle among what was young at that moment (the import's own couple of hundred
objects, and whatever the caller made and dropped just before) is collected by the next full collection, or
at exit, rather than by a young one. Nothing is moved when something is frozen (``gc.unfreeze()`` would
thaw it).

Freezing for good was measured and is not done:

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
def paused(promote: bool = False, enabled: bool | None = None) -> Iterator[None]:
    """Pause automatic collection for the block; restore it after, as it was, even on error. ``promote``: once
    the block has run without error, move every object to the oldest generation (unless something is frozen).
    ``enabled``: whether collection was on before the caller paused it itself, earlier (None: as it is now).

    ``pbtlab/__init__.py`` pauses collection as its first statement, before it imports this module: a process
    that has just imported numpy is a few allocations away from collecting its young objects (about 0.6 ms),
    which the promotion at the end makes old without examining them."""
    if enabled is None:
        enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if promote and not gc.get_freeze_count():
            gc.freeze()  # every generation into the permanent one...
            gc.unfreeze()  # ...and all of it back into the oldest
    finally:
        if enabled:
            gc.enable()
