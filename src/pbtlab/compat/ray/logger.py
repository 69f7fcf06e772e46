"""``ray.tune.logger`` under ``pbtlab run``: ``LoggerCallback`` (Ray's base class for per-trial outputs) and the
default loggers pbtlab already runs (``CSVLoggerCallback``, ``JsonLoggerCallback``, ``TBXLoggerCallback``).

A ``LoggerCallback`` subclass overrides Ray's ``log_trial_*`` methods, or the ``on_trial_*`` hooks directly.

    >>> class Printer(LoggerCallback):
    ...     def log_trial_result(self, iteration, trial, result):
    ...         print(trial, result["loss"])
    >>> Printer().on_trial_result(iteration=1, trials=[], trial="t0", result={"loss": 0.5})
    t0 0.5
"""

from __future__ import annotations

from typing import Any

from pbtlab.callbacks import Callback
from pbtlab.loggers import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

__all__ = ["CSVLoggerCallback", "JsonLoggerCallback", "LoggerCallback", "TBXLoggerCallback"]


class LoggerCallback(Callback):
    """Ray's ``LoggerCallback``: the ``on_trial_*`` hooks call ``log_trial_start/restore/save/result/end``."""

    def log_trial_start(self, trial: Any) -> None:
        """A trial started (or restarted)."""

    def log_trial_restore(self, trial: Any) -> None:
        """A trial's state was restored."""

    def log_trial_save(self, trial: Any) -> None:
        """A trial saved a checkpoint."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        """A trial reported ``result``."""

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        """A trial ended (``failed``: it errored)."""

    def on_trial_start(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self.log_trial_start(trial)

    def on_trial_restore(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self.log_trial_restore(trial)

    def on_trial_save(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self.log_trial_save(trial)

    def on_trial_result(self, iteration: int, trials: Any, trial: Any, result: dict[str, Any], **info: Any) -> None:
        self.log_trial_result(iteration, trial, result)

    def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self.log_trial_end(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
        self.log_trial_end(trial, failed=True)
