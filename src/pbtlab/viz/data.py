"""Plot data, computed from an experiment's recorded rows and events (no matplotlib, no pandas).

Every function here is plain and tested; the drawing modules only draw what these return.
Nothing is guessed from ``iteration % perturbation_interval``: a jump is an exploit (or
explore-only restart) recorded in ``events.jsonl``, tied to the first row the trial reported
after it (``restored_from``) and to the checkpointed row it was cloned from.

    >>> from pbtlab.examples.runs import run_toy_pbt
    >>> run = run_data(run_toy_pbt(population=2, seed=0, storage_path=getfixture("tmp_path")))
    >>> edges = lineage_edges(run)
    >>> len(edges) == len(run.events_of("exploit"))
    True
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pbtlab.errors import ConfigError, describe

#: Restart reasons recorded in ``restored_from/reason``.
PERTURBATION_REASONS = ("exploit", "explore")


# -- loading ------------------------------------------------------------------------------------------
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


@dataclasses.dataclass(frozen=True, slots=True)
class RunData:
    """An experiment as plain data: settings, trials (in trial order) and the event log."""

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
    def trial_ids(self) -> list[str]:
        return [t.trial_id for t in self.trials]

    def trial(self, trial_id: str) -> TrialRecord:
        for record in self.trials:
            if record.trial_id == trial_id:
                return record
        raise ConfigError(f"trial must be one of {self.trial_ids} (or its index), got {trial_id!r}")

    def events_of(self, *kinds: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") in kinds]


def run_data(results: Any) -> RunData:
    """Read a live ``ResultGrid`` or an experiment directory path into ``RunData``.

        >>> run_data(42)
        Traceback (most recent call last):
        ...
        pbtlab.errors.ConfigError: results must be a ResultGrid or an experiment directory path, got 42 (int)
    """
    if isinstance(results, RunData):
        return results
    if isinstance(results, (str, os.PathLike)) or type(results).__module__.startswith("ray."):  # Ray's ResultGrid
        from pbtlab.analysis import load_results

        results = load_results(results)
    if not (hasattr(results, "events") and hasattr(results, "experiment") and hasattr(results, "__iter__")):
        raise ConfigError(f"results must be a ResultGrid or an experiment directory path, got {describe(results)}")
    added = {e["trial_id"]: e.get("config") for e in results.events if e.get("event") == "trial_add"}
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
    """The trial whose last reported ``metric`` is best (the experiment's metric and mode by default)."""
    metric = metric or run.metric
    mode = mode or run.mode
    if not metric or mode not in ("min", "max"):
        raise ConfigError(f"the best trial needs a metric and a mode ('min' or 'max'); this experiment has "
                          f"metric={metric!r}, mode={mode!r}: pass trial=... or metric and mode")
    scored: list[tuple[TrialRecord, float]] = []
    for record in run.trials:
        value = _number(record.final_row.get(metric))
        if value is not None:
            scored.append((record, value))
    if not scored:
        raise ConfigError(f"no trial reported a finite {metric!r}; trials are {run.trial_ids}")
    sign = 1.0 if mode == "max" else -1.0
    return max(scored, key=lambda item: (sign * item[1], -item[0].index))[0]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- segments: stretches of a trial between state replacements ---------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """Rows ``first_row..last_row`` (inclusive) of a trial, trained from one starting state.

    ``reason`` is None for the fresh start, else why the state was replaced ("exploit", "explore",
    "failure", "resume"); ``source_trial``/``source_checkpoint``/``source_iteration`` name the
    checkpoint it started from (None: from scratch).
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
    owner, _, name = checkpoint.replace(os.sep, "/").partition("/")
    try:
        record = run.trial(owner)
    except ConfigError:
        return None
    for index, row in enumerate(record.rows):
        if row.get("checkpoint_dir_name") == name:
            return record, index
    return None


# -- jumps: exploits and explore-only restarts -------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Jump:
    """One perturbation from the event log, placed on the target trial's rows.

    ``before_row``: the target's last row before the jump (at ``decision_iteration``).
    ``clone``: (trial id, row index) of the checkpointed row whose state the target took.
    ``after_row``: the target's first row after the jump (None if it never ran again).
    """

    seq: int
    kind: str  # "exploit" (copy a donor) or "explore" (explore-only: perturb own config, keep own state)
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


def perturbation_events(run: RunData) -> list[dict[str, Any]]:
    """Each perturbation as one record: an exploit merged with its explore, or an explore-only restart."""
    merged: list[dict[str, Any]] = []
    pending: dict[str, dict[str, Any]] = {}
    for event in run.events:
        kind = event.get("event")
        if kind == "exploit":
            record = {"seq": event["seq"], "kind": "exploit", "trial_id": event["trial_id"], "donor": event["donor"],
                      "decision_iteration": int(event["target_iteration"]),
                      "clone_iteration": int(event["donor_iteration"]), "checkpoint": event["checkpoint"],
                      "old_config": event.get("old_config") or {}, "new_config": dict(event.get("donor_config") or {}),
                      "changes": ()}
            merged.append(record)
            pending[event["trial_id"]] = record
        elif kind == "explore":
            found = pending.pop(event["trial_id"], None) if event.get("donor") is not None else None
            if found is not None:
                record = found
            else:  # explore-only: the trial perturbs its own config and restarts from its own state
                record = {"seq": event["seq"], "kind": "explore", "trial_id": event["trial_id"], "donor": None,
                          "decision_iteration": None, "clone_iteration": int(event["iteration"]),
                          "checkpoint": None, "old_config": {}, "new_config": {}, "changes": ()}
                merged.append(record)
            record["new_config"] = dict(event.get("new_config") or {})
            record["changes"] = tuple(event.get("changes") or ())
            if record["kind"] == "explore":
                record["old_config"] = {c["param"]: c["old"] for c in record["changes"]}
    return merged


def jumps(run: RunData) -> list[Jump]:
    """Every perturbation in the event log, tied to the rows before, at and after it (event order)."""
    restarts: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for trial in run.trials:
        restarts[trial.trial_id] = [(i, row["restored_from"]) for i, row in enumerate(trial.rows)
                                    if row.get("restored_from", {}) and
                                    row["restored_from"].get("reason") in PERTURBATION_REASONS]
    cursor = {tid: 0 for tid in restarts}
    found: list[Jump] = []
    for record in perturbation_events(run):
        tid = record["trial_id"]
        trial = run.trial(tid)
        after_row = None
        checkpoint = record["checkpoint"]
        candidates = restarts.get(tid, [])
        position = cursor.get(tid, 0)
        if position < len(candidates):
            row_index, source = candidates[position]
            matches = source.get("reason") == record["kind"] and (
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
            before_row = _last_row_at(trial, record["decision_iteration"])
        decision_iteration = record["decision_iteration"]
        if decision_iteration is None:
            decision_iteration = int(trial.rows[before_row]["training_iteration"]) if before_row is not None \
                else record["clone_iteration"]
        clone = checkpoint_row(run, checkpoint) if checkpoint else None
        found.append(Jump(
            seq=record["seq"], kind=record["kind"], trial_id=tid, donor=record["donor"],
            decision_iteration=decision_iteration, clone_iteration=record["clone_iteration"], checkpoint=checkpoint,
            before_row=before_row, clone=(clone[0].trial_id, clone[1]) if clone else None, after_row=after_row,
            old_config=dict(record["old_config"]), new_config=dict(record["new_config"]),
            changes=tuple(record["changes"])))
    return found


def _last_row_at(trial: TrialRecord, iteration: int | None) -> int | None:
    if iteration is None:
        return None
    for index in range(len(trial.rows) - 1, -1, -1):
        if trial.rows[index].get("training_iteration") == iteration:
            return index
    return None


def decision_iterations(run: RunData) -> list[int]:
    """The iterations at which the scheduler perturbed some trial (from the event log), ascending."""
    return sorted({j.decision_iteration for j in jumps(run)})


# -- parameter trajectories (the tutorial's left panel and animation) ---------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Arrow:
    """A jump drawn in parameter space: from the point before it to the cloned point."""

    seq: int
    kind: str
    trial_id: str
    donor: str | None
    decision_iteration: int
    clone_iteration: int
    start: tuple[float, float]
    end: tuple[float, float]
    point_index: int | None  # index in the trajectory of the first point after the jump


@dataclasses.dataclass(frozen=True, slots=True)
class Trajectory:
    """A trial's points in parameter space; point 0 is the initial point when one is given.

    ``pieces`` are index ranges of points trained continuously (each starts at its cloned point,
    given in ``piece_starts``), so lines never connect across a jump.
    """

    trial_id: str
    iterations: tuple[int, ...]
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    pieces: tuple[tuple[int, int], ...]
    piece_starts: tuple[tuple[float, float] | None, ...]
    labelled: tuple[int, ...]  # point indices that get an iteration label


@dataclasses.dataclass(frozen=True, slots=True)
class ParameterHistory:
    x: str
    y: str
    trajectories: tuple[Trajectory, ...]
    arrows: tuple[Arrow, ...]


def parameter_history(run: RunData, x: str = "theta0", y: str = "theta1",
                      initial_point: Sequence[float] | None = None,
                      label_every: int | None = None) -> ParameterHistory:
    """Trajectories of two reported values and the recorded jumps between them.

    Iteration labels go on each trial's points at the recorded decision iterations (and at 0);
    a run with no decisions (grid search) is labelled every ``label_every`` iterations if given.
    """
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be the name of a reported value (str), got {describe(value)}")
        missing = [t.trial_id for t in run.trials if t.rows and value not in t.rows[0]]
        if missing:
            reported = sorted(k for k in run.trials[0].rows[0] if not isinstance(run.trials[0].rows[0][k], dict))
            raise ConfigError(f"{name}={value!r} is not reported by trial(s) {missing}; they report {reported}")
    if label_every is not None and (isinstance(label_every, bool) or not isinstance(label_every, int)
                                    or label_every < 1):
        raise ConfigError(f"perturbation_interval must be a whole number >= 1 or None, got {describe(label_every)}")
    all_jumps = jumps(run)
    decisions = {j.decision_iteration for j in all_jumps}
    offset = 1 if initial_point is not None else 0
    trajectories = []
    for trial in run.trials:
        xs = [float(r[x]) for r in trial.rows]
        ys = [float(r[y]) for r in trial.rows]
        iterations = [int(r.get("training_iteration", i + 1)) for i, r in enumerate(trial.rows)]
        if initial_point is not None:
            xs.insert(0, float(initial_point[0]))
            ys.insert(0, float(initial_point[1]))
            iterations.insert(0, 0)
        pieces: list[tuple[int, int]] = []
        starts: list[tuple[float, float] | None] = []
        for segment in trial_segments(trial):
            first, last = segment.first_row + offset, segment.last_row + offset
            if segment.reason is None:
                pieces.append((0, last))
                starts.append(None)
                continue
            clone = checkpoint_row(run, segment.source_checkpoint) if segment.source_checkpoint else None
            if clone is not None:
                row = clone[0].rows[clone[1]]
                starts.append((float(row[x]), float(row[y])))
            elif initial_point is not None and segment.source_checkpoint is None:
                starts.append((float(initial_point[0]), float(initial_point[1])))
            else:
                starts.append(None)
            pieces.append((first, last))
        if not trial.rows:
            pieces, starts = ([(0, 0)], [None]) if initial_point is not None else ([], [])
        if decisions:
            labelled = [i for i, it in enumerate(iterations) if it in decisions or (it == 0 and offset)]
        elif label_every:
            labelled = [i for i, it in enumerate(iterations) if it % label_every == 0]
        else:
            labelled = [0] if offset else []
        trajectories.append(Trajectory(trial.trial_id, tuple(iterations), tuple(xs), tuple(ys), tuple(pieces),
                                       tuple(starts), tuple(labelled)))
    arrows = []
    for jump in all_jumps:
        if jump.before_row is None or jump.clone is None:
            continue
        target = run.trial(jump.trial_id)
        before = target.rows[jump.before_row]
        clone_row = run.trial(jump.clone[0]).rows[jump.clone[1]]
        arrows.append(Arrow(
            jump.seq, jump.kind, jump.trial_id, jump.donor, jump.decision_iteration, jump.clone_iteration,
            (float(before[x]), float(before[y])), (float(clone_row[x]), float(clone_row[y])),
            None if jump.after_row is None else jump.after_row + offset))
    return ParameterHistory(x, y, tuple(trajectories), tuple(arrows))


# -- metric history (the tutorial's right panel) -----------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class MetricLine:
    """A trial's metric against ``training_iteration``: continuous pieces, and dashed jump connectors."""

    trial_id: str
    pieces: tuple[tuple[tuple[int, ...], tuple[float, ...]], ...]
    jumps: tuple[tuple[tuple[int, float], tuple[int, float]], ...]


def metric_history(run: RunData, metric: str) -> list[MetricLine]:
    """Each trial's ``metric`` against ``training_iteration`` (not the row number).

    After a jump the piece starts at the cloned checkpoint's (iteration, value), so the line shows
    what the trial continued from; the jump itself is a connector from the trial's own last value.
    """
    if not isinstance(metric, str):
        raise ConfigError(f"metric must be the name of a reported value (str), got {describe(metric)}")
    reported = {k for t in run.trials for r in t.rows[:1] for k in r}
    if metric not in reported:
        shown = sorted(k for t in run.trials[:1] for r in t.rows[:1] for k in r if not isinstance(r[k], dict))
        raise ConfigError(f"metric {metric!r} is not reported by this experiment; it reports {shown}")
    lines = []
    for trial in run.trials:
        pieces, connectors = [], []
        for segment in trial_segments(trial):
            rows = trial.rows[segment.first_row:segment.last_row + 1]
            its = [int(r["training_iteration"]) for r in rows if _number(r.get(metric)) is not None]
            values = [float(r[metric]) for r in rows if _number(r.get(metric)) is not None]
            if segment.reason is not None and segment.source_checkpoint:
                clone = checkpoint_row(run, segment.source_checkpoint)
                if clone is not None:
                    clone_value = _number(clone[0].rows[clone[1]].get(metric))
                    if clone_value is not None:
                        start = (int(clone[0].rows[clone[1]]["training_iteration"]), clone_value)
                        its.insert(0, start[0])
                        values.insert(0, start[1])
                        before_value = _number(trial.rows[segment.first_row - 1].get(metric)) \
                            if segment.first_row > 0 else None
                        if before_value is not None:
                            before_it = int(trial.rows[segment.first_row - 1]["training_iteration"])
                            connectors.append(((before_it, before_value), start))
            if its:
                pieces.append((tuple(its), tuple(values)))
        lines.append(MetricLine(trial.trial_id, tuple(pieces), tuple(connectors)))
    return lines


# -- lineage -------------------------------------------------------------------------------------------------
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
    """Part of the best trial's history: ``trial_id`` trained from ``start_iteration`` to ``end_iteration``."""

    trial_id: str
    start_iteration: int
    end_iteration: int
    first_row: int
    last_row: int
    entered_by: int | None  # seq of the exploit event that led into this span (None: the original start)


@dataclasses.dataclass(frozen=True, slots=True)
class Lineage:
    trial_ids: tuple[str, ...]
    segments: tuple[Segment, ...]
    edges: tuple[LineageEdge, ...]
    best_trial: str | None
    ancestry: tuple[AncestrySpan, ...]  # oldest first

    @property
    def ancestry_edges(self) -> tuple[int, ...]:
        return tuple(span.entered_by for span in self.ancestry if span.entered_by is not None)


def lineage_edges(run: RunData) -> list[LineageEdge]:
    """One edge per exploit event, donor to target, in event order."""
    return [LineageEdge(j.seq, j.donor, j.trial_id, j.clone_iteration, j.decision_iteration, j.checkpoint,
                        j.after_row is not None)
            for j in jumps(run) if j.kind == "exploit" and j.donor is not None]


def ancestry(run: RunData, trial: str | int | None = None) -> list[AncestrySpan]:
    """The chain of trained stretches that produced ``trial``'s final state (oldest first).

    Followed backwards through the checkpoint each restart actually loaded (``restored_from``),
    so it is exact even when a donor's checkpoint predates its score.
    """
    record = resolve_trial(run, trial)
    exploit_seq = {(j.trial_id, j.after_row): j.seq for j in jumps(run) if j.after_row is not None}
    spans: list[AncestrySpan] = []
    current: TrialRecord | None = record
    row_limit = len(record.rows) - 1
    seen: set[tuple[str, int]] = set()
    while current is not None and row_limit >= 0:
        segment = next(s for s in trial_segments(current) if s.first_row <= row_limit <= s.last_row)
        key = (current.trial_id, segment.first_row)
        if key in seen:  # pragma: no cover - a damaged log; stop rather than loop
            break
        seen.add(key)
        spans.append(AncestrySpan(current.trial_id, segment.start_iteration,
                                  int(current.rows[row_limit]["training_iteration"]), segment.first_row, row_limit,
                                  exploit_seq.get((current.trial_id, segment.first_row))))
        if segment.source_checkpoint is None:
            break
        clone = checkpoint_row(run, segment.source_checkpoint)
        if clone is None:
            break
        current, row_limit = clone
    spans.reverse()
    return spans


def lineage(run: RunData, trial: str | int | None = None) -> Lineage:
    """Everything the family-tree plot needs: per-trial segments, exploit edges, the best trial's ancestry."""
    try:
        best = resolve_trial(run, trial).trial_id
    except ConfigError:
        if trial is not None:
            raise
        best = None
    segments = tuple(s for t in run.trials for s in trial_segments(t))
    return Lineage(tuple(run.trial_ids), segments, tuple(lineage_edges(run)), best,
                   tuple(ancestry(run, best)) if best is not None else ())


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


def _config_value(config: Mapping[str, Any], param: str) -> Any:
    value: Any = config
    for part in param.split("/"):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def hyperparameter_schedule(run: RunData, trial: str | int | None = None,
                            params: Sequence[str] | None = None) -> Schedule:
    """The best (or given) trial's stitched schedule: the config each iteration of its ancestry ran with."""
    params = _params(run, params)
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
                values[p].append(_config_value(row.get("config") or {}, p))
    target = resolve_trial(run, trial).trial_id
    return Schedule(target, tuple(params), tuple(iterations), tuple(owners),
                    {p: tuple(v) for p, v in values.items()}, tuple(switches), tuple(span_starts))


def _params(run: RunData, params: Sequence[str] | None) -> list[str]:
    available = run.param_columns or sorted(
        {k for t in run.trials for r in t.rows[:1] for k, v in (r.get("config") or {}).items()
         if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if params is None:
        return available
    if isinstance(params, str) or not isinstance(params, Sequence):
        raise ConfigError(f"params must be a list of hyperparameter names, got {describe(params)}")
    unknown = [p for p in params if p not in available]
    if unknown:
        raise ConfigError(f"params {unknown} are not hyperparameters of this experiment; it has {available}")
    return list(params)


@dataclasses.dataclass(frozen=True, slots=True)
class PopulationSeries:
    """One trial's value of one hyperparameter over iterations, split at restarts."""

    trial_id: str
    param: str
    pieces: tuple[tuple[tuple[int, ...], tuple[Any, ...]], ...]
    perturbations: tuple[tuple[int, Any, Any], ...]  # (first iteration with the new value, old, new) per applied perturbation


def population_hyperparameters(run: RunData, params: Sequence[str] | None = None) -> dict[str, list[PopulationSeries]]:
    """Every trial's hyperparameters over time (from each row's config), per parameter."""
    params = _params(run, params)
    by_trial: dict[str, list[Jump]] = {}
    for jump in jumps(run):
        by_trial.setdefault(jump.trial_id, []).append(jump)
    out: dict[str, list[PopulationSeries]] = {p: [] for p in params}
    for trial in run.trials:
        for p in params:
            pieces = []
            for segment in trial_segments(trial):
                rows = trial.rows[segment.first_row:segment.last_row + 1]
                pieces.append((tuple(int(r["training_iteration"]) for r in rows),
                               tuple(_config_value(r.get("config") or {}, p) for r in rows)))
            marks = [(int(trial.rows[j.after_row]["training_iteration"]), _config_value(j.old_config, p),
                      _config_value(j.new_config, p))
                     for j in by_trial.get(trial.trial_id, []) if j.after_row is not None]
            out[p].append(PopulationSeries(trial.trial_id, p, tuple(pieces), tuple(marks)))
    return out


# -- labels ---------------------------------------------------------------------------------------------------
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def initial_label(run: RunData, trial: TrialRecord, params: Sequence[str] | None = None) -> str:
    """A legend label from a trial's starting hyperparameters, e.g. ``"lr=0.05, h0=0, h1=1"``."""
    names = list(params) if params is not None else run.param_columns
    parts = [f"{p}={_short(_config_value(trial.initial_config, p))}" for p in names]
    return ", ".join(parts) or trial.trial_id


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def label_mismatches(run: RunData, labels: Sequence[str]) -> list[str]:
    """Warnings for labels whose numbers match another trial's starting config but not their own.

    ``colors`` and ``labels`` are in trial order; the tutorial's ``["h = [1, 0]", "h = [0, 1]"]``
    is the other way round (trial 0 starts at h0=0, h1=1), which this reports.
    """
    def matches(label: str, trial: TrialRecord) -> bool:
        numbers = [float(n) for n in _NUMBER.findall(label)]
        values = [_number(_config_value(trial.initial_config, p)) for p in run.param_columns]
        if len(numbers) < 2 or any(v is None for v in values):
            return False
        return any(all(math.isclose(numbers[k], values[start + k], rel_tol=1e-6, abs_tol=1e-9)  # type: ignore[arg-type]
                       for k in range(len(numbers)))
                   for start in range(len(values) - len(numbers) + 1))

    problems = []
    for index, label in enumerate(labels[:len(run.trials)]):
        label = str(label)
        own = run.trials[index]
        if matches(label, own):
            continue
        others = [t for t in run.trials if t.index != index and matches(label, t)]
        if others:
            problems.append(
                f"labels[{index}]={label!r} describes trial {others[0].index} ({initial_label(run, others[0])}), "
                f"but labels are in trial order and trial {index} started with {initial_label(run, own)}")
    return problems


def final_table(run: RunData) -> list[dict[str, Any]]:
    """One row per trial: id, status, last iteration, final hyperparameters and last metric value."""
    table = []
    for trial in run.trials:
        row = trial.final_row
        entry: dict[str, Any] = {"trial_id": trial.trial_id, "status": trial.status,
                                 "iterations": row.get("training_iteration", 0)}
        for p in run.param_columns:
            entry[p] = _config_value(row.get("config") or trial.initial_config, p)
        if run.metric:
            entry[run.metric] = row.get(run.metric)
        table.append(entry)
    return table
