"""``FIFOScheduler``: the default; runs trials in the order they were added and never pauses them.

    >>> FIFOScheduler().debug_string()
    'Using FIFO scheduling algorithm.'
"""

from __future__ import annotations

from collections.abc import Sequence

from pbtlab.schedulers.base import TrialScheduler, TrialView


class FIFOScheduler(TrialScheduler):
    """Runs trials in the order they were added and never pauses them (the default)."""

    def choose_trials_to_run(self, candidates: Sequence[TrialView], k: int, allow_any: bool = False) -> list[str]:
        return [t.trial_id for t in candidates[:k]]
