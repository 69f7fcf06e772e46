"""The result fields pbtlab fills in itself, as opposed to the values a trainable reports.

One list, used wherever "what did the trainable report?" matters: the status table's metric
columns, a scheduler's "metric not reported" message, the engine's result enrichment.

    >>> "training_iteration" in AUTO_RESULT_FIELDS, "loss" in AUTO_RESULT_FIELDS
    (True, False)
"""

from __future__ import annotations

#: Keys pbtlab adds to every result row (Ray Tune's automatic fields plus pbtlab's ``restored_from``).
AUTO_RESULT_FIELDS: frozenset[str] = frozenset({
    "training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "trial_id", "done",
    "iterations_since_restore", "time_since_restore", "date", "config", "checkpoint_dir_name", "restored_from",
})
