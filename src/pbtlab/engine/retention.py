"""Which checkpoints are kept (``CheckpointConfig(num_to_keep)``), which are pinned, and when they go.

A checkpoint is *pinned* while something may still load it: the trial's own latest, a restart that
is decided but not carried out, or a donor checkpoint the scheduler may still hand to a clone.
Pinned checkpoints survive retention whatever ``num_to_keep`` says. A trial over ``num_to_keep`` is noted
when it registers a checkpoint; just before each state save, the noted trials are pruned against one
set of pins (one pass over the population per save, not per checkpoint: at 1,024 trials with
``num_to_keep=4`` a pass per checkpoint and per restart cost 84 µs per report). A retired checkpoint is
recorded then (``checkpoint_deleted``) and removed from disk after that save, so a run resumed from the
previous state still finds every checkpoint that state names.
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
        self._noted: dict[str, Trial] = {}  # trials over num_to_keep, pruned at the next prune_noted

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

    def note(self, trial: Trial) -> None:
        """``trial`` registered a checkpoint (or was loaded by a resume): if it now has more than ``num_to_keep``,
        :meth:`prune_noted` prunes it."""
        if self.needs_prune(trial):
            self._noted[trial.trial_id] = trial

    def prune_noted(self, trials: Iterable[Trial]) -> None:
        """Prune every noted trial against one set of pins (``trials``: the whole population). A trial that its
        pinned checkpoints keep over the limit stays noted: a later restart or exploit may unpin them."""
        if not self._noted:
            return
        pinned = self.pinned(trials)
        for trial_id, trial in list(self._noted.items()):
            self.prune(trial, pinned)
            if not self.needs_prune(trial):
                del self._noted[trial_id]

    def after_state_save(self) -> None:
        """The saved state no longer names the retired checkpoints: remove them from disk."""
        doomed, self._doomed = self._doomed, []
        for ref in doomed:
            shutil.rmtree(self.deletable(ref.path), ignore_errors=True)
