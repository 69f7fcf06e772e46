"""The one place ``pbtlab serve`` imports its web stack (the ``[serve]`` extra), with an error naming the extra.

    >>> sorted(require_serve_stack())
    ['plotly', 'starlette', 'uvicorn']
"""

from __future__ import annotations

import importlib
from typing import Any

_STACK = ("starlette", "uvicorn", "plotly")


def require_serve_stack() -> dict[str, Any]:
    """The web stack's modules by name; a clear error naming the extra when one is missing."""
    modules = {}
    for name in _STACK:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:
            raise ImportError(f"pbtlab serve needs {name} (not installed): pip install 'pbtlab[serve]'") from None
    return modules
