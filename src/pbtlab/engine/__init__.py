"""The engine: runs an experiment by asking the scheduler, telling the executor and recording everything.

- ``trial.py``: a trial's record (``Trial``, ``TrialStatus``, ``PendingRestart``).
- ``controller.py``: the loop: slots, dispatch, decisions applied, state saves.
- ``reports.py``: a report becomes a result row (the automatic fields) and is checked against stop criteria.
- ``failures.py``: whether a failed trial is retried.
- ``retention.py``: which checkpoints are kept, pinned, and deleted (after the next state save).
- ``policy_log.py``: Ray's ``pbt_global.txt`` / ``pbt_policy_<trial>.txt``.
- ``build.py``: the one place a controller is built, for a new run or a resumed one.
"""

__all__: list[str] = []  # a package of modules: import from them
