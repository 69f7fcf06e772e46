"""Metric names: a nested metric is named by its path joined with ``/``, wherever a metric name is accepted.

Paths are :mod:`pbtlab.nested`'s; a metric name may also be a reported key that contains ``/`` itself.
A trainable that reports ``{"eval": {"loss": 0.3}}`` is ranked with ``TuneConfig(metric="eval/loss")``,
``get_best_result(metric="eval/loss")``, a scheduler's or stopper's ``metric``, ``RunConfig(stop=
{"eval/loss": ...})`` and ``CheckpointConfig(checkpoint_score_attribute="eval/loss")``. The rows on disk
keep the nesting as reported; schedulers see the flattened row.

    >>> row = {"eval": {"loss": 0.3, "acc": {"top1": 0.9}}, "training_iteration": 2}
    >>> metric_value(row, "eval/loss"), metric_value(row, "eval/acc/top1"), has_metric(row, "eval/f1")
    (0.3, 0.9, False)
    >>> flatten_metrics(row)
    {'eval/loss': 0.3, 'eval/acc/top1': 0.9, 'training_iteration': 2}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pbtlab.nested import NOT_MAPPINGS, flatten, is_mapping

__all__ = ["DELIMITER", "KEPT_NESTED", "flatten_metrics", "has_metric", "metric_value"]

DELIMITER = "/"
#: Fields of a result row that stay dicts when it is flattened: the trial's config and the restore marker.
KEPT_NESTED = frozenset({"config", "restored_from"})

_MISSING = object()


def _lookup(result: Mapping[str, Any], name: str) -> Any:
    if name in result:
        return result[name]
    start = name.find(DELIMITER)
    while start != -1:  # "a/b/c": try "a" then "a/b" as the outer key (a reported key may contain "/")
        inner = result.get(name[:start])
        if isinstance(inner, Mapping):
            found = _lookup(inner, name[start + 1:])
            if found is not _MISSING:
                return found
        start = name.find(DELIMITER, start + 1)
    return _MISSING


def metric_value(result: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """The value of metric ``name`` in ``result``: a top-level key, or a nested one named ``outer/inner``."""
    found = _lookup(result, name)
    return default if found is _MISSING else found


def has_metric(result: Mapping[str, Any], name: str) -> bool:
    """Does ``result`` hold metric ``name`` (top-level, or nested as ``outer/inner``)?"""
    return _lookup(result, name) is not _MISSING


def flatten_metrics(result: Mapping[str, Any], keep: frozenset[str] = KEPT_NESTED) -> dict[str, Any]:
    """``result`` with nested dicts flattened into ``outer/inner`` keys (the ``keep`` fields stay as they are)."""
    flat: dict[str, Any] = {}
    leaves = NOT_MAPPINGS
    for key, value in result.items():
        if type(value) not in leaves and is_mapping(value) and key not in keep:
            flat.update(flatten(value, f"{key}{DELIMITER}"))
        else:
            flat[key] = value
    return flat
