"""Results of an experiment, live or loaded from its directory: ``ResultGrid`` and ``Result``.

    >>> grid = load_results("pbtlab_results/train_func_2026-01-01_00-00-00")   # doctest: +SKIP
    >>> best = grid.get_best_result("Q", "max")                                # doctest: +SKIP
    >>> best.metrics_dataframe[["training_iteration", "Q", "config/lr"]]      # doctest: +SKIP

Nothing here unpickles anything: results, events and state are JSON.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar

from pbtlab._optional import require
from pbtlab.checkpoint import Checkpoint
from pbtlab.errors import ConfigError, TrialError
from pbtlab.metrics import flatten_metrics, metric_value
from pbtlab.rundir.checkpoints import kept_positions
from pbtlab.rundir.reader import RunDir

__all__ = ["finite_number", "mode_sign", "pick_best", "Result", "ResultGrid"]

_T = TypeVar("_T")


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or None (non-numbers, NaN and infinities).

        >>> finite_number("0.5"), finite_number(float("nan")), finite_number(None)
        (0.5, None, None)
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def mode_sign(mode: str) -> float:
    """+1 for ``"max"``, -1 for ``"min"``: multiply a score by it and higher is better."""
    return 1.0 if mode == "max" else -1.0


def pick_best(scored: Iterable[tuple[_T, float | None]], filter_nan_and_inf: bool = True) -> _T | None:
    """The item with the highest sign-adjusted score (the first one on ties), skipping items without a score.

    The one rule for "the best trial", used by ``ResultGrid.get_best_result`` and the figures.

        >>> pick_best([("a", 1.0), ("b", 3.0), ("c", 3.0), ("d", None)])
        'b'
    """
    best: _T | None = None
    best_value = -math.inf
    for item, value in scored:
        if value is None or (filter_nan_and_inf and not math.isfinite(value)):
            continue
        if best is None or value > best_value:
            best, best_value = item, value
    return best


def _pandas() -> Any:
    return require("pandas", "analysis", "metrics_dataframe and get_dataframe")


def _checkpoint_listing(experiment: Mapping[str, Any]) -> tuple[int, str | None] | None:
    """``(num_to_keep, score order or None)`` of the run, from experiment.json; None: list every kept one."""
    stored = (experiment.get("run_config") or {}).get("checkpoint_config")
    if isinstance(stored, Mapping):
        keep = stored.get("num_to_keep")
        order = stored.get("checkpoint_score_order") if stored.get("checkpoint_score_attribute") else None
        return (int(keep), order) if isinstance(keep, int) else None
    return None  # written before the configs were stored: the score order is unknown


class Result:
    """One trial's outcome: final ``metrics`` and ``config``, ``checkpoint``, ``error``, full history."""

    def __init__(self, run_dir: RunDir, record: Mapping[str, Any], rows_limit: int | None = None) -> None:
        self._run_dir = run_dir
        experiment_path = self._experiment_path = run_dir.path
        self._record = record
        self._rows_limit = rows_limit
        self.trial_id: str = record["trial_id"]
        self.config: dict[str, Any] = record["config"]
        self.metrics: dict[str, Any] = dict(record.get("last_result") or {})
        self.status: str = record["status"]
        self.tag: str = record.get("tag", "")
        error = record.get("error")
        self.error: TrialError | None = (
            TrialError(self.trial_id, f"{error['error_type']}: {error['message']}", error.get("traceback", ""))
            if error else None)
        latest = record.get("latest")
        self.checkpoint: Checkpoint | None = (
            Checkpoint(os.path.join(experiment_path, latest["path"])) if latest else None)

    @property
    def path(self) -> str:
        return self._run_dir.trial_dir(self.trial_id)

    @property
    def best_checkpoints(self) -> list[tuple[Checkpoint, dict[str, Any]]]:
        """The ``CheckpointConfig(num_to_keep)`` best checkpoints, each with the result reported with it, as
        in Ray: the most recent ones oldest first, or by ``checkpoint_score_attribute`` worst first (the best
        is last). The trial's latest checkpoint stays on disk even when it is not among them, as in Ray."""
        kept = self._record.get("checkpoints", [])
        listing = _checkpoint_listing(self._run_dir.experiment)
        if listing is not None:
            kept = [kept[p] for p in kept_positions([ref.get("score") for ref in kept], *listing)]
        if not kept:
            return []
        rows = self.history()
        by_name = {row.get("checkpoint_dir_name"): row for row in rows if row.get("checkpoint_dir_name")}
        out = []
        for ref in kept:
            name = os.path.basename(ref["path"])
            row = by_name.get(name) or next((r for r in reversed(rows)
                                            if r.get("training_iteration") == ref["iteration"]), None)
            out.append((Checkpoint(os.path.join(self._experiment_path, ref["path"])),
                        dict(row) if row is not None else {"training_iteration": ref["iteration"]}))
        return out

    def history(self) -> list[dict[str, Any]]:
        """Every row the trial reported, in order, including rows from before it was exploited."""
        return self._run_dir.rows(self.trial_id, self._rows_limit)

    @cached_property
    def metrics_dataframe(self) -> Any:
        """Every reported row as a pandas DataFrame; ``config/<name>`` columns hold the schedule.

        ``restored_from/*`` columns mark the first row after the trial's state was replaced
        (an exploit, a restart after a failure, or a resume).
        """
        pandas = _pandas()
        rows = self.history()
        if not rows:
            return pandas.DataFrame()
        frame = pandas.json_normalize(rows, sep="/")
        # json_normalize keeps a column for the rows where a nested field was null; its children say it all.
        if "restored_from" in frame.columns and any(c.startswith("restored_from/") for c in frame.columns):
            frame = frame.drop(columns="restored_from")
        return frame

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if k not in ("config",) and not isinstance(v, dict)}
        return f"Result(trial_id={self.trial_id!r}, status={self.status!r}, metrics={shown!r})"


class ResultGrid(Sequence[Result]):
    """All trials' results, indexable in trial order, as Ray Tune's ``ResultGrid``."""

    def __init__(self, experiment_path: str, experiment: Mapping[str, Any], trial_records: list[Mapping[str, Any]],
                 rows_written: Mapping[str, int] | None = None, events_written: int | None = None) -> None:
        """A grid from plain values: the experiment directory, its settings (experiment.json as a dict), one
        record per trial (``Trial.to_dict()``: trial_id, config, status, last_result, latest, checkpoints,
        error), and optionally how many rows per trial and events were written when the state was saved
        (readers stop there; None: read everything)."""
        self.experiment_path = experiment_path
        self.experiment = dict(experiment)
        self._events_limit = events_written
        self.run_dir = RunDir(experiment_path, strict=False, experiment=self.experiment)
        self._results = [Result(self.run_dir, r, (rows_written or {}).get(r["trial_id"])) for r in trial_records]

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> ResultGrid:
        """Load a finished (or interrupted) experiment from its directory."""
        run = RunDir(path)
        experiment = run.experiment  # read first: a folder without it is not a run at all
        state = run.state or {}
        return cls(run.path, experiment, state["trials"], state.get("rows_written"), state.get("events_written"))

    # -- sequence protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, index: int) -> Result:  # type: ignore[override]
        return self._results[index]

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    # -- Ray's API ----------------------------------------------------------------------------------
    @property
    def errors(self) -> list[TrialError]:
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    @property
    def num_terminated(self) -> int:
        return sum(r.status == "TERMINATED" for r in self._results)

    def get_best_result(self, metric: str | None = None, mode: str | None = None, scope: str = "last",
                        filter_nan_and_inf: bool = True) -> Result:
        """The trial with the best ``metric`` (its last reported value, or over all rows with scope="all")."""
        metric = metric or self.experiment.get("metric")
        mode = mode or self.experiment.get("mode")
        if not metric or mode not in ("min", "max"):
            raise ConfigError(
                "get_best_result needs metric and mode ('min' or 'max'): pass them, or set them in TuneConfig; "
                f"got metric={metric!r}, mode={mode!r}")
        if scope not in ("last", "all", "avg", "last-5-avg", "last-10-avg"):
            raise ConfigError(f"scope must be 'last', 'all', 'avg', 'last-5-avg' or 'last-10-avg', got {scope!r}")
        sign = mode_sign(mode)
        best = pick_best(((r, self._scope_value(r, metric, scope, sign)) for r in self._results), filter_nan_and_inf)
        if best is None:
            reported = {key for result in self._results for key in flatten_metrics(result.metrics)}
            raise ConfigError(
                f"no trial reported a usable value of metric {metric!r}; the trials reported "
                f"{sorted(k for k in reported if k != 'config')}")
        return best

    @staticmethod
    def _scope_value(result: Result, metric: str, scope: str, sign: float) -> float | None:
        """The trial's sign-adjusted value of ``metric`` under ``scope`` (higher is better)."""
        if scope == "last":
            values = [metric_value(result.metrics, metric)]
        else:
            values = [metric_value(row, metric) for row in result.history()]
            if scope.startswith("last-"):
                values = values[-int(scope.split("-")[1]):]
        numbers = []
        for value in values:
            try:
                numbers.append(sign * float(value))  # type: ignore[arg-type]  # non-numbers are skipped
            except (TypeError, ValueError):
                continue
        if not numbers:
            return None
        if scope == "last":
            return numbers[-1]
        if scope == "all":
            return max(numbers)
        return sum(numbers) / len(numbers)

    def get_dataframe(self, filter_metric: str | None = None, filter_mode: str | None = None) -> Any:
        """One row per trial: its last result (or its best row by ``filter_metric``), flattened."""
        pandas = _pandas()
        rows = []
        for result in self._results:
            row = result.metrics
            if filter_metric is not None:
                if filter_mode not in ("min", "max"):
                    raise ConfigError(f"get_dataframe(filter_mode=...) must be 'min' or 'max', got {filter_mode!r}")
                history = [r for r in result.history() if finite_number(metric_value(r, filter_metric)) is not None]
                if history:
                    pick = max if filter_mode == "max" else min
                    row = pick(history, key=lambda r: float(metric_value(r, filter_metric)))
            rows.append({**row, "trial_id": result.trial_id, "status": result.status,
                         "logdir": result.path})
        return pandas.json_normalize(rows, sep="/")

    # -- pbtlab's own -------------------------------------------------------------------------------
    @cached_property
    def events(self) -> list[dict[str, Any]]:
        """Every recorded event (decisions, starts, restores, errors), in order."""
        return self.run_dir.events(self._events_limit)

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]

    def trial(self, trial_id: str) -> Result:
        for result in self._results:
            if result.trial_id == trial_id:
                return result
        raise ConfigError(f"no trial {trial_id!r} in this experiment; trials are {[r.trial_id for r in self]}")

    def __repr__(self) -> str:
        return f"ResultGrid({len(self)} trials at {self.experiment_path!r})"
