"""What a trial needs (``tune.with_resources``), what it is given (``tune.with_parameters``), and the
bookkeeping an executor uses to run only what fits the machine.

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pbtlab import compat
from pbtlab.errors import ConfigError, describe

#: Where ``with_resources`` / ``with_parameters`` keep what they attach (on a wrapper or a subclass).
RESOURCES_ATTRIBUTE = "_pbtlab_resources"
PARAMETERS_ATTRIBUTE = "_pbtlab_parameters"

_KEYS = {"cpu": "cpu", "CPU": "cpu", "num_cpus": "cpu", "gpu": "gpu", "GPU": "gpu", "num_gpus": "gpu"}


@dataclasses.dataclass(frozen=True, slots=True)
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


# -- the pool an executor fills ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Allocation:
    """What a trial holds: its resources and, for GPUs, the device ids it was given."""

    resources: Resources
    gpu_ids: tuple[str, ...] = ()


def visible_gpu_ids() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else the NVIDIA devices the
    driver lists (``/proc/driver/nvidia/gpus``), else none."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        return [part.strip() for part in declared.split(",") if part.strip() and part.strip() != "-1"]
    try:
        return [str(n) for n in range(len(os.listdir("/proc/driver/nvidia/gpus")))]
    except OSError:
        return []


_EPSILON = 1e-9


class ResourcePool:
    """A machine's CPUs and GPU ids, and what each running trial holds of them.

    ``allocate`` never gives more than the pool has: a GPU id is shared only by fractional requests
    whose fractions add up to at most 1. ``prefer`` (GPU ids a trial's worker was started with) must
    be given back exactly, since a running process cannot change its devices.

        >>> pool = ResourcePool(num_cpus=4, gpu_ids=["0", "1"])
        >>> pool.allocate("a", Resources(cpu=1, gpu=0.5)).gpu_ids, pool.allocate("b", Resources(cpu=1, gpu=0.5)).gpu_ids
        (('0',), ('0',))
        >>> pool.fits(Resources(cpu=1, gpu=2))
        False
    """

    def __init__(self, num_cpus: float, gpu_ids: Sequence[str] = ()) -> None:
        self.num_cpus = float(num_cpus)
        self.gpu_ids = [str(g) for g in gpu_ids]
        self.held: dict[str, Allocation] = {}

    def capacity_error(self, resources: Resources) -> str | None:
        """Why a trial asking for ``resources`` can never run here (None when it can, on an idle machine)."""
        if resources.cpu > self.num_cpus + _EPSILON:
            return f"{resources.cpu:g} CPUs, but the executor has {self.num_cpus:g}"
        if resources.gpu > len(self.gpu_ids) + _EPSILON:
            found = f"GPUs {self.gpu_ids}" if self.gpu_ids else "no GPU"
            return f"{resources.gpu:g} GPUs, but the executor has {found}"
        return None

    def _gpu_free(self) -> dict[str, float]:
        free = {g: 1.0 for g in self.gpu_ids}
        for allocation in self.held.values():
            share = allocation.resources.gpu / len(allocation.gpu_ids) if allocation.gpu_ids else 0.0
            for gpu in allocation.gpu_ids:
                free[gpu] = free.get(gpu, 0.0) - share
        return free

    def _choose_gpus(self, gpu: float, prefer: Sequence[str] | None) -> tuple[str, ...] | None:
        if gpu <= 0:
            return ()
        free = self._gpu_free()
        if prefer:
            share = gpu / len(prefer)
            return tuple(prefer) if all(free.get(g, 0.0) + _EPSILON >= share for g in prefer) else None
        if gpu < 1:  # the fullest device that still has room (keeps whole devices free)
            candidates = [g for g in self.gpu_ids if free[g] + _EPSILON >= gpu]
            return (min(candidates, key=lambda g: (free[g], self.gpu_ids.index(g))),) if candidates else None
        whole = [g for g in self.gpu_ids if free[g] >= 1 - _EPSILON]
        return tuple(whole[:int(gpu)]) if len(whole) >= int(gpu) else None

    def fits(self, resources: Resources, prefer: Sequence[str] | None = None) -> bool:
        """Could a trial asking for ``resources`` start now, next to what the running trials hold?"""
        cpus_used = sum(a.resources.cpu for a in self.held.values())
        if cpus_used + resources.cpu > self.num_cpus + _EPSILON:
            return False
        return self._choose_gpus(resources.gpu, prefer) is not None

    def allocate(self, trial_id: str, resources: Resources, prefer: Sequence[str] | None = None) -> Allocation:
        """Hold ``resources`` for ``trial_id`` (what it held before is given back first). When they do not
        fit (the controller started it anyway), the trial gets what is left of the GPUs it prefers."""
        self.held.pop(trial_id, None)
        gpus = self._choose_gpus(resources.gpu, prefer)
        if gpus is None:
            gpus = tuple(prefer or self.gpu_ids[:max(1, int(resources.gpu))])
        allocation = Allocation(resources, gpus)
        self.held[trial_id] = allocation
        return allocation

    def free(self, trial_id: str) -> None:
        self.held.pop(trial_id, None)


#: Environment variables that set a numerical library's thread count.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker_environment(allocation: Allocation) -> dict[str, str]:
    """What a trial's worker process runs with: its GPU ids and thread counts equal to its CPUs.

    >>> worker_environment(Allocation(Resources(cpu=2, gpu=0.5), ("1",)))["CUDA_VISIBLE_DEVICES"]
    '1'
    """
    threads = str(allocation.resources.num_threads)
    return {"CUDA_VISIBLE_DEVICES": ",".join(allocation.gpu_ids), **{name: threads for name in THREAD_VARIABLES}}
