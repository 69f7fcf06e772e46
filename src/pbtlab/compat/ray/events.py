"""A rebuilt Ray run's history as pbtlab's event records (``pbtlab.rundir.records``), in time order.

Each record is built with the schema's class, so a Ray run's ``events.jsonl``-style log has exactly the fields a
pbtlab run's has; where Ray kept no value (a checkpoint it deleted, a score it never logged) the field says None
and a ``data_gap`` event says why.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pbtlab.compat.ray.files import POLICY_LOG, read_text, session_time
from pbtlab.compat.ray.reconstruction import (
    DEFAULT_FACTORS,
    PolicyExploit,
    RayTrial,
    explore_op,
    find_source_row,
    flat_keys,
    note_missing_rows,
    row_at,
    same_config,
    stopped,
)
from pbtlab.nested import get_path
from pbtlab.rundir.records import (
    DataGap,
    Event,
    ExperimentEnd,
    ExperimentResume,
    ExperimentStart,
    Explore,
    Exploit,
    TrialAdd,
    TrialComplete,
    TrialErrored,
    TrialRestore,
    TrialStart,
)

__all__ = ["build_events", "error_event"]

#: An event waiting for its place in time: its class and fields (``seq`` and ``time`` come when it is placed).
Pending = tuple[type[Event], dict[str, Any]]


def build_events(folder: str, trials: Sequence[RayTrial], exploits: Sequence[PolicyExploit],
            names: dict[tuple[str, int], str | None], sign: float, metric: str | None, state: Mapping[str, Any],
            state_files: Sequence[str], settings: Mapping[str, Any],
            gaps: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    """The event log, and ``restored_from`` per (trial, row)."""
    by_id = {t.trial_id: t for t in trials}
    # the newest state file holds the start of the newest session (after Tuner.restore): take the earliest
    first_rows = [float(t.rows[0]["timestamp"]) for t in trials if t.rows and t.rows[0].get("timestamp")]
    starts = [float((state.get("stats") or {}).get("start_time") or 0.0), *first_rows]
    first_session = session_time(state_files[0]) if state_files else None
    start = min([s for s in [*starts, first_session or 0.0] if s > 0] or [0.0])
    factors = settings.get("perturbation_factors") or DEFAULT_FACTORS
    ops_known = settings.get("scheduler") != "PB2"  # PB2 picks values with a model: Ray logs no operation
    restored: dict[tuple[str, int], dict[str, Any]] = {}
    timed: list[tuple[float, int, list[Pending]]] = []  # (time, order, events that stay together)

    def stamp(trial: RayTrial, number: int | None) -> float:
        if number is None or not trial.rows:
            return start
        return float(trial.rows[max(0, min(number, len(trial.rows) - 1))].get("timestamp") or start)

    def score(trial: RayTrial, number: int | None) -> float:
        if number is None or metric is None:
            return math.nan
        try:
            return sign * float(trial.rows[number][metric])
        except (KeyError, TypeError, ValueError):
            return math.nan

    def checkpoint_of(trial: RayTrial, number: int | None) -> str | None:
        if number is None:
            return None
        name = names.get((trial.trial_id, number))
        return f"{trial.trial_id}/{name}" if name else None

    # exploits: exploit, explore, trial_restore, trial_start (in the policy log's order)
    exploit_rows = {(e.target, e.after_row) for e in exploits if e.after_row is not None}
    last_time = start
    for order, exploit in enumerate(exploits):
        target, donor = by_id[exploit.target], by_id[exploit.donor]
        if exploit.after_row is not None:
            source = find_source_row(donor, target, exploit.after_row)
        else:  # the clone left no row: Ray's logged donor iteration, as of the decision
            source = row_at(donor, exploit.ray_donor_iteration, stamp(target, exploit.before_row))
        decision = exploit.before_row
        when = max(last_time, stamp(target, decision))
        last_time = when
        old_config = target.rows[decision].get("config") if decision is not None else None
        donor_iteration = int(target.rows[exploit.after_row]["training_iteration"]) - 1 \
            if exploit.after_row is not None else exploit.ray_donor_iteration
        checkpoint = checkpoint_of(donor, source)
        target_iteration = int(target.rows[decision]["training_iteration"]) if decision is not None \
            else exploit.ray_target_iteration
        changes = []
        for key in flat_keys(exploit.new_config):
            old, new = get_path(exploit.donor_config, key), get_path(exploit.new_config, key)
            if old != new:
                op = explore_op(old, new, factors) if ops_known else None
                changes.append({"param": key, "old": old, "op": op, "new": new})
        group: list[Pending] = [
            (Exploit, {"trial_id": target.trial_id, "donor": donor.trial_id,
                       "target_iteration": target_iteration, "donor_iteration": donor_iteration,
                       "checkpoint": checkpoint, "target_score": score(target, decision),
                       "donor_score": score(donor, source), "old_config": old_config,
                       "donor_config": exploit.donor_config, "target_tag": exploit.target_tag,
                       "donor_tag": exploit.donor_tag, "time_attr": settings.get("time_attr"), "time_value": None,
                       "policy_log": exploit.source, "policy_log_line": exploit.line}),
            (Explore, {"trial_id": target.trial_id, "donor": donor.trial_id, "iteration": donor_iteration,
                       "target_iteration": target_iteration, "changes": changes, "new_config": exploit.new_config}),
        ]
        if exploit.after_row is not None:
            restored[(target.trial_id, exploit.after_row)] = {"trial_id": donor.trial_id, "checkpoint": checkpoint,
                                                              "iteration": donor_iteration, "reason": "exploit"}
            if checkpoint is not None:
                group.append((TrialRestore, {"trial_id": target.trial_id, "checkpoint": checkpoint,
                                             "from_trial": donor.trial_id, "iteration": donor_iteration,
                                             "reason": "exploit"}))
            group.append((TrialStart, {"trial_id": target.trial_id, "config": exploit.new_config,
                                       "iteration": donor_iteration, "checkpoint": checkpoint, "reason": "exploit"}))
        timed.append((when, 2, group))

    for trial in trials:
        rows = trial.rows
        timed.append((start, 0, [(TrialAdd, {"trial_id": trial.trial_id, "config": trial.initial_config,
                                              "tag": trial.tag.split("@perturbed")[0]})]))
        if rows:
            timed.append((stamp(trial, 0), 1, [(TrialStart, {"trial_id": trial.trial_id,
                                                             "config": rows[0].get("config") or trial.initial_config,
                                                             "iteration": 0, "checkpoint": None, "reason": None})]))
        failures = int(trial.meta.get("num_failures") or 0)
        for number in range(1, len(rows)):
            row, previous = rows[number], rows[number - 1]
            iteration, before = int(row.get("training_iteration", 0)), int(previous.get("training_iteration", 0))
            if (trial.trial_id, number) in exploit_rows:
                continue
            if row.get("iterations_since_restore") != 1:
                if iteration != before + 1:
                    note_missing_rows(trial, before, iteration, gaps)
                continue
            if iteration == before + 1:  # paused and continued from its own latest state, unless the config changed
                if number not in trial.derived_rows and number - 1 not in trial.derived_rows and \
                        not same_config(row.get("config"), previous.get("config")):
                    gaps.append({"trial_id": trial.trial_id, "what": "exploit not logged",
                                 "message": f"trial {trial.trial_id} restarted at iteration {iteration} with a new "
                                            f"config, but no policy log row names it (the policy log is partial)"})
                continue
            if iteration > before + 1:
                note_missing_rows(trial, before, iteration, gaps)
                continue
            resumed_at = iteration - 1
            if number not in trial.derived_rows and number - 1 not in trial.derived_rows and \
                    not same_config(row.get("config"), previous.get("config")):  # another trial's state: an exploit
                gaps.append({"trial_id": trial.trial_id, "what": "exploit not logged",
                             "message": f"trial {trial.trial_id} restarted from a state of iteration {resumed_at} "
                                        "with a new config, but no policy log row names the donor (the policy log is "
                                        "partial)"})
                restored[(trial.trial_id, number)] = {"trial_id": None, "checkpoint": None, "iteration": resumed_at,
                                                      "reason": "exploit"}
                timed.append((stamp(trial, number), 1, [(TrialStart, {
                    "trial_id": trial.trial_id, "config": row.get("config") or {},
                    "iteration": resumed_at, "checkpoint": None, "reason": "exploit"})]))
                continue
            reason = "failure" if failures else "resume"
            own = next((n for n in range(number - 1, -1, -1) if rows[n].get("training_iteration") == resumed_at), None)
            checkpoint = checkpoint_of(trial, own) if resumed_at > 0 else None
            if resumed_at > 0 and checkpoint is None and own is not None:
                names[(trial.trial_id, own)] = f"checkpoint of iteration {resumed_at}"
                checkpoint = checkpoint_of(trial, own)
            restored[(trial.trial_id, number)] = {"trial_id": trial.trial_id, "checkpoint": checkpoint,
                                                  "iteration": resumed_at, "reason": reason}
            group = []
            if checkpoint is not None:
                group.append((TrialRestore, {"trial_id": trial.trial_id, "checkpoint": checkpoint,
                                             "from_trial": trial.trial_id, "iteration": resumed_at, "reason": reason}))
            group.append((TrialStart, {"trial_id": trial.trial_id, "config": row.get("config") or {},
                                       "iteration": resumed_at, "checkpoint": checkpoint, "reason": reason}))
            timed.append((stamp(trial, number), 1, group))
        if trial.status == "ERROR":
            timed.append((float(trial.meta.get("last_result_time") or stamp(trial, len(rows) - 1)), 3,
                          [(TrialErrored, error_event(folder, trial, failures))]))
        elif trial.status == "TERMINATED":
            last = rows[-1] if rows else {}
            reason = "stop_criterion" if stopped(trial.stop, last) else "function_returned" if last.get("done") \
                else "stop_all"
            timed.append((stamp(trial, len(rows) - 1), 3, [(TrialComplete, {
                "trial_id": trial.trial_id, "iteration": int(last.get("training_iteration", 0)), "reason": reason,
                "was_running": True})]))
    for gap in gaps:
        timed.append((start, 0, [(DataGap, {"trial_id": gap.get("trial_id"), "what": gap["what"],
                                            "message": gap["message"]})]))
    if len(state_files) > 1:
        session_at: float = session_time(state_files[-1]) or start
        timed.append((session_at, 0, [(ExperimentResume, {"resumed_trials": [
            t.trial_id for t in trials if any((r.get("timestamp") or 0) >= session_at for r in t.rows)],
            "state_saved_at": None, "dropped_rows": None, "events_kept": None})]))
    timed.sort(key=lambda item: (item[0], item[1]))
    scheduler = settings.get("scheduler")
    pending: list[tuple[float, Pending]] = [(start, (ExperimentStart, {
        "name": os.path.basename(folder), "seed": None, "num_trials": len(trials),
        "scheduler": {"type": scheduler} if scheduler else None, "executor": "ray tune"}))]
    pending += [(when, item) for when, _, group in timed for item in group]
    statuses = {t.trial_id: t.status for t in trials}
    pending.append((max([when for when, _ in pending] + [start]), (ExperimentEnd, {
        "scheduler": f"{scheduler or 'scheduler'}: {len(exploits)} perturbs (from {POLICY_LOG})",
        "statuses": statuses})))
    events = [kind(seq=seq, time=when, **fields).to_dict() for seq, (when, (kind, fields)) in enumerate(pending)]
    return events, restored


def error_event(folder: str, trial: RayTrial, failures: int) -> dict[str, Any]:
    text = str(trial.meta.get("error_text") or "")  # set when read from a live ResultGrid
    name = trial.meta.get("error_filename") or trial.meta.get("error_file")  # the latter: Ray before 2.7
    if isinstance(name, str) and name:
        path = os.path.join(folder, trial.folder, os.path.basename(name))
        if os.path.isfile(path):
            text = read_text(path, f"error of trial {trial.trial_id}")
    last_line = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
    error_type, _, message = last_line.partition(": ")
    if not message:
        error_type, message = "", last_line or "Ray recorded no error text (error.txt is missing)"
    iteration = int(trial.rows[-1].get("training_iteration", 0)) if trial.rows else 0
    return {"trial_id": trial.trial_id, "iteration": iteration, "error_type": error_type,
            "message": message, "traceback": text, "num_failures": failures, "will_retry": False}
