"""``pbtlab serve``: watch PBT runs live in a browser (population, curves, lineage, schedule, event log).

From the shell: ``pbtlab serve pbtlab_results`` (then open http://127.0.0.1:8375). From Python, in a
background thread:

    >>> from pbtlab.serve import start_server
    >>> server = start_server([str(getfixture("tmp_path"))])
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.stop()

Starlette and uvicorn come with the ``[serve]`` extra; ``pbtlab.serve.stack.require_serve_stack`` is the one
place that imports them. ``pbtlab.serve.figures`` builds the Plotly figures as plain JSON and needs neither;
the pages draw them with plotly.js's basic bundle, shipped in ``pbtlab/serve/static``.
"""

from __future__ import annotations

from typing import Any

from pbtlab.serve.stack import require_serve_stack


def __getattr__(name: str) -> Any:
    if name in ("create_app", "start_server", "serve_forever", "RunningServer"):
        from pbtlab.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'pbtlab.serve' has no attribute {name!r}")


__all__ = ["RunningServer", "create_app", "require_serve_stack", "serve_forever", "start_server"]
