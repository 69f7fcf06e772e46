"""A rebuilt Ray run as a pbtlab ``ResultGrid``: the object every view (plots, report, serve, compare) reads."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pbtlab.analysis.results import Result, ResultGrid
from pbtlab.compat.ray.events import error_event
from pbtlab.compat.ray.reconstruction import RayRun, RayTrial
from pbtlab.rundir.reader import RunDir

__all__ = ["RayResult", "RayResultGrid", "trial_record"]


class RayResult(Result):
    """One Ray trial, with its rows held in memory (rebuilt from result.json and progress.csv)."""

    def __init__(self, run_dir: RunDir, record: Mapping[str, Any], rows: Sequence[dict[str, Any]]) -> None:
        super().__init__(run_dir, record)
        self._rows = [dict(r) for r in rows]
        self._folder = str(record["folder"])

    @property
    def path(self) -> str:
        return os.path.join(self._experiment_path, self._folder)

    def history(self) -> list[dict[str, Any]]:
        """Every row Ray kept for this trial, in order (see the grid's ``data_gap`` events for what it lost)."""
        return [dict(r) for r in self._rows]


class RayResultGrid(ResultGrid):
    """A pbtlab ``ResultGrid`` over a Ray Tune experiment; ``events`` and rows are built in memory."""

    def __init__(self, run: RayRun) -> None:
        self.experiment_path = run.path
        self.experiment = dict(run.experiment)
        self._events_limit = None
        self.run_dir = RunDir(run.path, strict=False, experiment=self.experiment)
        self._results = [RayResult(self.run_dir, record, run.rows[record["trial_id"]]) for record in run.trials]
        self.__dict__["events"] = [dict(e) for e in run.events]  # the base class reads events.jsonl; these are built
        self.gaps: list[str] = list(run.experiment.get("gaps", []))

    def __repr__(self) -> str:
        return f"RayResultGrid({len(self)} trials of the Ray Tune experiment at {self.experiment_path!r})"


def trial_record(folder: str, trial: RayTrial, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    base = os.path.join(folder, trial.folder)
    on_disk = sorted(name for name in (os.listdir(base) if os.path.isdir(base) else [])
                     if name.startswith("checkpoint_") and os.path.isdir(os.path.join(base, name)))
    iteration_of = {row.get("checkpoint_dir_name"): row.get("training_iteration") for row in rows}
    checkpoints = [{"path": f"{trial.folder}/{name}", "iteration": iteration_of.get(name)} for name in on_disk]
    record: dict[str, Any] = {
        "trial_id": trial.trial_id, "config": trial.config, "status": trial.status, "tag": trial.tag,
        "last_result": dict(rows[-1]) if rows else dict(trial.meta.get("last_result") or {}),
        "latest": checkpoints[-1] if checkpoints else None, "checkpoints": checkpoints, "folder": trial.folder,
        "error": None,
    }
    if trial.status == "ERROR":
        error = error_event(folder, trial, int(trial.meta.get("num_failures") or 0))
        record["error"] = {"error_type": error["error_type"], "message": error["message"],
                           "traceback": error["traceback"]}
    return record
