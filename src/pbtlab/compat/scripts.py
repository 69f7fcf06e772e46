"""Running another tool's script on pbtlab (``pbtlab run SCRIPT.py``).

    >>> run_script("/nonexistent/train.py")
    Traceback (most recent call last):
    ...
    pbtlab.errors.ConfigError: pbtlab run: no script at /nonexistent/train.py
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["run_script"]


def run_script(path: str | os.PathLike[str], args: Sequence[str] = (), executor: str | None = None) -> None:
    """``pbtlab run SCRIPT.py``: run another tool's script on pbtlab."""
    from pbtlab.compat.ray.shim import run_script as run

    run(os.fspath(path), args, executor=executor)

