"""Which checkpoints are kept (``CheckpointConfig(num_to_keep)``), which are pinned, and when they go.

A checkpoint is *pinned* while something may still load it: the trial's own latest, a restart that
is decided but not carried out, or a donor checkpoint the scheduler may still hand to a clone.
Pinned checkpoints survive retention whatever ``num_to_keep`` says. A retired checkpoint is
recorded at once (``checkpoint_deleted``) but removed from disk only after the next state save, so a
run resumed from the previous state still finds every checkpoint that state names.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable

from pbtlab.engine.trial import Trial
from pbtlab.rundir.checkpoints import CheckpointRef, kept_positions
from pbtlab.schedulers.base import TrialScheduler

__all__ = ["Retention"]


class Retention:
    """Applies ``num_to_keep`` to each trial's checkpoints; deletes from disk in :meth:`after_state_save`."""

    def __init__(self, num_to_keep: int | None, scheduler: TrialScheduler, deletable: Callable[[str], str],
                 record_deleted: Callable[[CheckpointRef], None], score_order: str | None = None) -> None:
        """``deletable(path)``: the absolute path of a checkpoint to delete; it raises for a path outside the
        run (``ExperimentStore.deletable``). ``score_order`` ("max"/"min"): keep the best-scored checkpoints
        instead of the most recent."""
        self.num_to_keep = num_to_keep
        self.score_order = score_order
        self.scheduler = scheduler
        self.deletable = deletable
        self.record_deleted = record_deleted
        self._doomed: list[CheckpointRef] = []

    def pinned(self, trials: Iterable[Trial]) -> set[str]:
        """Paths that must not be deleted now."""
        pinned = set(self.scheduler.referenced_checkpoints())
        for trial in trials:
            if trial.latest is not None:
                pinned.add(trial.latest.path)
            if trial.restart is not None and trial.restart.checkpoint is not None:
                pinned.add(trial.restart.checkpoint.path)
        return pinned

    def needs_prune(self, trial: Trial) -> bool:
        return self.num_to_keep is not None and len(trial.checkpoints) > self.num_to_keep

    def prune(self, trial: Trial, pinned: set[str]) -> None:
        """Retire the trial's oldest unpinned checkpoints beyond ``num_to_keep``."""
        keep = self.num_to_keep
        if keep is None or len(trial.checkpoints) <= keep:
            return
        wanted = self._wanted(trial.checkpoints, keep)
        survivors = []
        for ref in trial.checkpoints:
            if ref.path in wanted or ref.path in pinned or ref is trial.checkpoints[-1]:
                survivors.append(ref)
            else:
                self.record_deleted(ref)
                self._doomed.append(ref)
        trial.checkpoints = survivors

    def _wanted(self, checkpoints: list[CheckpointRef], keep: int) -> set[str]:
        """The ``keep`` most recent checkpoints, or the ``keep`` best by score (ties: the more recent)."""
        positions = kept_positions([ref.score for ref in checkpoints], keep, self.score_order)
        return {checkpoints[position].path for position in positions}

    def prune_all(self, trials: list[Trial]) -> None:
        if self.num_to_keep is None:
            return
        pinned = self.pinned(trials)
        for trial in trials:
            self.prune(trial, pinned)

    def after_state_save(self) -> None:
        """The saved state no longer names the retired checkpoints: remove them from disk."""
        doomed, self._doomed = self._doomed, []
        for ref in doomed:
            shutil.rmtree(self.deletable(ref.path), ignore_errors=True)
