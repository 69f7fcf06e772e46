"""The names of Ray Tune's namespaces that pbtlab's mirror of them (``pbtlab.tune...``) does not provide: they
import, and raise an error saying what to use instead when used.

    >>> mirrored_name("tune", "CLIReporter", "pbtlab.tune.CLIReporter")
    <pbtlab.tune.CLIReporter: not provided by pbtlab>
"""

from __future__ import annotations

from typing import Any

__all__ = ["mirrored_name"]


def mirrored_name(namespace: str, name: str, shown_as: str) -> Any:
    """``shown_as``'s placeholder if Ray Tune's ``namespace`` has ``name``; else the usual AttributeError."""
    if not name.startswith("_"):
        from pbtlab.compat import unsupported_name

        found = unsupported_name(namespace, name, shown_as)
        if found is not None:
            return found
    module = shown_as.rsplit(".", 1)[0]
    raise AttributeError(f"module {module!r} has no attribute {name!r}")
