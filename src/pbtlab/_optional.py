"""The one helper that imports an optional dependency, with an error that names the extra to install.

    >>> require("json", "analysis", "reading runs").__name__
    'json'
    >>> require("no_such_module_xyz", "viz", "pbtlab's plots")
    Traceback (most recent call last):
    ...
    pbtlab._optional.MissingDependency: pbtlab's plots need no_such_module_xyz, which is not installed (No module named 'no_such_module_xyz'); install it with: pip install 'pbtlab[viz]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pbtlab.errors import PbtlabError

__all__ = ["MissingDependency", "require"]


class MissingDependency(PbtlabError, ImportError):
    """An optional dependency a feature needs is not installed; the message names the extra to install."""


def require(module: str, extra: str, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module`` for ``feature`` (a plural subject: "pbtlab's plots"), or say which extra brings it.

    ``package`` is the name to install when it is not the module's (``PIL`` comes with Pillow)."""
    top = module.split(".")[0]
    try:
        importlib.import_module(top)  # a package blocked or missing fails here, even if a submodule is cached
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependency(f"{feature} need {package or top}, which is not installed ({error}); "
                                f"install it with: pip install 'pbtlab[{extra}]'") from error
