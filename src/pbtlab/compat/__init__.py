"""What pbtlab's core asks of the compatibility layer: the only way the core reaches another tool's code.

Three modules, by who asks: this one (checks that configs and ``Tuner`` make on their arguments, and
whether the process executor may fork safely),
:mod:`pbtlab.compat.runs` (reading another tool's run directory) and :mod:`pbtlab.compat.scripts`
(running another tool's script, and its older entry points such as ``tune.run``). Each function hands its question to the tool it concerns (today Ray Tune, in ``compat/ray/``),
importing that module only when it is asked, so ``import pbtlab`` stays light and the core never names
another tool. A new compatibility layer adds a package beside ``ray/`` and its answers here.

    >>> check_search_space("Tuner", {"lr": 0.1, "layers": [1, 2]})   # nothing foreign: no error
    >>> scheduler_advice(object())
    ''
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_search_space", "check_trainable", "comes_from_other_tool", "fork_hazard",
           "reject_unsupported_arguments", "scheduler_advice", "unsupported_name"]

#: Module-name prefixes of the tools whose objects reach pbtlab (Ray Tune's).
_FOREIGN_PREFIXES = ("ray.",)


def comes_from_other_tool(obj: Any) -> bool:
    """True for an object whose class another tool defines (checked by module name, never importing it)."""
    return _foreign_class(type(obj))


def _foreign_class(kind: Any) -> bool:
    """Whether ``kind`` or a base of it comes from another tool's modules."""
    return any((getattr(cls, "__module__", "") or "").startswith(_FOREIGN_PREFIXES)
               for cls in getattr(kind, "__mro__", (kind,)))


def fork_hazard() -> str | None:
    """Why a ``fork`` now could hang the child (another tool's threads run in this process and may hold locks
    the child inherits), or None. Asked by the process executor before it forks trial workers; today it
    answers for Ray (:func:`pbtlab.compat.ray.fork_warning`)."""
    from pbtlab.compat.ray import fork_warning

    return fork_warning()


def _arguments() -> Any:
    from pbtlab.compat.ray import arguments

    return arguments


def reject_unsupported_arguments(where: str, config: Any) -> None:
    """A clear error if ``config`` (a ``TuneConfig`` or ``RunConfig``) sets an argument only Ray has."""
    _arguments().reject_ray_only(where, config)


def check_trainable(where: str, trainable: Any) -> None:
    """A clear error for a trainable only another tool can run (RLlib algorithms, Ray Train trainers...), or
    named rather than passed. Looked into only when its class, a base of it, or the trainable itself comes
    from another tool's modules."""
    if isinstance(trainable, str) or _from_other_tool(trainable):
        _arguments().reject_ray_trainable(where, trainable)


def _from_other_tool(trainable: Any) -> bool:
    return _foreign_class(trainable if isinstance(trainable, type) else type(trainable)) \
        or (getattr(trainable, "__module__", "") or "").startswith(_FOREIGN_PREFIXES)


def check_search_space(where: str, space: Any) -> None:
    """A clear error for another tool's search-space objects, which would reach trainables as plain values."""
    if _has_foreign_value(space):
        _arguments().reject_ray_search_space(where, space)


def _has_foreign_value(space: Any) -> bool:
    if isinstance(space, dict):
        return list(space) == ["grid_search"] or any(_has_foreign_value(v) for v in space.values())
    if isinstance(space, list):
        return any(_has_foreign_value(v) for v in space)
    return comes_from_other_tool(space)


def scheduler_advice(scheduler: Any) -> str:
    """What to use instead of another tool's scheduler object ('' for anything else)."""
    if not comes_from_other_tool(scheduler):
        return ""
    return str(_arguments().foreign_scheduler_advice(scheduler))


def unsupported_name(namespace: str, name: str, shown_as: str) -> Any:
    """For a name pbtlab's ``namespace`` (``"tune"``, ``"tune.schedulers"``...) lacks but the tool it mirrors has:
    the tool's value for a constant, else a placeholder that imports fine and raises a clear error, naming
    ``shown_as`` and what to use instead, when used. None for a name the tool does not have either."""
    from pbtlab.compat.ray import names

    ray_module = f"ray.{namespace}"
    if not names.is_ray_tune_name(ray_module, name):
        return None
    constants = names.constants(ray_module)
    if name in constants:  # a constant is its value (ray.tune.search.UNDEFINED_SEARCH_SPACE...)
        return constants[name]
    return names.placeholder(f"{ray_module}.{name}", shown_as=shown_as)
