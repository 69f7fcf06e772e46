"""Reading a run: its results (``ResultGrid``, ``Result``) and its lineage from the event log.

    >>> from pbtlab.analysis import load_results
    >>> grid = load_results("pbtlab_results/my_run")       # doctest: +SKIP
    >>> grid.get_best_result("Q", "max").trial_id           # doctest: +SKIP

- ``pbtlab.analysis.results``: ``ResultGrid``, ``Result``, ``load_results`` (also importable from here and
  from ``pbtlab``);
- ``pbtlab.analysis.lineage``: a run as plain data (``run_data``) and what the event log says happened
  to it: perturbations, exploit edges, ancestry, the schedule a trial was trained with;
- ``pbtlab.analysis.events``: one readable line per event record (``pbtlab events`` and the HTML report).
"""

from pbtlab.analysis.loading import load_results
from pbtlab.analysis.results import Result, ResultGrid

__all__ = ["Result", "ResultGrid", "load_results"]
