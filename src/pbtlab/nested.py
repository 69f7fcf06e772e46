"""Nested dicts addressed by ``a/b`` paths: configs with nested keys, and metrics reported as nested dicts.

The one place these paths are made and followed (param columns, PB2's bounds, loggers' flat rows, the views).

    >>> config = {"lr": 0.1, "model": {"width": 64}}
    >>> column_paths(config), get_path(config, "model/width"), get_path(config, "model/depth")
    (['lr', 'model/width'], 64, None)
    >>> flatten(config)
    {'lr': 0.1, 'model/width': 64}
    >>> unflatten({"lr": 0.1, "model/width": 64}) == config
    True
    >>> set_path(config, "model/depth", 3); config["model"]
    {'width': 64, 'depth': 3}
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["NOT_MAPPINGS", "column_paths", "copy_tree", "flatten", "get_path", "is_mapping", "set_path",
           "unflatten"]


def column_paths(tree: Any, prefix: str = "") -> list[str]:
    """The ``a/b`` paths of a nested dict's leaves, in order (an empty dict is a leaf)."""
    if not isinstance(tree, Mapping):
        return []
    paths: list[str] = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        paths += column_paths(value, path + "/") if isinstance(value, Mapping) and value else [path]
    return paths


def get_path(tree: Any, path: str) -> Any:
    """The value at ``path`` in a nested dict, or None where any part is missing."""
    value = tree
    for part in path.split("/"):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at ``path``, making the dicts on the way where they are missing."""
    parts = path.split("/")
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value


#: Types that are not mappings: the common leaves, and every other type :func:`is_mapping` has found is not one
#: (numpy scalars, arrays...). A loop over many values checks ``type(value) not in NOT_MAPPINGS`` before it calls
#: ``is_mapping``.
NOT_MAPPINGS: set[type] = {float, int, str, bool, type(None), list, tuple}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """One level: every leaf under its ``a/b`` path (an empty dict has no leaves, so it leaves no column)."""
    out: dict[str, Any] = {}
    leaves = NOT_MAPPINGS
    for key, value in tree.items():
        if type(value) not in leaves and is_mapping(value):  # most values are leaves: no call for them
            out.update(flatten(value, f"{prefix}{key}/"))
        elif prefix or type(key) is not str:
            out[f"{prefix}{key}"] = value
        else:
            out[key] = value
    return out


_MAPPINGS: set[type] = set()  # the types other than dict is_mapping has found are Mappings


def is_mapping(value: Any) -> bool:
    """``isinstance(value, Mapping)``, answered per type once (the ABC check is slow for numpy scalars).

        >>> is_mapping({"a": 1}), is_mapping(1.5), is_mapping([("a", 1)])
        (True, False, False)
    """
    kind = type(value)
    if kind is dict or kind in _MAPPINGS:
        return True
    if kind in NOT_MAPPINGS:
        return False
    found = issubclass(kind, Mapping)
    (_MAPPINGS if found else NOT_MAPPINGS).add(kind)
    return found


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The nested dict whose leaves ``flat`` lists by path (the inverse of :func:`flatten`)."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        set_path(tree, str(key), value)
    return tree


_IMMUTABLE_LEAVES = frozenset({float, int, str, bool, type(None), bytes})


def copy_tree(value: Any) -> Any:
    """``copy.deepcopy(value)`` for a config: dicts and lists are copied level by level, numbers and strings
    are shared (they cannot change), anything else goes through ``copy.deepcopy``. Several times faster for
    the plain configs a run copies at every report; unlike deepcopy, an object that appears twice is copied
    twice.

        >>> config = {"lr": 0.1, "layers": [64, 64], "opt": {"name": "adam"}}
        >>> copied = copy_tree(config)
        >>> copied == config, copied["layers"] is config["layers"], copied["opt"] is config["opt"]
        (True, False, False)
    """
    kind = type(value)
    if kind in _IMMUTABLE_LEAVES:
        return value
    leaves = _IMMUTABLE_LEAVES  # a leaf is shared where it is met: one call per dict or list, not per value
    if kind is dict:
        return {key: item if type(item) in leaves else copy_tree(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in leaves else copy_tree(item) for item in value]
    if _is_numpy_scalar(kind):  # immutable too (explored configs hold numpy floats): deepcopy takes ~1 µs each
        return value
    return copy.deepcopy(value)


_NUMPY_SCALARS: dict[type, bool] = {}  # type -> whether it is an immutable numpy scalar, for the types met


def _is_numpy_scalar(kind: type) -> bool:
    """Is ``kind`` a numpy scalar type (``np.float64``, ``np.int64``, ``np.bool_``...) other than ``np.void``,
    whose structured values can be written through? Answered per type once; False while numpy is not imported.

        >>> import numpy as np
        >>> _is_numpy_scalar(np.float64), _is_numpy_scalar(np.void), _is_numpy_scalar(np.ndarray)
        (True, False, False)
    """
    found = _NUMPY_SCALARS.get(kind)
    if found is None:
        numpy = sys.modules.get("numpy")
        if numpy is None:
            return False
        found = _NUMPY_SCALARS[kind] = issubclass(kind, numpy.generic) and not issubclass(kind, numpy.void)
    return found
