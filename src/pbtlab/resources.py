"""What a trial needs (``tune.with_resources``) and what it is given (``tune.with_parameters``); the pool that
runs only what fits the machine is :mod:`pbtlab.executors.pool`.

    >>> from pbtlab import tune
    >>> def train(config, data):
    ...     tune.report({"n": len(data)})
    >>> trainable = tune.with_resources(tune.with_parameters(train, data=[1, 2, 3]), {"cpu": 2, "gpu": 0.5})
    >>> resources_for(trainable, {})
    Resources(cpu=2.0, gpu=0.5)

Resources are Ray's: ``cpu`` (any number > 0, fractions allowed) and ``gpu`` (a fraction below 1 shares
one device; 1 or more must be whole devices). The process executor runs only the trials whose
resources fit (see :class:`ResourcePool`), the Ray executor hands them to Ray as actor options, and the
in-process executor runs trials one at a time whatever they ask for.
"""

from __future__ import annotations

import copyreg
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from pbtlab import compat
from pbtlab import lazy_dataclass
from pbtlab.errors import ConfigError, describe

__all__ = [
    "declares_resources", "hostname", "PARAMETERS_ATTRIBUTE", "Resources", "RESOURCES_ATTRIBUTE", "resources_for",
    "with_parameters", "with_resources", "WrappedFunction",
]

#: Where ``with_resources`` / ``with_parameters`` keep what they attach (on a wrapper or a subclass).
RESOURCES_ATTRIBUTE = "_pbtlab_resources"
PARAMETERS_ATTRIBUTE = "_pbtlab_parameters"

_KEYS = {"cpu": "cpu", "CPU": "cpu", "num_cpus": "cpu", "gpu": "gpu", "GPU": "gpu", "num_gpus": "gpu"}


@lazy_dataclass.dataclass(frozen=True, slots=True)
class Resources:
    """One trial's resources: CPUs and GPUs (fractions allowed; a fraction of a GPU shares a device).

    >>> Resources(cpu=2, gpu=1).required_resources
    {'CPU': 2.0, 'GPU': 1.0}
    """

    cpu: float = 1.0
    gpu: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpu", float(self.cpu))
        object.__setattr__(self, "gpu", float(self.gpu))

    @property
    def required_resources(self) -> dict[str, float]:
        """Ray's spelling (``PlacementGroupFactory.required_resources``): ``{"CPU": ..., "GPU": ...}``."""
        return {"CPU": self.cpu, "GPU": self.gpu}

    @property
    def num_threads(self) -> int:
        """The thread count a trial with these CPUs should use (at least 1)."""
        return max(1, int(self.cpu))

    def to_dict(self) -> dict[str, float]:
        return {"cpu": self.cpu, "gpu": self.gpu}

    @classmethod
    def parse(cls, request: Any, where: str = "tune.with_resources(trainable, resources)") -> Resources:
        """Read ``{"cpu": 2, "gpu": 0.5}`` (Ray's ``CPU``/``GPU`` and ``num_cpus``/``num_gpus`` too)."""
        if isinstance(request, Resources):
            return request
        kind = type(request)
        if kind.__name__ == "PlacementGroupFactory" or (getattr(kind, "__module__", "") or "").startswith("ray."):
            raise ConfigError(
                f"{where} got Ray's {kind.__name__}: pbtlab places each trial in one worker, so give a dict "
                "such as {'cpu': 2, 'gpu': 1} (placement groups with several bundles are not supported)")
        if not isinstance(request, Mapping):
            raise ConfigError(f"{where} must be a dict such as {{'cpu': 2, 'gpu': 1}} or a function config -> "
                              f"dict, got {describe(request)}")
        values: dict[str, float] = {}
        for key, value in request.items():
            name = _KEYS.get(key) if isinstance(key, str) else None
            if name is None:
                raise ConfigError(f"{where}: unknown resource {key!r}; pbtlab schedules 'cpu' and 'gpu' "
                                  "(custom resources and memory are not supported)")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{where}: {key!r} must be a number >= 0, got {describe(value)}")
            values[name] = float(value)
        resources = cls(**values)
        if resources.cpu <= 0 and resources.gpu <= 0:
            raise ConfigError(f"{where} asks for no resources at all ({dict(request)}); give 'cpu' > 0 or 'gpu' > 0")
        if resources.gpu > 1 and not resources.gpu.is_integer():
            raise ConfigError(f"{where}: 'gpu' above 1 must be a whole number of devices, got {resources.gpu:g} "
                              "(a fraction below 1 shares one device)")
        return resources


# -- with_resources / with_parameters ----------------------------------------------------------------------------
ResourceRequest = Resources | Callable[[dict[str, Any]], Any]


class WrappedFunction:
    """A function trainable with parameters and/or resources attached (what the two helpers return).

    Called as the function itself is: ``trainable(config)`` calls ``fn(config, **parameters)``. It keeps
    the function's name (trial names are ``<name>_<trial_id>``) and pickles when the function does.
    """

    def __init__(self, fn: Callable[..., Any], parameters: Mapping[str, Any],
                 resources: ResourceRequest | None) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        setattr(self, PARAMETERS_ATTRIBUTE, dict(parameters))
        setattr(self, RESOURCES_ATTRIBUTE, resources)

    def __call__(self, config: dict[str, Any]) -> Any:
        return self.fn(config, **getattr(self, PARAMETERS_ATTRIBUTE))

    def __repr__(self) -> str:
        return f"<trainable {self.__qualname__} with {sorted(getattr(self, PARAMETERS_ATTRIBUTE))}>"


def _is_trainable_class(cls: type) -> bool:
    """A ``pbtlab.tune.Trainable`` subclass (by its bases, so this module imports no trainable code)."""
    return any(c.__name__ == "Trainable" and c.__module__ == "pbtlab.trainable" for c in cls.__mro__)


def _check_trainable(where: str, trainable: Any) -> None:
    if isinstance(trainable, type):
        if not _is_trainable_class(trainable):
            raise ConfigError(f"{where} got the class {trainable.__qualname__}, which is not a tune.Trainable; "
                              "pass a function trainable(config) or a pbtlab.tune.Trainable subclass")
    elif not callable(trainable):
        raise ConfigError(f"{where} needs a function trainable(config) or a tune.Trainable class, "
                          f"got {describe(trainable)}")


class _DerivedTrainableType(type):
    """The metaclass of the subclasses ``with_parameters``/``with_resources`` build: pickled as the recipe
    (the user's class, the parameters, the resources), so that ``spawn`` workers can rebuild them."""


def _subclass(cls: type, parameters: Mapping[str, Any] | None, resources: ResourceRequest | None) -> type:
    """A subclass of the user's Trainable with the same name, carrying parameters and resources."""
    base = getattr(cls, "_pbtlab_base", cls)
    parameters = dict(parameters if parameters is not None else getattr(cls, PARAMETERS_ATTRIBUTE, {}))
    resources = resources if resources is not None else getattr(cls, RESOURCES_ATTRIBUTE, None)
    attributes: dict[str, Any] = {"__module__": base.__module__, "__qualname__": base.__qualname__,
                                  "_pbtlab_base": base, PARAMETERS_ATTRIBUTE: parameters,
                                  RESOURCES_ATTRIBUTE: resources}
    if parameters:
        base_setup = getattr(base, "setup")  # noqa: B009 - a Trainable subclass

        def setup(self: Any, config: dict[str, Any]) -> None:
            base_setup(self, config, **parameters)

        attributes["setup"] = setup
    # the user's own metaclass, if any, is kept (such a subclass then pickles only through cloudpickle)
    metaclass = _DerivedTrainableType if type(base) is type else type(base)
    return metaclass(base.__name__, (base,), attributes)


def _rebuild_subclass(base: type, parameters: dict[str, Any], resources: ResourceRequest | None) -> type:
    return _subclass(base, parameters, resources)


def _reduce_subclass(cls: type) -> tuple[Any, ...]:
    return _rebuild_subclass, (getattr(cls, "_pbtlab_base"), getattr(cls, PARAMETERS_ATTRIBUTE),  # noqa: B009
                               getattr(cls, RESOURCES_ATTRIBUTE))


copyreg.pickle(_DerivedTrainableType, _reduce_subclass)


def with_resources(trainable: Any, resources: Any) -> Any:
    """Ray's ``tune.with_resources``: the trainable, asking for ``resources`` per trial.

    ``resources`` is a dict (``{"cpu": 2, "gpu": 1}``; fractional GPUs such as 0.5 share a device) or a
    function ``config -> dict``, called once per trial with its starting config. The resources are
    recorded in experiment.json, so a resumed run keeps them.

        >>> def train(config): ...
        >>> resources_for(with_resources(train, lambda config: {"cpu": config["workers"]}), {"workers": 3})
        Resources(cpu=3.0, gpu=0.0)
    """
    where = "tune.with_resources(trainable, resources)"
    _check_trainable(where, trainable)
    foreign = compat.comes_from_other_tool(resources)  # Ray's PlacementGroupFactory is callable, but not ours
    request: ResourceRequest = resources if callable(resources) and not isinstance(resources, Mapping) \
        and not foreign else Resources.parse(resources, where)
    if isinstance(trainable, type):
        return _subclass(trainable, None, request)
    if isinstance(trainable, WrappedFunction):
        return WrappedFunction(trainable.fn, getattr(trainable, PARAMETERS_ATTRIBUTE), request)
    return WrappedFunction(trainable, {}, request)


def with_parameters(trainable: Any, **parameters: Any) -> Any:
    """Ray's ``tune.with_parameters``: pass large objects (datasets, models) to every trial without
    putting them into the config.

    A function is called as ``trainable(config, **parameters)``; a ``tune.Trainable`` gets them in
    ``setup(config, **parameters)``. The objects are not copied per trial or per restart: in-process
    trials share the very objects, worker processes inherit them when forked (or get them once per
    process with ``spawn``), and Ray actors get them from the object store, put there once.

        >>> def train(config, data):
        ...     return len(data)
        >>> with_parameters(train, data=[1, 2, 3])({})
        3
    """
    _check_trainable("tune.with_parameters(trainable, **parameters)", trainable)
    if not parameters:
        raise ConfigError("tune.with_parameters(trainable, **parameters) got no parameters; pass them by name, "
                          "e.g. tune.with_parameters(train, data=data)")
    if isinstance(trainable, type):
        return _subclass(trainable, {**getattr(trainable, PARAMETERS_ATTRIBUTE, {}), **parameters}, None)
    if isinstance(trainable, WrappedFunction):
        return WrappedFunction(trainable.fn, {**getattr(trainable, PARAMETERS_ATTRIBUTE), **parameters},
                               getattr(trainable, RESOURCES_ATTRIBUTE))
    return WrappedFunction(trainable, parameters, None)


def declares_resources(trainable: Any) -> bool:
    """Did ``with_resources`` set this trainable's resources?"""
    return getattr(trainable, RESOURCES_ATTRIBUTE, None) is not None


def resources_for(trainable: Any, config: Mapping[str, Any]) -> Resources | None:
    """The resources ``with_resources`` asked for, for a trial starting with ``config`` (None: not set)."""
    request = getattr(trainable, RESOURCES_ATTRIBUTE, None)
    if request is None:
        return None
    if isinstance(request, Resources):
        return request
    where = "tune.with_resources(trainable, resources=function)"
    try:
        value = request(dict(config))
    except Exception as error:  # noqa: BLE001 - the user's function; say which call failed
        raise ConfigError(f"{where} raised {type(error).__name__}: {error} for the config {dict(config)}") from None
    return Resources.parse(value, f"{where} returned {value!r};")


def hostname() -> str:
    """This machine's name, as ``socket.gethostname()`` gives it (result rows, TensorBoard file names); from
    ``os.uname()`` where there is one (the same name on Linux and macOS), which spares importing ``socket``."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()
