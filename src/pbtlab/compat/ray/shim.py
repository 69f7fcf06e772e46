"""Run an unmodified Ray Tune script on pbtlab (``pbtlab run SCRIPT.py [ARGS...]``).

While the script runs, an import hook answers every ``import ray...`` before the real Ray package
(installed or not) is looked at:

- ``ray.tune`` and ``ray.tune.schedulers`` / ``.search`` / ``.search.basic_variant`` / ``.stopper`` /
  ``.analysis`` are pbtlab's (``pbtlab.tune``...); ``ray.tune.schedulers.pb2`` is pbtlab's PB2
  (scikit-learn from ``pbtlab[pb2]``);
- ``ray.train`` and ``ray.air`` give the configs Ray 2.x scripts import from there (``RunConfig``,
  ``CheckpointConfig``, ``FailureConfig``, ``Checkpoint``, ``report``...);
- ``ray.tune.examples...`` are Ray's own example modules, read from the installed Ray wheel, with their
  ``import ray...`` answered as here (so ``pb2_example.py`` can import ``pbt_function``);
- ``ray.init``, ``ray.shutdown`` and ``ray.is_initialized`` do nothing (pbtlab runs trials itself);
- anything else (``ray.remote``, ``ray.get``, ``ray.rllib``, ``ray.data``, Optuna's searcher...) raises
  :class:`RayFeatureError`, naming the feature and what to use instead.

    >>> with ray_modules():
    ...     import ray
    ...     from ray import tune
    ...     ray.init(num_cpus=2)
    ...     tune.Tuner.__module__, ray.is_initialized()
    ('pbtlab.tuner', True)
    >>> with ray_modules():
    ...     import ray
    ...     ray.remote
    Traceback (most recent call last):
    ...
    pbtlab.compat.ray.advice.RayFeatureError: ray.remote is not supported by pbtlab (pbtlab run): pbtlab runs the trials ...
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

from pbtlab import config as _config
from pbtlab.compat.ray import names as ray_names
from pbtlab.compat.ray.advice import RayFeatureError, advice_for
from pbtlab.compat.ray import shim_state
from pbtlab.errors import ConfigError, ExperimentError
from pbtlab.unsupported import UnsupportedName

__all__ = ["RayFeatureError", "install", "ray_modules", "run_script", "uninstall"]


def _error(name: str) -> RayFeatureError:
    return RayFeatureError(f"{name} is not supported by pbtlab (pbtlab run): {advice_for(name)}")


# -- what each ray module is made of ------------------------------------------------------------------------
class _RayState:
    initialized = False


def _init(*args: Any, **kwargs: Any) -> None:
    """``ray.init(...)``: nothing to start (arguments such as num_cpus are accepted and not used)."""
    _RayState.initialized = True


def _shutdown(*args: Any, **kwargs: Any) -> None:
    _RayState.initialized = False


def _is_initialized() -> bool:
    return _RayState.initialized


def _train_names() -> dict[str, Any]:
    from pbtlab import tune
    from pbtlab.analysis import Result

    names = {name: getattr(tune, name) for name in (
        "RunConfig", "CheckpointConfig", "FailureConfig", "Checkpoint", "report", "get_checkpoint", "get_context")}
    names["Result"] = Result
    return names


def _air_names() -> dict[str, Any]:
    names = _train_names()
    return {k: names[k] for k in ("RunConfig", "CheckpointConfig", "FailureConfig", "Result")}


#: ray module name -> (the pbtlab modules it reads from, extra names). Modules are imported when first used.
_MODULES: dict[str, Any] = {
    "ray": lambda: ([], {"init": _init, "shutdown": _shutdown, "is_initialized": _is_initialized}),
    "ray.tune": lambda: ([importlib.import_module("pbtlab.tune")], {}),
    "ray.tune.schedulers": lambda: ([importlib.import_module("pbtlab.tune.schedulers"),
                                     importlib.import_module("pbtlab.schedulers")], {}),
    "ray.tune.schedulers.pbt": lambda: ([importlib.import_module("pbtlab.schedulers.pbt")], {}),
    "ray.tune.schedulers.pb2": lambda: ([importlib.import_module("pbtlab.schedulers.pb2")], {}),
    "ray.tune.schedulers.async_hyperband": lambda: ([importlib.import_module("pbtlab.schedulers.asha")], {}),
    "ray.tune.schedulers.hyperband": lambda: ([importlib.import_module("pbtlab.schedulers.hyperband")], {}),
    "ray.tune.schedulers.median_stopping_rule": lambda: ([importlib.import_module("pbtlab.schedulers.median_stopping")],
                                                         {}),
    "ray.tune.search": lambda: ([importlib.import_module("pbtlab.tune.search")], {}),
    "ray.tune.search.basic_variant": lambda: ([importlib.import_module("pbtlab.tune.search.basic_variant")], {}),
    "ray.tune.search.sample": lambda: ([importlib.import_module("pbtlab.space")], {}),
    "ray.tune.stopper": lambda: ([importlib.import_module("pbtlab.tune.stopper")], {}),
    "ray.tune.analysis": lambda: ([], {"ExperimentAnalysis": importlib.import_module("pbtlab.compat.ray.legacy")
                                       .ExperimentAnalysis}),
    "ray.tune.result": lambda: ([], ray_names.constants("ray.tune.result")),
    "ray.tune.logger": lambda: ([importlib.import_module("pbtlab.compat.ray.logger")], {}),
    "ray.tune.utils": lambda: ([], {"validate_save_restore": importlib.import_module("pbtlab.compat.ray.utils")
                                    .validate_save_restore}),
    "ray.tune.integration": lambda: ([], {}),
    "ray.tune.integration.pytorch_lightning": lambda: ([importlib.import_module("pbtlab.integrations.lightning")],
                                                       {}),
    "ray.tune.error": lambda: ([], {"TuneError": ExperimentError}),
    "ray.train": lambda: ([], _train_names()),
    "ray.air": lambda: ([], _air_names()),
    "ray.air.config": lambda: ([], _air_names()),
}


#: Where a Ray Tune module without its own entry above finds pbtlab's objects, by package (most specific first).
_PACKAGE_SOURCES: list[tuple[str, tuple[str, ...]]] = [
    ("ray.tune.schedulers", ("pbtlab.tune.schedulers", "pbtlab.schedulers")),
    ("ray.tune.search", ("pbtlab.tune.search", "pbtlab.space")),
    ("ray.tune.stopper", ("pbtlab.tune.stopper",)),
    ("ray.tune.logger", ("pbtlab.compat.ray.logger",)),
    ("ray.tune.analysis", ("pbtlab.compat.ray.legacy",)),
    ("ray.tune", ("pbtlab.tune",)),
]


def _table_module(name: str) -> tuple[list[Any], dict[str, Any]]:
    """A Ray Tune module listed in Ray's names but without its own entry: same-named pbtlab objects, Ray's constants,
    and placeholders for the rest (answered by :meth:`_RayModule.__getattr__`)."""
    packages = next(sources for prefix, sources in _PACKAGE_SOURCES if name == prefix or name.startswith(prefix + "."))
    return [importlib.import_module(p) for p in packages], ray_names.constants(name)


_MISSING = object()


class _RayModule(types.ModuleType):
    """A ``ray...`` module under ``pbtlab run``: names come from pbtlab; a missing name raises RayFeatureError."""

    def __init__(self, name: str, sources: list[Any], names: dict[str, Any]) -> None:
        super().__init__(name, f"pbtlab's stand-in for {name} (pbtlab run)")
        self.__dict__.update(names)
        self._pbtlab_sources = sources

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") or attribute == "_pbtlab_sources":
            raise AttributeError(attribute)
        child = f"{self.__name__}.{attribute}"
        if child in _MODULES or ray_names.is_ray_tune_module(child) or child == _EXAMPLES:
            return importlib.import_module(child)
        listed = ray_names.is_ray_tune_name(self.__name__, attribute)
        if listed or self.__name__ in _MODULES:  # a module with its own entry offers all its sources
            for source in self._pbtlab_sources:
                value = getattr(source, attribute, _MISSING)
                if value is not _MISSING and not isinstance(value, UnsupportedName):
                    return value
        if listed:
            return ray_names.placeholder(child)  # imports fine; using it raises RayFeatureError
        raise _error(child)

    def __dir__(self) -> list[str]:
        names = set(self.__dict__)
        for source in self._pbtlab_sources:
            names.update(n for n in dir(source) if not n.startswith("_"))
        names.update(m.rsplit(".", 1)[1] for m in _MODULES if m.rsplit(".", 1)[0] == self.__name__)
        return sorted(names)


_EXAMPLES = "ray.tune.examples"
#: Helper modules Ray's examples import, run from the installed Ray wheel as they are (as the examples).
WHEEL_HELPERS = ("ray.tune.utils.mock_trainable",)


def _wheel_example_spec(fullname: str) -> importlib.machinery.ModuleSpec | None:
    """Ray's example modules (``ray.tune.examples.pbt_function``...) from the installed Ray wheel, run as they are:
    their own ``import ray...`` lines get pbtlab's stand-ins. None when Ray is not installed."""
    ray_spec = importlib.machinery.PathFinder.find_spec("ray")
    if ray_spec is None or not ray_spec.submodule_search_locations:
        return None
    parts = fullname.split(".")[1:]  # tune, examples, ...
    base = os.path.join(next(iter(ray_spec.submodule_search_locations)), *parts)
    if os.path.isfile(os.path.join(base, "__init__.py")):
        return importlib.util.spec_from_file_location(fullname, os.path.join(base, "__init__.py"),
                                                      submodule_search_locations=[base])
    if os.path.isfile(base + ".py"):
        return importlib.util.spec_from_file_location(fullname, base + ".py")
    return None


class _RayFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers ``import ray...`` (first on ``sys.meta_path``) with :class:`_RayModule` objects or a clear error."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "ray" and not fullname.startswith("ray."):
            return None
        if fullname == _EXAMPLES or fullname.startswith(_EXAMPLES + ".") or fullname in WHEEL_HELPERS:
            example = _wheel_example_spec(fullname)
            if example is not None:
                return example
        if fullname not in _MODULES and not ray_names.is_ray_tune_module(fullname):
            raise _error(fullname)
        # Every stand-in is a package, so that `import ray.train.torch` reaches this finder (and its clear error).
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        sources, given = _MODULES[spec.name]() if spec.name in _MODULES else _table_module(spec.name)
        module = _RayModule(spec.name, sources, {**ray_names.constants(spec.name), **given})
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


_installed: dict[str, Any] = {}


def install(executor: str | None = None) -> None:
    """Answer ``import ray...`` with pbtlab until :func:`uninstall` (already imported ``ray`` modules are set aside).

    ``executor`` makes ``RunConfig(executor=None)`` mean that executor ("inprocess", "greenlets", "process") meanwhile.
    """
    if _installed:
        return
    finder = _RayFinder()
    _installed["finder"] = finder
    _installed["modules"] = {n: m for n, m in sys.modules.items() if n == "ray" or n.startswith("ray.")}
    _installed["executor"] = _config.DEFAULT_EXECUTOR
    for name in _installed["modules"]:
        del sys.modules[name]
    sys.meta_path.insert(0, finder)
    shim_state.active = True
    if executor is not None:
        _config.DEFAULT_EXECUTOR = executor
    _RayState.initialized = False


def uninstall() -> None:
    """Undo :func:`install`: the real ``ray`` (if any) is importable again."""
    if not _installed:
        return
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_installed["finder"])
    for name in [n for n in sys.modules if n == "ray" or n.startswith("ray.")]:
        del sys.modules[name]
    sys.modules.update(_installed["modules"])
    _config.DEFAULT_EXECUTOR = _installed["executor"]
    shim_state.active = False
    _installed.clear()


@contextlib.contextmanager
def ray_modules(executor: str | None = None) -> Iterator[None]:
    """``with ray_modules(): import ray`` gives pbtlab's stand-ins inside the block."""
    install(executor)
    try:
        yield
    finally:
        uninstall()


def run_script(path: str, args: Sequence[str] = (), executor: str | None = None) -> None:
    """Run the Ray Tune script at ``path`` as ``__main__`` with ``sys.argv = [path, *args]`` on pbtlab."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"pbtlab run: no script at {path}")
    saved_argv, saved_path0 = list(sys.argv), sys.path[0] if sys.path else None
    sys.argv = [path, *args]
    sys.path.insert(0, os.path.dirname(path))  # as `python SCRIPT.py` does
    try:
        with ray_modules(executor):
            runpy.run_path(path, run_name="__main__")
    finally:
        sys.argv = saved_argv
        if sys.path and sys.path[0] == os.path.dirname(path) and sys.path[0] != saved_path0:
            del sys.path[0]
