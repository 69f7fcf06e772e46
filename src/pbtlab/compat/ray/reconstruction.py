"""Ray's trials rebuilt from its files: rows per trial, the exploits of the policy logs placed between rows,
and the checkpoint each restart loaded. What Ray did not keep becomes a gap, never a guess.

    >>> same_config({"lr": 0.1}, {"lr": 0.1}), explore_op(1.0, 1.2, DEFAULT_FACTORS)
    (True, '* 1.2')
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pbtlab.compat.ray.files import CSV_FILE, POLICY_LOG, ROW_FILE, json_lines, read_csv_rows
from pbtlab.errors import ExperimentError
from pbtlab.nested import get_path

__all__ = [
    "DEFAULT_FACTORS", "explore_op", "find_param_columns", "find_source_row", "flat_keys", "name_checkpoints",
    "note_missing_rows", "place_exploits", "PolicyExploit", "RayRun", "RayTrial", "read_policy_log", "read_rows",
    "row_at", "same_config", "stopped", "TAG_INDEX", "trainable_name", "unflatten_record",
]

DEFAULT_FACTORS = (1.2, 0.8)


TAG_INDEX = re.compile(r"^(\d+)")


@dataclasses.dataclass
class RayTrial:
    trial_id: str
    index: int
    tag: str
    folder: str
    status: str
    config: dict[str, Any]
    initial_config: dict[str, Any]
    meta: dict[str, Any]
    stop: Any
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    derived_rows: set[int] = dataclasses.field(default_factory=set)  # rows only in progress.csv: config derived


@dataclasses.dataclass
class PolicyExploit:
    line: int
    target: str
    donor: str
    target_tag: str
    donor_tag: str
    ray_target_iteration: int
    ray_donor_iteration: int
    donor_config: dict[str, Any]
    new_config: dict[str, Any]
    after_row: int | None = None  # index in the target's rows of the first row after the exploit
    before_row: int | None = None
    source: str = POLICY_LOG


@dataclasses.dataclass(frozen=True)
class RayRun:
    """A Ray experiment as pbtlab records: settings, trial records, rows per trial, events."""

    path: str
    experiment: dict[str, Any]
    trials: tuple[dict[str, Any], ...]
    rows: dict[str, tuple[dict[str, Any], ...]]
    events: tuple[dict[str, Any], ...]


def trainable_name(trial_states: list[tuple[dict[str, Any], dict[str, Any]]]) -> str | None:
    name = trial_states[0][0].get("trainable_name") if trial_states else None
    return str(name) if name is not None else None


def read_rows(folder: str, trial: RayTrial, gaps: list[dict[str, Any]]) -> None:
    """The trial's rows: progress.csv (Ray rewrites result.json less completely), with result.json's values."""
    base = os.path.join(folder, trial.folder)
    json_path = os.path.join(base, ROW_FILE)
    json_rows = []
    for number, row in json_lines(json_path, f"results of trial {trial.trial_id}"):
        if not isinstance(row, dict) or "training_iteration" not in row:
            raise ExperimentError(f"{json_path} line {number}: not a Ray result row (no training_iteration)")
        json_rows.append(row)
    csv_path = os.path.join(base, CSV_FILE)
    csv_rows = read_csv_rows(csv_path)
    for number, row in enumerate(csv_rows, start=2):
        if not isinstance(row.get("training_iteration"), int):
            raise ExperimentError(f"{csv_path} line {number}: not a Ray progress row (no training_iteration)")

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return (row.get("training_iteration"), row.get("timestamp"), row.get("pid"),
                round(float(row.get("time_total_s") or 0.0), 6))

    first = json_rows[0] if json_rows else {}
    if first.get("training_iteration") == 1 and isinstance(first.get("config"), dict):
        trial.initial_config = dict(first["config"])
    else:  # Ray's own copy holds placeholders for sample_from values: drop them, and say so
        placeholders = [k for k in flat_keys(trial.initial_config) if _is_placeholder(get_path(trial.initial_config, k))]
        trial.initial_config = _without(trial.initial_config, placeholders)
        gaps.append({"trial_id": trial.trial_id, "what": "start config",
                     "message": f"trial {trial.trial_id}: result.json lost the first row, so the start config is "
                                f"Ray's stored one{' without ' + ', '.join(placeholders) if placeholders else ''}"})
    if len(csv_rows) <= len(json_rows):
        trial.rows = json_rows
        return
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in json_rows:
        by_key.setdefault(key(row), []).append(row)
    merged = []
    for row in csv_rows:
        same = by_key.get(key(row))
        if same:
            merged.append(same.pop(0))
        else:
            unflat = dict(row)
            unflat["config"] = None  # filled from the lineage below
            merged.append(unflat)
    trial.rows = merged
    trial.derived_rows = {n for n, r in enumerate(merged) if r.get("config", 0) is None}
    only_csv = len(trial.derived_rows)
    gaps.append({"trial_id": trial.trial_id, "what": "result.json rows",
                 "message": f"trial {trial.trial_id}: {only_csv} of {len(merged)} rows are only in progress.csv "
                            "(Ray rewrote result.json at a restart); their metrics come from progress.csv and their "
                            "config is the one in force then (start config or the exploit's new config)"})


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and value[0] == "__fn_ph"


def _without(config: Mapping[str, Any], keys: Sequence[str], prefix: str = "") -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            kept[key] = _without(value, keys, f"{prefix}{key}/")
        elif f"{prefix}{key}" not in keys:
            kept[key] = value
    return kept


def _tag_trial(tag: Any, by_index: Mapping[str, RayTrial], path: str, number: int) -> RayTrial:
    match = TAG_INDEX.match(str(tag))
    if not match or match.group(1) not in by_index:
        raise ExperimentError(f"{path} line {number}: tag {tag!r} names no trial of this experiment "
                              f"(trial tags start with {sorted(by_index)})")
    return by_index[match.group(1)]


def _policy_exploit(row: Any, path: str, number: int, by_index: Mapping[str, RayTrial]) -> PolicyExploit:
    if not (isinstance(row, list) and len(row) == 6 and isinstance(row[4], dict) and isinstance(row[5], dict)):
        raise ExperimentError(f"{path} line {number}: not a PBT policy row "
                              "([target_tag, donor_tag, target_iteration, donor_iteration, donor_config, new_config])")
    target = _tag_trial(row[0], by_index, path, number)
    donor = _tag_trial(row[1], by_index, path, number)
    return PolicyExploit(number, target.trial_id, donor.trial_id, str(row[0]), str(row[1]), int(row[2] or 0),
                    int(row[3] or 0), row[4], row[5], source=os.path.basename(path))


def read_policy_log(folder: str, by_index: Mapping[str, RayTrial], trials: Sequence[RayTrial],
                     gaps: list[dict[str, Any]]) -> list[PolicyExploit]:
    """Exploits from pbt_global.txt; without it, what the per-trial lineage files still hold."""
    path = os.path.join(folder, POLICY_LOG)
    have_global = os.path.exists(path)
    exploits = [_policy_exploit(row, path, number, by_index) for number, row in json_lines(path, "PBT policy log")]
    seen = {json.dumps([e.target_tag, e.donor_tag, e.ray_target_iteration, e.ray_donor_iteration, e.donor_config,
                        e.new_config], sort_keys=True) for e in exploits}
    recovered: list[PolicyExploit] = []
    for trial in trials:
        policy = os.path.join(folder, f"pbt_policy_{trial.trial_id}.txt")
        for number, row in json_lines(policy, f"PBT lineage of trial {trial.trial_id}"):
            key = json.dumps(row, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            if have_global:
                gaps.append({"trial_id": trial.trial_id, "what": "policy log",
                             "message": f"{os.path.basename(policy)} line {number} records an exploit that "
                                        f"{POLICY_LOG} lacks ({row[:4] if isinstance(row, list) else row}); it is not "
                                        "placed in the event log"})
            else:
                recovered.append(_policy_exploit(row, policy, number, by_index))
    if recovered:
        recovered.sort(key=lambda e: e.ray_target_iteration)  # stable: file order within an iteration
        gaps.append({"trial_id": None, "what": "policy log",
                     "message": f"{POLICY_LOG} is missing: {len(recovered)} exploits come from the per-trial "
                                "pbt_policy_*.txt files, which keep only each trial's current lineage (Ray overwrites "
                                "a target's file with its donor's), so exploits outside every lineage are lost and "
                                "their order is by iteration"})
    return exploits + recovered


def place_exploits(trials: Sequence[RayTrial], exploits: Sequence[PolicyExploit], gaps: list[dict[str, Any]]) -> None:
    """Tie each logged exploit to the target's first row after it (a restart at the logged iteration)."""
    by_id = {t.trial_id: t for t in trials}
    cursor = {t.trial_id: 1 for t in trials}
    for exploit in exploits:
        trial = by_id[exploit.target]
        rows = trial.rows
        candidates = [i for i in range(cursor[trial.trial_id], len(rows))
                      if rows[i].get("iterations_since_restore") == 1
                      and rows[i - 1].get("training_iteration") in (exploit.ray_target_iteration,
                                                                    exploit.ray_target_iteration + 1)]
        # the first restart there that ran with the new config (rows only in progress.csv have none to compare)
        chosen = next((i for i in candidates
                       if rows[i].get("config") is None or same_config(rows[i]["config"], exploit.new_config)), None)
        if chosen is not None and rows[chosen].get("training_iteration") == 1 and rows[chosen - 1].get(
                "training_iteration", 0) > 1 and exploit.ray_donor_iteration > 0:
            cursor[trial.trial_id] = chosen + 1  # the trial restarted from scratch (a restore) before using the clone
            exploit.before_row = chosen - 1
            chosen = None
        if chosen is None:
            if exploit.before_row is None:  # the target's last row at the logged iteration
                exploit.before_row = next((i for i in range(len(rows) - 1, -1, -1) if rows[i].get(
                    "training_iteration") in (exploit.ray_target_iteration, exploit.ray_target_iteration + 1)), None)
            gaps.append({"trial_id": trial.trial_id, "what": "exploit without rows",
                         "message": f"{exploit.source} line {exploit.line}: trial {trial.trial_id} was exploited, but "
                                    "Ray kept no row trained from the cloned state (the run ended, was restored or "
                                    "Ray dropped the rows)"})
            continue
        exploit.after_row = chosen
        exploit.before_row = chosen - 1
        cursor[trial.trial_id] = chosen + 1
        for i in range(chosen, len(rows)):
            if i > chosen and rows[i].get("iterations_since_restore") == 1:
                break  # the next restart: a pause (filled below) or another exploit
            if rows[i].get("config") is None:
                rows[i]["config"] = dict(exploit.new_config)
    for trial in trials:  # rows before any exploit, known only from progress.csv: the start config
        current = trial.initial_config
        for row in trial.rows:
            if row.get("config") is None:
                row["config"] = dict(current)
            current = row["config"]


def same_config(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def name_checkpoints(trials: Sequence[RayTrial], exploits: Sequence[PolicyExploit],
                      gaps: list[dict[str, Any]]) -> dict[tuple[str, int], str | None]:
    """A name per row that saved a checkpoint; unique within a trial, so a clone points at one row.

    Ray reuses a folder name after a restart (only the last save survives); earlier rows with that name
    get ``"<name> (overwritten)"``. Rows of class trainables carry no name: a row whose state was cloned
    gets ``"checkpoint of iteration N"``.
    """
    names: dict[tuple[str, int], str | None] = {}
    by_id = {t.trial_id: t for t in trials}
    for trial in trials:
        last_use: dict[str, int] = {}
        for number, row in enumerate(trial.rows):
            name = row.get("checkpoint_dir_name")
            if isinstance(name, str) and name:
                last_use[name] = number
        overwritten = 0
        for number, row in enumerate(trial.rows):
            name = row.get("checkpoint_dir_name")
            if isinstance(name, str) and name:
                if last_use[name] == number:
                    names[(trial.trial_id, number)] = name
                else:
                    names[(trial.trial_id, number)] = f"{name} (overwritten, iteration {row['training_iteration']})"
                    overwritten += 1
            elif "checkpoint_dir_name" in row:
                names[(trial.trial_id, number)] = None
        if overwritten:
            gaps.append({"trial_id": trial.trial_id, "what": "checkpoint overwritten",
                         "message": f"trial {trial.trial_id}: Ray saved {overwritten} checkpoints into folders it "
                                    "later reused; only the last save of each folder is on disk"})
    for exploit in exploits:
        if exploit.after_row is None:
            continue
        donor = by_id[exploit.donor]
        source_row = find_source_row(donor, by_id[exploit.target], exploit.after_row)
        if source_row is not None and names.get((donor.trial_id, source_row)) is None:
            iteration = donor.rows[source_row]["training_iteration"]
            names[(donor.trial_id, source_row)] = f"checkpoint of iteration {iteration}"
    return names


def find_source_row(donor: RayTrial, target: RayTrial, after_row: int) -> int | None:
    """The donor's row whose state the target restarted from: its last row at that iteration, reported before."""
    iteration = int(target.rows[after_row].get("training_iteration", 1)) - 1
    limit = target.rows[after_row].get("timestamp")
    best = None
    for number, row in enumerate(donor.rows):
        if row.get("training_iteration") != iteration:
            continue
        if limit is not None and row.get("timestamp") is not None and row["timestamp"] > limit:
            continue
        best = number
    return best


def row_at(trial: RayTrial, iteration: int, limit: float) -> int | None:
    found = None
    for number, row in enumerate(trial.rows):
        if row.get("training_iteration") == iteration and float(row.get("timestamp") or 0) <= limit:
            found = number
    return found


def find_param_columns(trials: Sequence[RayTrial], exploits: Sequence[PolicyExploit]) -> list[str]:
    """The tuned hyperparameters, in the configs' own key order: the keys some exploit changed, else the numeric
    keys whose starting values differ between trials. (In the order the exploits first changed them, a run whose
    first exploit left ``h0`` at 0 (0 x 1.2) listed ``h1`` before ``h0``, and labels such as ``"h = [0, 1]"`` then
    read the wrong way round.)

        >>> exploit = PolicyExploit(1, "b", "a", "1", "0", 4, 4, {"lr": 0.1, "h0": 0.0, "h1": 1.0},
        ...                         {"lr": 0.12, "h0": 0.0, "h1": 0.8})
        >>> later = dataclasses.replace(exploit, new_config={"lr": 0.1, "h0": 0.5, "h1": 1.0})
        >>> find_param_columns([], [exploit, later])
        ['lr', 'h0', 'h1']
    """
    order: list[str] = []
    changed: set[str] = set()
    for exploit in exploits:
        for key in flat_keys(exploit.new_config):
            if key not in changed and get_path(exploit.new_config, key) != get_path(exploit.donor_config, key):
                changed.add(key)
            if key not in order:
                order.append(key)
    keys = [key for key in order if key in changed]
    if not keys:
        for trial in trials:
            for key in flat_keys(trial.initial_config):
                value = get_path(trial.initial_config, key)
                if key not in keys and isinstance(value, (int, float)) and not isinstance(value, bool) and any(
                        get_path(other.initial_config, key) != value for other in trials):
                    keys.append(key)
    return keys


def flat_keys(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            keys += flat_keys(value, f"{prefix}{key}/")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def explore_op(old: Any, new: Any, factors: Sequence[float]) -> str | None:
    """The operation Ray's line would show, where the two values prove it; None when they cannot."""
    if isinstance(old, bool) or isinstance(new, bool) or not isinstance(old, (int, float)) \
            or not isinstance(new, (int, float)):
        return None
    for factor in factors:
        product = old * factor
        if (isinstance(old, int) and new == round(product)) or math.isclose(new, product, rel_tol=1e-9,
                                                                                 abs_tol=1e-12):
            return f"* {factor}"
    # a float that is no factor's product was resampled; an int may also have been shifted in a list
    return None if isinstance(old, int) else "resample"


def note_missing_rows(trial: RayTrial, before: int, after: int, gaps: list[dict[str, Any]]) -> None:
    gaps.append({"trial_id": trial.trial_id, "what": "rows missing",
                 "message": f"trial {trial.trial_id}: Ray kept no rows for iterations {before + 1}..{after - 1}"})


def stopped(stop: Any, row: Mapping[str, Any]) -> bool:
    if not isinstance(stop, Mapping) or not stop:
        return False
    for key, limit in stop.items():
        try:
            if float(row.get(key, "nan")) >= float(limit):
                return True
        except (TypeError, ValueError):
            continue
    return False


def unflatten_record(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A pandas record with ``a/b`` columns back into nested dicts; pandas' NaN for "absent" becomes None."""
    row: dict[str, Any] = {}
    for key, value in flat.items():
        if isinstance(value, float) and math.isnan(value) and (key.startswith("config/") or key.endswith("_name")):
            value = None
        parts = str(key).split("/")
        target = row
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return row
