"""Colours and labels for trials (no matplotlib needed: colours are names matplotlib understands)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from pbtlab.analysis.lineage import RunData
from pbtlab.errors import ConfigError, describe
from pbtlab.viz.tutorial import initial_label, label_mismatches

__all__ = ["ANCESTRY_COLOR", "DEFAULT_COLORS", "trial_colors", "trial_labels"]

#: Default trial colours (tab10 without orange, which is reserved for the best trial's ancestry).
DEFAULT_COLORS = ("tab:blue", "black", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
                  "tab:olive", "tab:cyan")
#: Colour of the best trial's ancestry in lineage and schedule plots.
ANCESTRY_COLOR = "#f59b00"


def trial_colors(run: RunData, colors: Sequence[Any] | None) -> list[Any]:
    """One colour per trial, in trial order (``colors`` as given, else tab10)."""
    if colors is None:
        return [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(len(run.trials))]
    if isinstance(colors, str) or not isinstance(colors, Sequence):
        raise ConfigError(f"colors must be a list with one colour per trial (in trial order), got {describe(colors)}")
    if len(colors) < len(run.trials):
        raise ConfigError(f"colors must have one colour per trial ({len(run.trials)} trials, in trial order), "
                          f"got {len(colors)}: {list(colors)!r}")
    return list(colors)


def trial_labels(run: RunData, labels: Sequence[Any] | None, warn: bool = True) -> list[str]:
    """One legend label per trial, in trial order (``labels`` as given, else the starting config).

    Warns when a given label matches another trial's starting values but not its own trial's.
    """
    if labels is None:
        return [initial_label(run, t) for t in run.trials]
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise ConfigError(f"labels must be a list with one label per trial (in trial order), got {describe(labels)}")
    if len(labels) < len(run.trials):
        raise ConfigError(f"labels must have one label per trial ({len(run.trials)} trials, in trial order), "
                          f"got {len(labels)}: {list(labels)!r}")
    if warn:
        for problem in label_mismatches(run, labels):
            warnings.warn(problem, UserWarning, stacklevel=3)
    return [str(label) for label in labels]

