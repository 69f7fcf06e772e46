"""``FIFOScheduler``: the default; runs trials in the order they were added and never pauses them.

    >>> FIFOScheduler().debug_string()
    'Using FIFO scheduling algorithm.'
"""

from __future__ import annotations

from pbtlab.schedulers.base import TrialScheduler

__all__ = ["FIFOScheduler"]


class FIFOScheduler(TrialScheduler):
    """Runs trials in the order they were added and never pauses them (the default): every hook is the
    base class's."""
