"""What is specific to the PBT tutorial's toy problem: its labels, its start point and Q's contours,
and the check that a tutorial-style label describes its own trial.

    >>> short_value(0.123456), short_value(3)
    ('0.1235', '3')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pbtlab.analysis.lineage import RunData, TrialRecord
from pbtlab.analysis.results import finite_number
from pbtlab.nested import get_path

__all__ = [
    "has_toy_parameters", "initial_label", "label_mismatches", "short_value", "toy_initial_point", "toy_labels",
    "toy_objective", "TOY_PARAMETERS", "TUTORIAL_COLORS",
]

#: The tutorial's colours, in trial order.
TUTORIAL_COLORS = ["red", "black", "blue", "green"]
#: The toy problem's two parameters (reported by every trial), drawn over Q's contours.
TOY_PARAMETERS = ("theta0", "theta1")

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def short_value(value: Any) -> str:
    """A config value in a label: floats to 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def initial_label(run: RunData, trial: TrialRecord, params: Sequence[str] | None = None) -> str:
    """A legend label from a trial's starting hyperparameters, e.g. ``"lr=0.05, h0=0, h1=1"``."""
    names = list(params) if params is not None else run.param_columns
    parts = [f"{p}={short_value(get_path(trial.initial_config, p))}" for p in names]
    return ", ".join(parts) or trial.trial_id


def toy_labels(run: RunData) -> list[str]:
    """The tutorial's label style from each trial's starting config, e.g. ``"h = [0, 1]"``."""
    out = []
    for trial in run.trials:
        h0, h1 = trial.initial_config.get("h0"), trial.initial_config.get("h1")
        out.append(f"h = [{h0:.3g}, {h1:.3g}]" if isinstance(h0, (int, float)) and isinstance(h1, (int, float))
                   else initial_label(run, trial))
    return out


def has_toy_parameters(run: RunData) -> bool:
    """Every trial reports ``theta0`` and ``theta1`` (the toy problem's parameters)."""
    return bool(run.trials) and all(t.rows and all(p in t.rows[0] for p in TOY_PARAMETERS) for t in run.trials)


def toy_objective() -> Callable[[np.ndarray], np.ndarray]:
    """The true reward Q of a (B, 2) array of parameters, for the contour plot."""
    from pbtlab.examples.toy import Q_batch

    return Q_batch


def toy_initial_point() -> tuple[float, float]:
    """The parameters every toy trial starts from (drawn as point 0)."""
    from pbtlab.examples.toy import get_init_theta

    theta = get_init_theta()
    return float(theta[0]), float(theta[1])


def label_mismatches(run: RunData, labels: Sequence[str]) -> list[str]:
    """Warnings for labels whose numbers match another trial's starting config but not their own.

    ``colors`` and ``labels`` are in trial order; the tutorial's ``["h = [1, 0]", "h = [0, 1]"]``
    is the other way round (trial 0 starts at h0=0, h1=1), which this reports.
    """
    def matches(label: str, trial: TrialRecord) -> bool:
        numbers = [float(n) for n in _NUMBER.findall(label)]
        values = [finite_number(get_path(trial.initial_config, p)) for p in run.param_columns]
        if len(numbers) < 2 or any(v is None for v in values):
            return False
        return any(all(math.isclose(numbers[k], values[start + k], rel_tol=1e-6, abs_tol=1e-9)  # type: ignore[arg-type]
                       for k in range(len(numbers)))
                   for start in range(len(values) - len(numbers) + 1))

    problems = []
    for index, label in enumerate(labels[:len(run.trials)]):
        label = str(label)
        own = run.trials[index]
        if matches(label, own):
            continue
        others = [t for t in run.trials if t.index != index and matches(label, t)]
        if others:
            problems.append(
                f"labels[{index}]={label!r} describes trial {others[0].index} ({initial_label(run, others[0])}), "
                f"but labels are in trial order and trial {index} started with {initial_label(run, own)}")
    return problems
