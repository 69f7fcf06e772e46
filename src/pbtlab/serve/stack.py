"""The one place ``pbtlab serve`` imports its web stack (the ``[serve]`` extra), with an error naming the extra.

    >>> sorted(require_serve_stack())
    ['starlette', 'uvicorn']
"""

from __future__ import annotations

from typing import Any

from pbtlab._optional import require

__all__ = ["require_serve_stack"]

_STACK = ("starlette", "uvicorn")  # plotly.js's basic bundle ships with pbtlab: no plotly package needed


def require_serve_stack() -> dict[str, Any]:
    """The web stack's modules by name; a clear error naming the extra when one is missing."""
    return {name: require(name, "serve", "pbtlab serve's pages") for name in _STACK}
