"""Reading a run: its results (``ResultGrid``, ``Result``) and its lineage from the event log.

    >>> from pbtlab.analysis import load_results
    >>> grid = load_results("pbtlab_results/my_run")       # doctest: +SKIP
    >>> grid.get_best_result("Q", "max").trial_id           # doctest: +SKIP

- ``pbtlab.analysis.results``: ``ResultGrid``, ``Result``, and ``pbtlab.analysis.loading``: ``load_results``
  (all three also importable from here and from ``pbtlab``; ``load_results`` is imported when first used);
- ``pbtlab.analysis.lineage``: a run as plain data (``run_data``) and what the event log says happened
  to it: perturbations, exploit edges, ancestry, the schedule a trial was trained with;
- ``pbtlab.analysis.events``: one readable line per event record (``pbtlab events`` and the HTML report).
"""

from typing import TYPE_CHECKING, Any

from pbtlab.analysis.results import Result, ResultGrid

if TYPE_CHECKING:
    from pbtlab.analysis.loading import load_results

__all__ = ["Result", "ResultGrid", "load_results"]


def __getattr__(name: str) -> Any:
    """``load_results`` is imported when first used (with the reader of other tools' runs it needs)."""
    if name == "load_results":
        from pbtlab.analysis.loading import load_results

        globals()["load_results"] = load_results  # asked once
        return load_results
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
