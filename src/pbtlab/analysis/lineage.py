"""What the event log says happened to a run: perturbations, exploit edges, ancestry, schedules.

A run is read once into ``RunData`` (settings, every trial's rows, the event log; plain data, no
pandas). Its lineage (``run.lineage``) is computed once and indexed: every perturbation tied to
the rows before and after it and to the checkpointed row it cloned, each trial's segments, the
checkpoint each row wrote. Nothing is guessed from ``iteration % perturbation_interval``: a jump
is an exploit (or explore-only restart) recorded in ``events.jsonl``, tied to the first row the
trial reported after it (``restored_from``) and to the checkpointed row it was cloned from.

    >>> from pbtlab.examples.runs import run_toy_pbt
    >>> run = run_data(run_toy_pbt(population=2, seed=0, storage_path=getfixture("tmp_path")))
    >>> edges = lineage_edges(run)
    >>> len(edges) == len(run.events_of("exploit"))
    True
    >>> run.lineage is run.lineage   # computed once
    True
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from pbtlab.analysis.loading import load_results
from pbtlab.analysis.results import finite_number, mode_sign, pick_best
from pbtlab.errors import ConfigError, describe
from pbtlab.metrics import metric_value
from pbtlab.nested import column_paths, get_path
from pbtlab.rundir.records import EventKind

__all__ = [
    "ancestry", "AncestrySpan", "best_trial", "checkpoint_row", "decision_iterations", "hyperparameter_names",
    "hyperparameter_schedule", "Jump", "jumps", "lineage_edges", "LineageEdge", "PERTURBATION_REASONS",
    "PerturbationRecord", "perturbations", "resolve_trial", "run_data", "RunData", "RunLineage", "Schedule",
    "Segment", "trial_segments", "TrialRecord",
]

#: Restart reasons recorded in ``restored_from/reason`` that a perturbation caused.
PERTURBATION_REASONS = (EventKind.EXPLOIT.value, EventKind.EXPLORE.value)


# -- a run as plain data --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class TrialRecord:
    """One trial: its id, position, starting config and every row it reported, in order."""

    trial_id: str
    index: int
    initial_config: dict[str, Any]
    rows: tuple[dict[str, Any], ...]
    status: str = ""

    @property
    def final_row(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}


@dataclasses.dataclass(frozen=True)
class RunData:
    """An experiment as plain data: settings, trials (in trial order) and the event log.

    ``lineage`` is computed on first use and kept: every consumer shares one set of jumps.
    """

    path: str
    experiment: dict[str, Any]
    trials: tuple[TrialRecord, ...]
    events: tuple[dict[str, Any], ...]

    @property
    def metric(self) -> str | None:
        return self.experiment.get("metric") or (self.experiment.get("scheduler") or {}).get("metric")

    @property
    def mode(self) -> str | None:
        return self.experiment.get("mode") or (self.experiment.get("scheduler") or {}).get("mode")

    @property
    def param_columns(self) -> list[str]:
        return list(self.experiment.get("param_columns") or [])

    @property
    def tuned_params(self) -> list[str]:
        """The hyperparameters the scheduler explores (PBT's ``hyperparam_mutations``, PB2's
        ``hyperparam_bounds``), in ``param_columns`` order; all ``param_columns`` when it names none.
        A sampled ``seed`` or other constant of a trial is in ``param_columns`` but not here."""
        scheduler = self.experiment.get("scheduler")
        named: set[str] = set()
        if isinstance(scheduler, Mapping):
            for key in ("hyperparam_mutations", "hyperparam_bounds"):
                named.update(column_paths(scheduler.get(key)))
        tuned = [column for column in self.param_columns if column in named]
        return tuned or self.param_columns

    @property
    def trial_ids(self) -> list[str]:
        return [t.trial_id for t in self.trials]

    @cached_property
    def _by_id(self) -> dict[str, TrialRecord]:
        return {t.trial_id: t for t in self.trials}

    def dirname(self, trial_id: str) -> str:
        """The trial's folder name, which checkpoint paths in events begin with (``trial_dirname_creator``)."""
        names = self.experiment.get("trial_dirs") or {}
        return str(names.get(trial_id, trial_id))

    def trial(self, trial_id: str) -> TrialRecord:
        record = self._by_id.get(trial_id)
        if record is None:
            raise ConfigError(f"trial must be one of {self.trial_ids} (or its index), got {trial_id!r}")
        return record

    def events_of(self, *kinds: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") in kinds]

    @cached_property
    def lineage(self) -> RunLineage:
        """The run's perturbations, segments and checkpoints, indexed (computed once)."""
        return RunLineage(self)


def run_data(results: Any) -> RunData:
    """Read a live ``ResultGrid`` or an experiment directory path into ``RunData``.

    The one entry point every figure and the report go through.

        >>> run_data(42)
        Traceback (most recent call last):
        ...
        pbtlab.errors.ConfigError: results must be a ResultGrid or an experiment directory path, got 42 (int)
    """
    if isinstance(results, RunData):
        return results
    if isinstance(results, (str, os.PathLike)) or type(results).__module__.startswith("ray."):  # Ray's grids too
        results = load_results(results)
    if not (hasattr(results, "events") and hasattr(results, "experiment") and hasattr(results, "__iter__")):
        raise ConfigError(f"results must be a ResultGrid or an experiment directory path, got {describe(results)}")
    added = {e["trial_id"]: e.get("config") for e in results.events if e.get("event") == EventKind.TRIAL_ADD}
    trials = []
    for index, result in enumerate(results):
        rows = tuple(result.history())
        initial = added.get(result.trial_id) or (rows[0].get("config") if rows else None) or result.config
        trials.append(TrialRecord(result.trial_id, index, dict(initial), rows, str(getattr(result, "status", ""))))
    return RunData(str(results.experiment_path), dict(results.experiment), tuple(trials), tuple(results.events))


def resolve_trial(run: RunData, trial: str | int | None) -> TrialRecord:
    """A trial by id or index; ``None`` means the best final trial."""
    if trial is None:
        return best_trial(run)
    if isinstance(trial, bool) or not isinstance(trial, (str, int)):
        raise ConfigError(f"trial must be a trial id, an index or None (the best trial), got {describe(trial)}")
    if isinstance(trial, int):
        if not -len(run.trials) <= trial < len(run.trials):
            raise ConfigError(f"trial index must be in [0, {len(run.trials) - 1}], got {trial}")
        return run.trials[trial]
    return run.trial(trial)


def best_trial(run: RunData, metric: str | None = None, mode: str | None = None) -> TrialRecord:
    """The trial whose last reported ``metric`` is best (the experiment's metric and mode by default).

    The same rule as ``ResultGrid.get_best_result(scope="last")``: finite values only, first trial on ties.
    """
    metric = metric or run.metric
    mode = mode or run.mode
    if not metric or mode not in ("min", "max"):
        raise ConfigError(f"the best trial needs a metric and a mode ('min' or 'max'); this experiment has "
                          f"metric={metric!r}, mode={mode!r}: pass trial=... or metric and mode")
    sign = mode_sign(mode)
    scored = []
    for record in run.trials:
        value = finite_number(metric_value(record.final_row, metric))
        scored.append((record, None if value is None else sign * value))
    best = pick_best(scored)
    if best is None:
        raise ConfigError(f"no trial reported a finite {metric!r}; trials are {run.trial_ids}")
    return best


# -- segments: stretches of a trial between state replacements ---------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """Rows ``first_row..last_row`` (inclusive) of a trial, trained from one starting state.

    ``reason`` is None for the fresh start, else why the state was replaced ("exploit", "explore",
    "failure", "resume"); ``source_trial``/``source_checkpoint`` name the checkpoint it started
    from (None: from scratch).
    """

    trial_id: str
    first_row: int
    last_row: int
    start_iteration: int
    end_iteration: int
    reason: str | None
    source_trial: str | None
    source_checkpoint: str | None


def trial_segments(trial: TrialRecord) -> list[Segment]:
    """Split a trial's rows at every ``restored_from`` row (the first row after a restart)."""
    segments: list[Segment] = []
    starts = [i for i, row in enumerate(trial.rows) if i == 0 or row.get("restored_from")]
    for n, first in enumerate(starts):
        last = (starts[n + 1] - 1) if n + 1 < len(starts) else len(trial.rows) - 1
        source = trial.rows[first].get("restored_from") or {}
        start_iteration = int(source.get("iteration") or 0)
        segments.append(Segment(
            trial.trial_id, first, last, start_iteration, int(trial.rows[last].get("training_iteration", 0)),
            source.get("reason"), source.get("trial_id"), source.get("checkpoint")))
    return segments


def checkpoint_row(run: RunData, checkpoint: str) -> tuple[TrialRecord, int] | None:
    """The trial and row index that wrote ``checkpoint`` ("<trial_id>/<checkpoint dir>")."""
    return run.lineage.checkpoint_row(checkpoint)


# -- perturbations: exploits and explore-only restarts ------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class PerturbationRecord:
    """One perturbation from the event log: an exploit merged with its explore, or an explore-only restart.

    ``decision_iteration`` is None for an explore-only restart (its event names only the checkpoint's).
    """

    seq: int
    kind: str  # "exploit" (copy a donor) or "explore" (explore-only: perturb own config, keep own state)
    trial_id: str
    donor: str | None
    decision_iteration: int | None
    clone_iteration: int
    checkpoint: str | None
    old_config: dict[str, Any]
    new_config: dict[str, Any]
    changes: tuple[dict[str, Any], ...]


def perturbations(events: Sequence[dict[str, Any]]) -> list[PerturbationRecord]:
    """Each perturbation in ``events`` as one record, in event order."""
    merged: list[dict[str, Any]] = []
    pending: dict[str, dict[str, Any]] = {}
    for event in events:
        kind = event.get("event")
        if kind == EventKind.EXPLOIT:
            record = {"seq": event["seq"], "kind": EventKind.EXPLOIT.value, "trial_id": event["trial_id"],
                      "donor": event["donor"], "decision_iteration": int(event["target_iteration"]),
                      "clone_iteration": int(event["donor_iteration"]), "checkpoint": event["checkpoint"],
                      "old_config": event.get("old_config") or {}, "new_config": dict(event.get("donor_config") or {}),
                      "changes": ()}
            merged.append(record)
            pending[event["trial_id"]] = record
        elif kind == EventKind.EXPLORE:
            found = pending.pop(event["trial_id"], None) if event.get("donor") is not None else None
            if found is not None:
                record = found
            else:  # explore-only: the trial perturbs its own config and restarts from its own state
                record = {"seq": event["seq"], "kind": EventKind.EXPLORE.value, "trial_id": event["trial_id"],
                          "donor": None, "decision_iteration": None, "clone_iteration": int(event["iteration"]),
                          "checkpoint": None, "old_config": {}, "new_config": {}, "changes": ()}
                merged.append(record)
            record["new_config"] = dict(event.get("new_config") or {})
            record["changes"] = tuple(event.get("changes") or ())
            if record["kind"] == EventKind.EXPLORE:
                record["old_config"] = {c["param"]: c["old"] for c in record["changes"]}
    return [PerturbationRecord(**record) for record in merged]


@dataclasses.dataclass(frozen=True, slots=True)
class Jump:
    """One perturbation placed on the target trial's rows.

    ``before_row``: the target's last row before the jump (at ``decision_iteration``).
    ``clone``: (trial id, row index) of the checkpointed row whose state the target took.
    ``after_row``: the target's first row after the jump (None if it never ran again).
    """

    seq: int
    kind: str
    trial_id: str
    donor: str | None
    decision_iteration: int
    clone_iteration: int
    checkpoint: str
    before_row: int | None
    clone: tuple[str, int] | None
    after_row: int | None
    old_config: dict[str, Any]
    new_config: dict[str, Any]
    changes: tuple[dict[str, Any], ...]


def _last_row_at(trial: TrialRecord, iteration: int | None) -> int | None:
    if iteration is None:
        return None
    for index in range(len(trial.rows) - 1, -1, -1):
        if trial.rows[index].get("training_iteration") == iteration:
            return index
    return None


class RunLineage:
    """A run's lineage, computed once from its rows and event log and indexed (``RunData.lineage``).

    ``jumps`` (event order), ``jumps_of(trial_id)``, ``jump_after(trial_id, row)``, ``segments(trial_id)``,
    ``checkpoint_row(checkpoint)`` and ``edges`` (one per exploit).
    """

    def __init__(self, run: RunData) -> None:
        self._run = run
        self._segments = {t.trial_id: tuple(trial_segments(t)) for t in run.trials}
        self._checkpoints: dict[str, tuple[TrialRecord, int]] = {}
        for trial in run.trials:
            for index, row in enumerate(trial.rows):
                name = row.get("checkpoint_dir_name")
                if name:
                    self._checkpoints.setdefault(f"{run.dirname(trial.trial_id)}/{name}", (trial, index))
        self.perturbations: tuple[PerturbationRecord, ...] = tuple(perturbations(run.events))
        self.jumps: tuple[Jump, ...] = tuple(self._place_jumps())
        self._by_trial: dict[str, list[Jump]] = {}
        for jump in self.jumps:
            self._by_trial.setdefault(jump.trial_id, []).append(jump)
        self._after = {(j.trial_id, j.after_row): j for j in self.jumps if j.after_row is not None}
        self.edges: tuple[LineageEdge, ...] = tuple(
            LineageEdge(j.seq, j.donor, j.trial_id, j.clone_iteration, j.decision_iteration, j.checkpoint,
                        j.after_row is not None)
            for j in self.jumps if j.kind == EventKind.EXPLOIT and j.donor is not None)

    def segments(self, trial_id: str) -> tuple[Segment, ...]:
        return self._segments[trial_id]

    def checkpoint_row(self, checkpoint: str) -> tuple[TrialRecord, int] | None:
        owner, _, name = checkpoint.replace(os.sep, "/").partition("/")
        return self._checkpoints.get(f"{owner}/{name}")

    def jumps_of(self, trial_id: str) -> list[Jump]:
        return list(self._by_trial.get(trial_id, ()))

    def jump_after(self, trial_id: str, row: int) -> Jump | None:
        """The jump whose first row after it is ``row`` of ``trial_id``."""
        return self._after.get((trial_id, row))

    @property
    def decision_iterations(self) -> list[int]:
        return sorted({j.decision_iteration for j in self.jumps})

    def _place_jumps(self) -> list[Jump]:
        run = self._run
        restarts: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for trial in run.trials:
            restarts[trial.trial_id] = [(i, row["restored_from"]) for i, row in enumerate(trial.rows)
                                        if row.get("restored_from", {}) and
                                        row["restored_from"].get("reason") in PERTURBATION_REASONS]
        cursor = {tid: 0 for tid in restarts}
        found: list[Jump] = []
        for record in self.perturbations:
            tid = record.trial_id
            trial = run.trial(tid)
            after_row = None
            checkpoint = record.checkpoint
            candidates = restarts.get(tid, [])
            position = cursor.get(tid, 0)
            if position < len(candidates):
                row_index, source = candidates[position]
                matches = source.get("reason") == record.kind and (
                    checkpoint is None or source.get("checkpoint") == checkpoint)
                if matches:
                    after_row = row_index
                    cursor[tid] = position + 1
                    checkpoint = checkpoint or source.get("checkpoint")
            if checkpoint is None:  # an explore-only restart that never ran: its checkpoint is not recorded
                checkpoint = ""
            if after_row is not None:
                before_row: int | None = after_row - 1 if after_row > 0 else None
            else:
                before_row = _last_row_at(trial, record.decision_iteration)
            decision_iteration = record.decision_iteration
            if decision_iteration is None:
                decision_iteration = int(trial.rows[before_row]["training_iteration"]) if before_row is not None \
                    else record.clone_iteration
            clone = self.checkpoint_row(checkpoint) if checkpoint else None
            found.append(Jump(
                seq=record.seq, kind=record.kind, trial_id=tid, donor=record.donor,
                decision_iteration=decision_iteration, clone_iteration=record.clone_iteration, checkpoint=checkpoint,
                before_row=before_row, clone=(clone[0].trial_id, clone[1]) if clone else None, after_row=after_row,
                old_config=dict(record.old_config), new_config=dict(record.new_config),
                changes=tuple(record.changes)))
        return found


def jumps(run: RunData) -> list[Jump]:
    """Every perturbation in the event log, tied to the rows before, at and after it (event order)."""
    return list(run.lineage.jumps)


def decision_iterations(run: RunData) -> list[int]:
    """The iterations at which the scheduler perturbed some trial (from the event log), ascending."""
    return run.lineage.decision_iterations


# -- exploit edges and ancestry ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class LineageEdge:
    """An exploit: ``target`` took ``donor``'s checkpoint of ``donor_iteration`` at ``target_iteration``."""

    seq: int
    donor: str
    target: str
    donor_iteration: int
    target_iteration: int
    checkpoint: str
    applied: bool


@dataclasses.dataclass(frozen=True, slots=True)
class AncestrySpan:
    """Part of a trial's history: ``trial_id`` trained from ``start_iteration`` to ``end_iteration``."""

    trial_id: str
    start_iteration: int
    end_iteration: int
    first_row: int
    last_row: int
    entered_by: int | None  # seq of the exploit event that led into this span (None: the original start)


def lineage_edges(run: RunData) -> list[LineageEdge]:
    """One edge per exploit event, donor to target, in event order."""
    return list(run.lineage.edges)


def ancestry(run: RunData, trial: str | int | None = None) -> list[AncestrySpan]:
    """The chain of trained stretches that produced ``trial``'s final state (oldest first).

    Followed backwards through the checkpoint each restart actually loaded (``restored_from``),
    so it is exact even when a donor's checkpoint predates its score.
    """
    record = resolve_trial(run, trial)
    index = run.lineage
    spans: list[AncestrySpan] = []
    current: TrialRecord | None = record
    row_limit = len(record.rows) - 1
    seen: set[tuple[str, int]] = set()
    while current is not None and row_limit >= 0:
        segment = next(s for s in index.segments(current.trial_id) if s.first_row <= row_limit <= s.last_row)
        key = (current.trial_id, segment.first_row)
        if key in seen:  # pragma: no cover - a damaged log; stop rather than loop
            break
        seen.add(key)
        entered = index.jump_after(current.trial_id, segment.first_row)
        spans.append(AncestrySpan(current.trial_id, segment.start_iteration,
                                  int(current.rows[row_limit]["training_iteration"]), segment.first_row, row_limit,
                                  entered.seq if entered is not None else None))
        if segment.source_checkpoint is None:
            break
        clone = index.checkpoint_row(segment.source_checkpoint)
        if clone is None:
            break
        current, row_limit = clone
    spans.reverse()
    return spans


# -- hyperparameter schedules ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """The hyperparameters a trial's final state was trained with, iteration by iteration.

    ``iterations[i]`` was trained with ``values[param][i]``, by trial ``owners[i]``; ``switches``
    are the iterations where the ancestry moved to another trial or restarted (exploit points).
    """

    trial_id: str
    params: tuple[str, ...]
    iterations: tuple[int, ...]
    owners: tuple[str, ...]
    values: dict[str, tuple[Any, ...]]
    switches: tuple[tuple[int, int | None], ...]  # (first iteration of the new span, exploit seq)
    span_starts: tuple[int, ...]  # positions in ``iterations`` where each ancestry span starts


def hyperparameter_names(run: RunData, params: Sequence[str] | None = None) -> list[str]:
    """``params`` checked against the run's hyperparameters; None: the ones its scheduler explores
    (:attr:`RunData.tuned_params`), or all of them when it names none."""
    available = run.param_columns or sorted(
        {k for t in run.trials for r in t.rows[:1] for k, v in (r.get("config") or {}).items()
         if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if params is None:
        return run.tuned_params if run.param_columns else available
    if isinstance(params, str) or not isinstance(params, Sequence):
        raise ConfigError(f"params must be a list of hyperparameter names, got {describe(params)}")
    unknown = [p for p in params if p not in available]
    if unknown:
        raise ConfigError(f"params {unknown} are not hyperparameters of this experiment; it has {available}")
    return list(params)


def hyperparameter_schedule(run: RunData, trial: str | int | None = None,
                            params: Sequence[str] | None = None) -> Schedule:
    """The best (or given) trial's stitched schedule: the config each iteration of its ancestry ran with."""
    params = hyperparameter_names(run, params)
    spans = ancestry(run, trial)
    iterations: list[int] = []
    owners: list[str] = []
    values: dict[str, list[Any]] = {p: [] for p in params}
    switches: list[tuple[int, int | None]] = []
    span_starts: list[int] = []
    for n, span in enumerate(spans):
        rows = run.trial(span.trial_id).rows[span.first_row:span.last_row + 1]
        if rows:
            span_starts.append(len(iterations))
        if n > 0 and rows:
            switches.append((int(rows[0]["training_iteration"]), span.entered_by))
        for row in rows:
            iterations.append(int(row["training_iteration"]))
            owners.append(span.trial_id)
            for p in params:
                values[p].append(get_path(row.get("config") or {}, p))
    target = resolve_trial(run, trial).trial_id
    return Schedule(target, tuple(params), tuple(iterations), tuple(owners),
                    {p: tuple(v) for p, v in values.items()}, tuple(switches), tuple(span_starts))
