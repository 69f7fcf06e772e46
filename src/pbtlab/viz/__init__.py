"""See what PBT did: trajectories, metric histories, animations, lineage, schedules, Figure 2, reports.

The tutorial's helpers keep their signatures, so its plotting cells run unchanged after
``from pbtlab.viz import plot_parameter_history, plot_Q_history, make_animation``. Every function
accepts a live ``ResultGrid`` or an experiment directory, and plots what the event log recorded.

    >>> from pbtlab.viz import plot_lineage
    >>> ax = plot_lineage("pbtlab_results/my_run")  # doctest: +SKIP

matplotlib and Pillow (the ``[viz]`` extra) are imported on first use, not by ``import pbtlab.viz``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "plot_parameter_history": "pbtlab.viz.trajectories",
    "marker_sizes": "pbtlab.viz.trajectories",
    "plot_metric_history": "pbtlab.viz.history",
    "plot_Q_history": "pbtlab.viz.history",
    "make_animation": "pbtlab.viz.animation",
    "Animation": "pbtlab.viz.animation",
    "plot_lineage": "pbtlab.viz.lineage",
    "plot_hyperparameter_schedule": "pbtlab.viz.schedule",
    "plot_population_hyperparameters": "pbtlab.viz.population",
    "plot_founder_shares": "pbtlab.viz.founders",
    "founder_shares": "pbtlab.viz.founders",
    "plot_hyperparameter_distributions": "pbtlab.viz.distributions",
    "hyperparameter_distributions": "pbtlab.viz.distributions",
    "plot_population_metric": "pbtlab.viz.history",
    "metric_distribution": "pbtlab.viz.history",
    "ancestry_tree": "pbtlab.viz.lineage",
    "choose_form": "pbtlab.viz.forms",
    "plot_rungs": "pbtlab.viz.rungs",
    "plot_figure2": "pbtlab.viz.figure2",
    "run_figure2": "pbtlab.viz.figure2",
    "write_report": "pbtlab.viz.report",
    "run_demo": "pbtlab.viz.demo",
}

__all__ = [
    "Animation", "ancestry_tree", "choose_form", "founder_shares", "hyperparameter_distributions", "make_animation",
    "marker_sizes", "metric_distribution", "plot_Q_history", "plot_figure2", "plot_founder_shares",
    "plot_hyperparameter_distributions", "plot_hyperparameter_schedule", "plot_lineage", "plot_metric_history",
    "plot_parameter_history", "plot_population_hyperparameters", "plot_population_metric", "plot_rungs", "run_demo",
    "run_figure2", "write_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pbtlab.viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
