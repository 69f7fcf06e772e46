"""One exception family for everything pbtlab raises on purpose.

Every error says what it got and what is allowed::

    >>> from pbtlab.schedulers import PopulationBasedTraining
    >>> PopulationBasedTraining(quantile_fraction=0.7, hyperparam_mutations={"lr": [0.1]})
    Traceback (most recent call last):
    ...
    pbtlab.errors.ConfigError: quantile_fraction must be in [0, 0.5], got 0.7
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CallbackError", "ConfigError", "describe", "ExecutorError", "ExperimentError", "PbtlabError", "ReportError",
    "TrialError",
]


class PbtlabError(Exception):
    """Base class of every error pbtlab raises on purpose."""


class ConfigError(PbtlabError, ValueError):
    """A configuration value or argument is not allowed."""


class ReportError(PbtlabError, TypeError):
    """`tune.report` (or `get_checkpoint`) was called wrongly from a trainable."""


class TrialError(PbtlabError, RuntimeError):
    """A trial's function raised; carries the original traceback as text."""

    def __init__(self, trial_id: str, message: str, traceback_text: str = "") -> None:
        super().__init__(f"Trial {trial_id} failed: {message}")
        self.trial_id = trial_id
        self.message = message
        self.traceback_text = traceback_text


class ExperimentError(PbtlabError, RuntimeError):
    """An experiment directory is missing, damaged or not a pbtlab experiment."""


class CallbackError(PbtlabError, RuntimeError):
    """A ``tune.Callback`` raised; the run stopped and kept its last consistent state."""

    def __init__(self, callback: str, hook: str, error: BaseException) -> None:
        super().__init__(f"callback {callback}.{hook} raised {type(error).__name__}: {error}. The run stopped; "
                         "its last consistent state is kept, so Tuner.restore(path, trainable) continues it "
                         "once the callback is fixed")
        self.callback = callback
        self.hook = hook


class ExecutorError(PbtlabError, RuntimeError):
    """An executor was driven out of its protocol, e.g. ``wait()`` while no trial is running."""


def describe(value: Any) -> str:
    """Short repr for error messages: ``describe([1, 2]) == "[1, 2] (list)"``."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"
