"""``RunDir(path)``: the one reader of a pbtlab run directory.

Every view (``ResultGrid``, lineage, plots, the report, ``pbtlab serve``, ``pbtlab compare``, TensorBoard
export) reads a run through this class, so each knows the same things: where a trial's folder is
(``TuneConfig(trial_dirname_creator)`` names included), which trial owns a checkpoint path, and where the
saved state says the rows and events stop. Nothing is ever unpickled.

    >>> from pbtlab.examples.runs import run_toy_pbt
    >>> grid = run_toy_pbt(population=2, seed=0, storage_path=getfixture("tmp_path"), name="demo")
    >>> run = RunDir(grid.experiment_path)
    >>> first = run.trial_ids[0]
    >>> len(run.trial_ids), os.path.basename(run.trial_dir(first)) == first, len(run.rows(first))
    (2, True, 100)
    >>> run.events()[0]["event"], type(run.typed_events()[0]).__name__
    ('experiment_start', 'ExperimentStart')
    >>> run.checkpoint_owner(f"{first}/checkpoint_000002") == first
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from pbtlab.errors import ExperimentError
from pbtlab.rundir.records import Event, event_from_dict
from pbtlab.rundir.store import (
    EVENTS_FILE,
    EXPERIMENT_FILE,
    PARAMS_FILE,
    RESULT_FILE,
    STATE_FILE,
    iter_jsonl,
    read_json,
)
from pbtlab.rundir.tail import FileTail, inside, read_json_file

__all__ = ["RunDir", "safe_name"]


def safe_name(name: Any) -> bool:
    """Whether ``name`` can be one folder's name inside a run (no separators, no ``..``, not empty).

    >>> safe_name("trial_0"), safe_name("../etc"), safe_name(".."), safe_name("")
    (True, False, False, False)
    """
    return (isinstance(name, str) and bool(name) and name not in (".", "..")
            and not any(c in name for c in ("/", "\\", "\x00")))


class RunDir:
    """A run directory on disk, read lazily; ``experiment`` and ``state`` are read once and kept.

    ``strict=False`` (for live views) reads what is there: a missing or damaged ``state.json`` gives
    ``state = None`` instead of an error. ``experiment`` passes settings the caller already holds (a live
    ``ResultGrid``, or a view that read ``experiment.json`` itself), so they are not read again.
    """

    def __init__(self, path: str | os.PathLike[str], strict: bool = True,
                 experiment: Mapping[str, Any] | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.strict = strict
        if experiment is not None:
            self.__dict__["experiment"] = dict(experiment)  # fills the cached property below
        elif strict and not os.path.isdir(self.path):
            raise ExperimentError(f"no experiment directory at {self.path}")

    # -- settings and state -------------------------------------------------------------------------------
    @cached_property
    def experiment(self) -> dict[str, Any]:
        """``experiment.json`` as a dict (the run's settings, trial ids and trial folder names)."""
        file = os.path.join(self.path, EXPERIMENT_FILE)
        if self.strict:
            value = read_json(file, "experiment settings (experiment.json)")
        else:
            value, _ = read_json_file(file)
        if not isinstance(value, dict) or ("trial_ids" not in value and self.strict):
            if self.strict:
                raise ExperimentError(f"{file} is not a pbtlab experiment file")
            return {}
        return value

    @cached_property
    def state(self) -> dict[str, Any] | None:
        """``state.json`` (the latest saved state), or None where a live view finds none yet."""
        file = os.path.join(self.path, STATE_FILE)
        if not self.strict:
            value, _ = read_json_file(file)
            return value if isinstance(value, dict) else None
        value = read_json(file, "experiment state (state.json)")
        if not isinstance(value, dict) or not isinstance(value.get("trials"), list):
            raise ExperimentError(f"{file} is not a pbtlab state file")
        return value

    @property
    def trial_ids(self) -> list[str]:
        """The trials in the order they were added."""
        return [str(t) for t in self.experiment.get("trial_ids") or []]

    # -- trial folders ---------------------------------------------------------------------------------
    @cached_property
    def _dirnames(self) -> dict[str, str]:
        names = self.experiment.get("trial_dirs") or {}
        return {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}

    @cached_property
    def _trial_of_dirname(self) -> dict[str, str]:
        owners = {trial_id: trial_id for trial_id in self.trial_ids if trial_id not in self._dirnames}
        owners.update({name: trial_id for trial_id, name in self._dirnames.items()})
        return owners

    def dirname(self, trial_id: str) -> str:
        """The trial's folder name: its id, or the name ``TuneConfig(trial_dirname_creator)`` gave it."""
        return self._dirnames.get(trial_id, trial_id)

    def trial_dir(self, trial_id: str) -> str:
        return os.path.join(self.path, self.dirname(trial_id))

    def trial_of_dirname(self, name: str) -> str | None:
        """The trial whose folder is ``name`` (None if no trial's)."""
        return self._trial_of_dirname.get(name)

    def checkpoint_owner(self, checkpoint: str) -> str | None:
        """The trial that owns a checkpoint path as events record it (``<trial folder>/<checkpoint>``).

        >>> run = RunDir("/runs/a", experiment={"trial_ids": ["0"], "trial_dirs": {"0": "lr=0.1"}})
        >>> run.checkpoint_owner("lr=0.1/checkpoint_000001"), run.checkpoint_owner("0/checkpoint_000001")
        ('0', None)
        """
        folder = checkpoint.replace(os.sep, "/").partition("/")[0]
        return self.trial_of_dirname(folder)

    def result_path(self, trial_id: str) -> str | None:
        """``<trial folder>/result.jsonl``, or None if the recorded folder name would leave the run."""
        name = self.dirname(trial_id)
        if not safe_name(name):
            return None
        path = os.path.join(self.path, name, RESULT_FILE)
        return path if inside(self.path, path) else None

    # -- rows, events, params -------------------------------------------------------------------------------
    def rows_limit(self, trial_id: str) -> int | None:
        """How many of the trial's rows the saved state covers (None: read them all)."""
        written = (self.state or {}).get("rows_written") if self.strict else None
        return written.get(trial_id) if isinstance(written, dict) else None

    def rows(self, trial_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Every row the trial reported, in order (up to ``limit`` lines)."""
        path = self.result_path(trial_id)
        if path is None:
            raise ExperimentError(f"trial {trial_id!r} has the folder name {self.dirname(trial_id)!r}, "
                                  f"which is not a folder inside {self.path}")
        return list(iter_jsonl(path, f"results of trial {trial_id}", limit))

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every event record as written (dicts), in order (up to ``limit`` lines)."""
        return list(iter_jsonl(os.path.join(self.path, EVENTS_FILE), "event log (events.jsonl)", limit))

    def typed_events(self, limit: int | None = None) -> list[Event]:
        """The event log as the schema's classes (``pbtlab.rundir.records``)."""
        return [event_from_dict(e, f"events.jsonl record {i}") for i, e in enumerate(self.events(limit))]

    def params(self, trial_id: str) -> dict[str, Any] | None:
        """The trial's starting config (``params.json``), or None if it is missing or damaged."""
        value, _ = read_json_file(os.path.join(self.trial_dir(trial_id), PARAMS_FILE))
        return value if isinstance(value, dict) else None

    # -- following a live run -------------------------------------------------------------------------------
    def event_tail(self) -> FileTail:
        """A reader of ``events.jsonl`` that returns only what was appended since its last read."""
        return FileTail(os.path.join(self.path, EVENTS_FILE))

    def row_tail(self, trial_id: str) -> FileTail | None:
        """Likewise for the trial's rows; None if its recorded folder name would leave the run."""
        path = self.result_path(trial_id)
        return None if path is None else FileTail(path, f"{self.dirname(trial_id)}/{RESULT_FILE}")

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"
