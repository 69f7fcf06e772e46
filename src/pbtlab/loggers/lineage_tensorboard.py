"""TensorBoard curves that follow each trial's lineage across exploits (Ray users asked for this: ray#9339).

In Ray's TensorBoard files each trial's curve jumps at every exploit, because the trial continues
from another trial's checkpoint. Here every trial gets a second curve, ``lineage/<metric>``, made of
the rows that actually produced its final state: its ancestors' rows up to each clone point, then its
own. Its hyperparameters are written the same way (``lineage/config/<name>``), so TensorBoard shows the
schedule the winner was trained with.

    >>> paths = write_lineage_tensorboard("pbtlab_results/my_run")  # doctest: +SKIP

The event files are written by ``pbtlab.loggers._tbx`` (no tensorboardX needed; view them with TensorBoard).
Works on pbtlab runs and on Ray Tune runs (written to ``./<name>_tensorboard_lineage``, as readers never
write into a Ray directory).
"""

from __future__ import annotations

import os
from typing import Any

from pbtlab.analysis.lineage import ancestry, run_data
from pbtlab.loggers._tbx import EventFileWriter

__all__ = ["default_output", "write_lineage_tensorboard"]


def default_output(results: Any) -> str:
    run = run_data(results)
    if run.experiment.get("source") == "ray" or not os.path.exists(os.path.join(run.path, "experiment.json")):
        return os.path.abspath(f"{run.experiment.get('name') or 'run'}_tensorboard_lineage")
    return os.path.join(run.path, "tensorboard_lineage")


def write_lineage_tensorboard(results: Any, output: str | os.PathLike[str] | None = None) -> list[str]:
    """Write one TensorBoard run per trial under ``output`` (see the module docstring); returns the folders."""
    import time

    run = run_data(results)
    output = os.fspath(output) if output is not None else default_output(results)
    by_id = {t.trial_id: t for t in run.trials}
    folders = []
    for trial in run.trials:
        folder = os.path.join(output, trial.trial_id)
        os.makedirs(folder, exist_ok=True)
        writer = EventFileWriter(os.path.join(folder, "events"))
        for span in ancestry(run, trial.trial_id):
            for row in by_id[span.trial_id].rows[span.first_row:span.last_row + 1]:
                writer.add_scalars(int(row.get("training_iteration", 0)), time.time(),
                                   [(f"lineage/{key}", value) for key, value in _numbers(row)])
        writer.close()
        folders.append(folder)
    return folders


def _numbers(row: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if key in ("config",) or prefix:
                out.extend(_numbers(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and not name.startswith(
                ("time_", "timestamp", "iterations_since", "training_iteration")):
            out.append((name, float(value)))
    return out
