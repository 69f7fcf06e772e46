"""How a plot draws a population of a given size: every trial, or the population as a whole.

The thresholds are data, in one place; every plot that changes its form takes ``form=`` to override them.

    >>> choose_form("metric", 4), choose_form("metric", 64), choose_form("lineage", 64), choose_form("lineage", 1024)
    ('lines', 'bands', 'lanes', 'tree')
    >>> choose_form("lineage", 1024, "lanes")
    'lanes'
"""

from __future__ import annotations

from pbtlab.errors import ConfigError, describe

__all__ = ["choose_form", "FORMS"]

#: Per plot kind: its forms, and the largest population drawn in the first (every-trial) form.
FORMS: dict[str, tuple[tuple[str, ...], int]] = {
    # every trial's curve up to 16 trials; above, quantile bands with the top k trials as lines
    "metric": (("lines", "bands"), 16),
    # every trial's hyperparameters up to 16 trials; above, quantile bands (or a heat map, on request)
    "hyperparameters": (("lines", "bands", "heatmap"), 16),
    # one lane per trial up to 128 trials; above, the ancestry tree of the final population
    "lineage": (("lanes", "tree"), 128),
}


def choose_form(kind: str, population: int, form: str = "auto") -> str:
    """The form a ``kind`` of plot takes for ``population`` trials; ``form`` other than "auto" is checked and kept."""
    forms, every_trial_max = FORMS[kind]
    if form == "auto":
        return forms[0] if population <= every_trial_max else forms[1]
    if not isinstance(form, str) or form not in forms:
        raise ConfigError(f"form must be 'auto' or one of {list(forms)}, got {describe(form)}")
    return form
