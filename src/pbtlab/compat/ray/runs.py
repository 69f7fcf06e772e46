"""Read a Ray Tune experiment (a directory, or Ray's live ``ResultGrid``) as a pbtlab ``ResultGrid``.

    >>> grid = load_ray_results("~/ray_results/train_func_2026-01-01_00-00-00")   # doctest: +SKIP
    >>> [e["donor"] for e in grid.events_of("exploit")]                           # doctest: +SKIP

Ray 2.x writes, per experiment: ``experiment_state-<time>.json`` (the trials: id, tag, status, config,
folder), per trial ``result.json`` (one JSON row a report) and ``progress.csv`` (the same rows without
``config``), checkpoint folders, and with PBT ``pbt_global.txt`` (one row per exploit:
``[target_tag, donor_tag, target_iteration, donor_iteration, donor_config, new_config]``) and
``pbt_policy_<trial_id>.txt`` (a trial's lineage). This module turns them into pbtlab's records: an
experiment dict, the events of ``events.jsonl`` (docs/core.md) and ``result.jsonl`` rows with
``restored_from``, so every pbtlab view works on a Ray run.

What Ray did not keep is said, never made up: each loss is a ``data_gap`` event (``trial_id``, ``what``,
``message``) and a line in ``experiment["gaps"]``.

Safety: the directory is only opened for reading, and nothing in it is unpickled. Metric, mode and
the scheduler's settings live only in ``tuner.pkl``; its opcodes are read as data with
``pickletools.genops`` (which builds no object and imports nothing) to find those few values.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import glob
import json
import math
import os
import pickletools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pbtlab.analysis.results import Result, ResultGrid
from pbtlab.compat.ray import STATE_GLOB, is_ray_experiment, is_ray_object
from pbtlab.errors import ConfigError, ExperimentError, describe
from pbtlab.nested import get_path
from pbtlab.rundir.reader import RunDir

POLICY_LOG = "pbt_global.txt"
TUNER_PICKLE = "tuner.pkl"
ROW_FILE = "result.json"
CSV_FILE = "progress.csv"
ERROR_TEXT = "error.txt"
_DEFAULT_FACTORS = (1.2, 0.8)
_INDEX = re.compile(r"^(\d+)")


# -- the grid the views read ---------------------------------------------------------------------------------
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


@dataclasses.dataclass(frozen=True)
class RayRun:
    """A Ray experiment as pbtlab records: settings, trial records, rows per trial, events."""

    path: str
    experiment: dict[str, Any]
    trials: tuple[dict[str, Any], ...]
    rows: dict[str, tuple[dict[str, Any], ...]]
    events: tuple[dict[str, Any], ...]


def load_ray_results(source: Any, metric: str | None = None, mode: str | None = None) -> RayResultGrid:
    """A Ray Tune experiment directory, or Ray's ``ResultGrid`` / ``ExperimentAnalysis``, as a pbtlab grid.

    ``metric`` and ``mode`` override what is found in the run (Ray keeps them only in ``tuner.pkl``).

        >>> load_ray_results(3)
        Traceback (most recent call last):
        ...
        pbtlab.errors.ConfigError: load_ray_results needs a Ray Tune experiment directory or Ray's ResultGrid / ExperimentAnalysis, got 3 (int)
    """
    if mode is not None and mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
    if is_ray_object(source):
        path, found_metric, found_mode = _from_ray_object(source)
        if not is_ray_experiment(path) and hasattr(source, "_results"):  # moved, deleted or remote: use memory
            return RayResultGrid(read_ray_result_grid(source, path, metric or found_metric, mode or found_mode))
        return RayResultGrid(read_ray_experiment(path, metric or found_metric, mode or found_mode))
    if isinstance(source, (str, os.PathLike)):
        return RayResultGrid(read_ray_experiment(source, metric, mode))
    raise ConfigError("load_ray_results needs a Ray Tune experiment directory or Ray's ResultGrid / "
                      f"ExperimentAnalysis, got {describe(source)}")


def _from_ray_object(value: Any) -> tuple[str, str | None, str | None]:
    analysis = getattr(value, "_experiment_analysis", value)
    path = getattr(value, "experiment_path", None) or getattr(analysis, "experiment_path", None)
    if not isinstance(path, str):
        raise ConfigError(f"this Ray object has no experiment_path to read: {describe(value)}")
    metric = getattr(analysis, "default_metric", None)
    mode = getattr(analysis, "default_mode", None)
    return path, metric if isinstance(metric, str) else None, mode if mode in ("min", "max") else None


# -- reading the files (read only) -------------------------------------------------------------------------------
def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ExperimentError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as error:
        raise ExperimentError(f"{what} is not text ({error}): {path}") from None


def _json_lines(path: str, what: str) -> Iterator[tuple[int, Any]]:
    if not os.path.exists(path):
        return
    for number, line in enumerate(_read_text(path, what).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise ExperimentError(f"{path} line {number}: {what} is damaged ({error.msg})") from None


def _state_file(path: str) -> tuple[str, list[str]]:
    files = sorted(glob.glob(os.path.join(glob.escape(path), STATE_GLOB)))
    if not files:
        raise ExperimentError(f"{path} is not a Ray Tune experiment: no {STATE_GLOB} in it")
    return files[-1], files  # Ray restores from the newest, and its names sort by time


def _parse_state(state_path: str) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], dict[str, Any]]:
    text = _read_text(state_path, "Ray experiment state")
    try:
        state = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExperimentError(f"{state_path} line {error.lineno}: Ray experiment state is damaged ({error.msg})") \
            from None
    # Ray >= 2.7: "trial_data" holds [trial JSON, run-metadata JSON] pairs; older 2.x: "checkpoints" holds
    # the trial JSON alone, with the run metadata (failures, error file, last result) inside it
    entries = state.get("trial_data", state.get("checkpoints")) if isinstance(state, dict) else None
    if not isinstance(entries, list):
        raise ExperimentError(f"{state_path} line 1: not a Ray experiment state (no 'trial_data' list)")
    trials = []
    for number, entry in enumerate(entries):
        try:
            trial_json, meta_json = (entry, None) if isinstance(entry, str) else entry
            trial = json.loads(trial_json)
            meta = json.loads(meta_json) if meta_json is not None else trial
            trial["trial_id"], trial["status"]  # both must be there
        except (ValueError, TypeError, KeyError, json.JSONDecodeError):
            raise ExperimentError(f"{state_path} line 1: trial_data[{number}] is not a Ray trial record "
                                  "(expected two JSON strings with trial_id and status)") from None
        trials.append((trial, meta if isinstance(meta, dict) else {}))
    return trials, state


def _scalar(text: str) -> Any:
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _csv_rows(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header: list[str] | None = None
        for number, fields in enumerate(reader, start=1):
            if not fields:
                continue
            if header is None:
                header = fields
                continue
            if len(fields) != len(header):
                raise ExperimentError(f"{path} line {number}: {len(fields)} fields, the header has {len(header)}")
            rows.append({k: _scalar(v) for k, v in zip(header, fields)})
    return rows


def tuner_settings(path: str) -> dict[str, Any]:
    """Scalar settings found in ``tuner.pkl`` by reading its opcodes as data (nothing is unpickled).

    Returns the keys it found among metric, mode, time_attr, perturbation_interval, quantile_fraction,
    resample_probability, perturbation_factors, synch, num_to_keep, max_failures, scheduler.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return {}
    values: list[Any] = []  # scalars pushed, in order (None for anything else)
    memo: dict[int, Any] = {}
    last: Any = None
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "BININT", "BININT1", "BININT2",
                        "LONG1", "INT", "BINFLOAT", "FLOAT"):
                last = arg
            elif name in ("NEWTRUE", "NEWFALSE"):
                last = name == "NEWTRUE"
            elif name == "NONE":
                last = None
            elif name == "MEMOIZE":
                memo[len(memo)] = last
                continue
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg or 0)] = last
                continue
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                last = memo.get(int(arg or 0))
            else:
                last = _NOT_SCALAR
            values.append(last)
    except ValueError:  # pickletools' word for damaged or truncated data: keep what was read before
        values.append(_NOT_SCALAR)
    found: dict[str, Any] = {}

    def after(key: str, kinds: tuple[type, ...], name: str) -> None:
        for index, value in enumerate(values[:-1]):
            following = values[index + 1]
            is_wrong_bool = isinstance(following, bool) and bool not in kinds  # bool is an int subclass
            if value == key and isinstance(following, kinds) and not is_wrong_bool:
                found.setdefault(name, following)
                return

    after("_metric", (str,), "metric")
    after("_mode", (str,), "mode")
    after("metric", (str,), "metric")
    after("mode", (str,), "mode")
    after("_time_attr", (str,), "time_attr")
    after("_perturbation_interval", (int, float), "perturbation_interval")
    after("_quantile_fraction", (int, float), "quantile_fraction")
    after("_resample_probability", (int, float), "resample_probability")
    after("_synch", (bool,), "synch")
    after("num_to_keep", (int,), "num_to_keep")
    after("max_failures", (int,), "max_failures")
    for index, value in enumerate(values):
        if value == "_perturbation_factors":
            factors = [v for v in values[index + 1:index + 4] if isinstance(v, float)]
            if factors:
                found["perturbation_factors"] = factors
            break
    for scheduler in ("PB2", "PopulationBasedTraining"):
        if scheduler in values:
            found["scheduler"] = scheduler
            break
    if found.get("mode") not in ("min", "max"):
        found.pop("mode", None)
    return found


class _NotScalar:
    def __repr__(self) -> str:
        return "<not a scalar>"


_NOT_SCALAR = _NotScalar()


# -- the reconstruction ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Trial:
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
class _Exploit:
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


def read_ray_experiment(path: str | os.PathLike[str], metric: str | None = None,
                        mode: str | None = None) -> RayRun:
    """Read a Ray Tune experiment directory into pbtlab records (see the module docstring)."""
    folder = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.isdir(folder):
        raise ExperimentError(f"no Ray Tune experiment directory at {folder}")
    state_path, state_files = _state_file(folder)
    trial_states, state = _parse_state(state_path)
    settings = tuner_settings(os.path.join(folder, TUNER_PICKLE))
    metric = metric or settings.get("metric")
    mode = mode or settings.get("mode")
    gaps: list[dict[str, Any]] = []

    trials: list[_Trial] = []
    for trial, meta in trial_states:
        logdir = trial.get("relative_logdir") or os.path.basename(str(trial.get("logdir") or "").rstrip("/"))
        relative = str(logdir or trial["trial_id"])
        tag = str(trial.get("experiment_tag") or "")
        unresolved = trial.get("_Trial__unresolved_config")
        found = trial.get("config")
        config: dict[str, Any] = found if isinstance(found, dict) else {}
        trials.append(_Trial(str(trial["trial_id"]), 0, tag, relative, str(trial["status"]), dict(config),
                             dict(unresolved) if isinstance(unresolved, dict) else {}, meta,
                             trial.get("stopping_criterion")))
    trials.sort(key=lambda t: t.trial_id)
    for index, entry in enumerate(trials):
        entry.index = index
        _read_rows(folder, entry, gaps)
    return _assemble(folder, trials, _trainable(trial_states), state, state_files, settings, metric, mode, gaps)


def _assemble(folder: str, trials: list[_Trial], trainable: str | None, state: Mapping[str, Any],
              state_files: Sequence[str], settings: Mapping[str, Any], metric: str | None, mode: str | None,
              gaps: list[dict[str, Any]]) -> RayRun:
    """Trials with their rows (and the policy logs in ``folder``, if any) into pbtlab's records."""
    by_index = {}
    for trial in trials:
        match = _INDEX.match(trial.tag)
        if match:
            by_index[match.group(1)] = trial
    exploits = _read_policy_log(folder, by_index, trials, gaps)
    _place_exploits(trials, exploits, gaps)
    checkpoint_names = _checkpoint_names(trials, exploits, gaps)
    sign = {"max": 1.0, "min": -1.0}.get(mode or "", math.nan)
    param_columns = _param_columns(trials, exploits)
    events, restored = _events(folder, trials, exploits, checkpoint_names, sign, metric, state, state_files, settings,
                               gaps)
    rows = {}
    for trial in trials:
        finished = []
        for number, row in enumerate(trial.rows):
            row = dict(row)
            row["restored_from"] = restored.get((trial.trial_id, number))
            name = checkpoint_names.get((trial.trial_id, number))
            if "checkpoint_dir_name" in row or name is not None:
                row["checkpoint_dir_name"] = name
            finished.append(row)
        rows[trial.trial_id] = tuple(finished)

    created = (state.get("stats") or {}).get("start_time")
    experiment = {
        "name": os.path.basename(folder.rstrip("/")), "trainable": trainable,
        "metric": metric, "mode": mode, "num_samples": len(trials), "param_space": None,
        "scheduler": {"name": settings.get("scheduler"), **{k: settings[k] for k in (
            "time_attr", "perturbation_interval", "quantile_fraction", "resample_probability", "perturbation_factors",
            "synch") if k in settings}, "metric": metric, "mode": mode} if settings.get("scheduler") else None,
        "stop": trials[0].stop if trials else None, "max_failures": settings.get("max_failures"),
        "num_to_keep": settings.get("num_to_keep"), "executor": "ray tune", "param_columns": param_columns,
        "trial_ids": [t.trial_id for t in trials],
        "created": datetime.datetime.fromtimestamp(created).isoformat(timespec="seconds")
        if isinstance(created, (int, float)) else None,
        "source": "ray", "ray_state_file": os.path.basename(state_files[-1]) if state_files else None,
        "gaps": [g["message"] for g in gaps],
    }
    records = tuple(_trial_record(folder, trial, rows[trial.trial_id]) for trial in trials)
    return RayRun(folder, experiment, records, rows, tuple(events))


def read_ray_result_grid(grid: Any, path: str, metric: str | None = None, mode: str | None = None) -> RayRun:
    """Ray's live ``ResultGrid`` from the data it holds in memory, when its directory cannot be read.

    Ray's grid keeps each trial's config, error and rows (what its ``metrics_dataframe`` loaded), but
    not the policy log: no exploit is known, and restarts with a new config are reported as gaps.
    """
    gaps: list[dict[str, Any]] = [{
        "trial_id": None, "what": "experiment directory",
        "message": f"{path} cannot be read here, so this comes from the ResultGrid in memory: without "
                   f"{POLICY_LOG} no exploit is known (restarts with a new config are listed as gaps)"}]
    trials = []
    for result in grid:
        metrics = dict(getattr(result, "metrics", None) or {})
        trial_id = str(metrics.get("trial_id") or os.path.basename(str(result.path)))
        folder = os.path.basename(str(result.path).rstrip("/"))
        match = re.search(rf"{re.escape(trial_id)}_(.*?)(_\d{{4}}-\d{{2}}-\d{{2}}_\d{{2}}-\d{{2}}-\d{{2}})?$", folder)
        tag = match.group(1) if match else ""
        frame = getattr(result, "metrics_dataframe", None)
        rows = [_unflatten(r) for r in frame.to_dict("records")] if frame is not None else []
        error = getattr(result, "error", None)
        status = "ERROR" if error is not None else "TERMINATED"
        meta = {"error_text": f"{type(error).__name__}: {error}" if error is not None else "",
                "num_failures": 1 if error is not None else 0}
        trial = _Trial(trial_id, 0, tag, folder, status, dict(result.config or {}), {}, meta, None)
        trial.rows = rows
        trial.initial_config = dict(rows[0]["config"]) if rows and isinstance(rows[0].get("config"), dict) else {}
        trials.append(trial)
    trials.sort(key=lambda t: t.trial_id)
    for index, trial in enumerate(trials):
        trial.index = index
    return _assemble(path, trials, None, {}, [], {}, metric, mode, gaps)


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
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


def _trainable(trial_states: list[tuple[dict[str, Any], dict[str, Any]]]) -> str | None:
    name = trial_states[0][0].get("trainable_name") if trial_states else None
    return str(name) if name is not None else None


def _read_rows(folder: str, trial: _Trial, gaps: list[dict[str, Any]]) -> None:
    """The trial's rows: progress.csv (Ray rewrites result.json less completely), with result.json's values."""
    base = os.path.join(folder, trial.folder)
    json_path = os.path.join(base, ROW_FILE)
    json_rows = []
    for number, row in _json_lines(json_path, f"results of trial {trial.trial_id}"):
        if not isinstance(row, dict) or "training_iteration" not in row:
            raise ExperimentError(f"{json_path} line {number}: not a Ray result row (no training_iteration)")
        json_rows.append(row)
    csv_path = os.path.join(base, CSV_FILE)
    csv_rows = _csv_rows(csv_path)
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
        placeholders = [k for k in _flat(trial.initial_config) if _is_placeholder(get_path(trial.initial_config, k))]
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


def _tag_trial(tag: Any, by_index: Mapping[str, _Trial], path: str, number: int) -> _Trial:
    match = _INDEX.match(str(tag))
    if not match or match.group(1) not in by_index:
        raise ExperimentError(f"{path} line {number}: tag {tag!r} names no trial of this experiment "
                              f"(trial tags start with {sorted(by_index)})")
    return by_index[match.group(1)]


def _policy_exploit(row: Any, path: str, number: int, by_index: Mapping[str, _Trial]) -> _Exploit:
    if not (isinstance(row, list) and len(row) == 6 and isinstance(row[4], dict) and isinstance(row[5], dict)):
        raise ExperimentError(f"{path} line {number}: not a PBT policy row "
                              "([target_tag, donor_tag, target_iteration, donor_iteration, donor_config, new_config])")
    target = _tag_trial(row[0], by_index, path, number)
    donor = _tag_trial(row[1], by_index, path, number)
    return _Exploit(number, target.trial_id, donor.trial_id, str(row[0]), str(row[1]), int(row[2] or 0),
                    int(row[3] or 0), row[4], row[5], source=os.path.basename(path))


def _read_policy_log(folder: str, by_index: Mapping[str, _Trial], trials: Sequence[_Trial],
                     gaps: list[dict[str, Any]]) -> list[_Exploit]:
    """Exploits from pbt_global.txt; without it, what the per-trial lineage files still hold."""
    path = os.path.join(folder, POLICY_LOG)
    have_global = os.path.exists(path)
    exploits = [_policy_exploit(row, path, number, by_index) for number, row in _json_lines(path, "PBT policy log")]
    seen = {json.dumps([e.target_tag, e.donor_tag, e.ray_target_iteration, e.ray_donor_iteration, e.donor_config,
                        e.new_config], sort_keys=True) for e in exploits}
    recovered: list[_Exploit] = []
    for trial in trials:
        policy = os.path.join(folder, f"pbt_policy_{trial.trial_id}.txt")
        for number, row in _json_lines(policy, f"PBT lineage of trial {trial.trial_id}"):
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


def _place_exploits(trials: Sequence[_Trial], exploits: Sequence[_Exploit], gaps: list[dict[str, Any]]) -> None:
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
                       if rows[i].get("config") is None or _same(rows[i]["config"], exploit.new_config)), None)
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


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _checkpoint_names(trials: Sequence[_Trial], exploits: Sequence[_Exploit],
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
        source_row = _source_row(donor, by_id[exploit.target], exploit.after_row)
        if source_row is not None and names.get((donor.trial_id, source_row)) is None:
            iteration = donor.rows[source_row]["training_iteration"]
            names[(donor.trial_id, source_row)] = f"checkpoint of iteration {iteration}"
    return names


def _source_row(donor: _Trial, target: _Trial, after_row: int) -> int | None:
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


def _row_at(trial: _Trial, iteration: int, limit: float) -> int | None:
    found = None
    for number, row in enumerate(trial.rows):
        if row.get("training_iteration") == iteration and float(row.get("timestamp") or 0) <= limit:
            found = number
    return found


def _param_columns(trials: Sequence[_Trial], exploits: Sequence[_Exploit]) -> list[str]:
    keys: list[str] = []
    for exploit in exploits:
        for key in _flat(exploit.new_config):
            if key not in keys and get_path(exploit.new_config, key) != get_path(exploit.donor_config, key):
                keys.append(key)
    if not keys:
        for trial in trials:
            for key in _flat(trial.initial_config):
                value = get_path(trial.initial_config, key)
                if key not in keys and isinstance(value, (int, float)) and not isinstance(value, bool) and any(
                        get_path(other.initial_config, key) != value for other in trials):
                    keys.append(key)
    return keys


def _flat(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            keys += _flat(value, f"{prefix}{key}/")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _explore_op(old: Any, new: Any, factors: Sequence[float]) -> str | None:
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


def _events(folder: str, trials: Sequence[_Trial], exploits: Sequence[_Exploit],
            names: dict[tuple[str, int], str | None], sign: float, metric: str | None, state: Mapping[str, Any],
            state_files: Sequence[str], settings: Mapping[str, Any],
            gaps: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    """The event log, and ``restored_from`` per (trial, row)."""
    by_id = {t.trial_id: t for t in trials}
    # the newest state file holds the start of the newest session (after Tuner.restore): take the earliest
    first_rows = [float(t.rows[0]["timestamp"]) for t in trials if t.rows and t.rows[0].get("timestamp")]
    starts = [float((state.get("stats") or {}).get("start_time") or 0.0), *first_rows]
    first_session = _session_time(state_files[0]) if state_files else None
    start = min([s for s in [*starts, first_session or 0.0] if s > 0] or [0.0])
    factors = settings.get("perturbation_factors") or _DEFAULT_FACTORS
    ops_known = settings.get("scheduler") != "PB2"  # PB2 picks values with a model: Ray logs no operation
    restored: dict[tuple[str, int], dict[str, Any]] = {}
    timed: list[tuple[float, int, list[dict[str, Any]]]] = []  # (time, order, events that stay together)

    def stamp(trial: _Trial, number: int | None) -> float:
        if number is None or not trial.rows:
            return start
        return float(trial.rows[max(0, min(number, len(trial.rows) - 1))].get("timestamp") or start)

    def score(trial: _Trial, number: int | None) -> float:
        if number is None or metric is None:
            return math.nan
        try:
            return sign * float(trial.rows[number][metric])
        except (KeyError, TypeError, ValueError):
            return math.nan

    def checkpoint_of(trial: _Trial, number: int | None) -> str | None:
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
            source = _source_row(donor, target, exploit.after_row)
        else:  # the clone left no row: Ray's logged donor iteration, as of the decision
            source = _row_at(donor, exploit.ray_donor_iteration, stamp(target, exploit.before_row))
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
        for key in _flat(exploit.new_config):
            old, new = get_path(exploit.donor_config, key), get_path(exploit.new_config, key)
            if old != new:
                op = _explore_op(old, new, factors) if ops_known else None
                changes.append({"param": key, "old": old, "op": op, "new": new})
        group = [
            {"event": "exploit", "trial_id": target.trial_id, "donor": donor.trial_id,
             "target_iteration": target_iteration, "donor_iteration": donor_iteration, "checkpoint": checkpoint,
             "target_score": score(target, decision), "donor_score": score(donor, source),
             "old_config": old_config, "donor_config": exploit.donor_config, "target_tag": exploit.target_tag,
             "donor_tag": exploit.donor_tag, "time_attr": settings.get("time_attr"), "time_value": None,
             "policy_log": exploit.source, "policy_log_line": exploit.line},
            {"event": "explore", "trial_id": target.trial_id, "donor": donor.trial_id, "iteration": donor_iteration,
             "target_iteration": target_iteration, "changes": changes, "new_config": exploit.new_config},
        ]
        if exploit.after_row is not None:
            restored[(target.trial_id, exploit.after_row)] = {"trial_id": donor.trial_id, "checkpoint": checkpoint,
                                                              "iteration": donor_iteration, "reason": "exploit"}
            group += [
                {"event": "trial_restore", "trial_id": target.trial_id, "checkpoint": checkpoint,
                 "from_trial": donor.trial_id, "iteration": donor_iteration, "reason": "exploit"},
                {"event": "trial_start", "trial_id": target.trial_id, "config": exploit.new_config,
                 "iteration": donor_iteration, "checkpoint": checkpoint, "reason": "exploit"},
            ]
        timed.append((when, 2, group))

    for trial in trials:
        rows = trial.rows
        timed.append((start, 0, [{"event": "trial_add", "trial_id": trial.trial_id, "config": trial.initial_config,
                                  "tag": trial.tag.split("@perturbed")[0]}]))
        if rows:
            timed.append((stamp(trial, 0), 1, [{"event": "trial_start", "trial_id": trial.trial_id,
                                                "config": rows[0].get("config") or trial.initial_config,
                                                "iteration": 0, "checkpoint": None, "reason": None}]))
        failures = int(trial.meta.get("num_failures") or 0)
        for number in range(1, len(rows)):
            row, previous = rows[number], rows[number - 1]
            iteration, before = int(row.get("training_iteration", 0)), int(previous.get("training_iteration", 0))
            if (trial.trial_id, number) in exploit_rows:
                continue
            if row.get("iterations_since_restore") != 1:
                if iteration != before + 1:
                    _missing(trial, before, iteration, gaps)
                continue
            if iteration == before + 1:  # paused and continued from its own latest state, unless the config changed
                if number not in trial.derived_rows and number - 1 not in trial.derived_rows and \
                        not _same(row.get("config"), previous.get("config")):
                    gaps.append({"trial_id": trial.trial_id, "what": "exploit not logged",
                                 "message": f"trial {trial.trial_id} restarted at iteration {iteration} with a new "
                                            f"config, but no policy log row names it (the policy log is partial)"})
                continue
            if iteration > before + 1:
                _missing(trial, before, iteration, gaps)
                continue
            resumed_at = iteration - 1
            if number not in trial.derived_rows and number - 1 not in trial.derived_rows and \
                    not _same(row.get("config"), previous.get("config")):  # another trial's state: an exploit
                gaps.append({"trial_id": trial.trial_id, "what": "exploit not logged",
                             "message": f"trial {trial.trial_id} restarted from a state of iteration {resumed_at} "
                                        "with a new config, but no policy log row names the donor (the policy log is "
                                        "partial)"})
                restored[(trial.trial_id, number)] = {"trial_id": None, "checkpoint": None, "iteration": resumed_at,
                                                      "reason": "exploit"}
                timed.append((stamp(trial, number), 1, [{
                    "event": "trial_start", "trial_id": trial.trial_id, "config": row.get("config"),
                    "iteration": resumed_at, "checkpoint": None, "reason": "exploit"}]))
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
                group.append({"event": "trial_restore", "trial_id": trial.trial_id, "checkpoint": checkpoint,
                              "from_trial": trial.trial_id, "iteration": resumed_at, "reason": reason})
            group.append({"event": "trial_start", "trial_id": trial.trial_id, "config": row.get("config"),
                          "iteration": resumed_at, "checkpoint": checkpoint, "reason": reason})
            timed.append((stamp(trial, number), 1, group))
        if trial.status == "ERROR":
            timed.append((float(trial.meta.get("last_result_time") or stamp(trial, len(rows) - 1)), 3,
                          [_error_event(folder, trial, failures)]))
        elif trial.status == "TERMINATED":
            last = rows[-1] if rows else {}
            reason = "stop_criterion" if _stopped(trial.stop, last) else "function_returned" if last.get("done") \
                else "stop_all"
            timed.append((stamp(trial, len(rows) - 1), 3, [{"event": "trial_complete", "trial_id": trial.trial_id,
                                                            "iteration": int(last.get("training_iteration", 0)),
                                                            "reason": reason, "was_running": True}]))
    for gap in gaps:
        timed.append((start, 0, [{"event": "data_gap", "trial_id": gap.get("trial_id"), "what": gap["what"],
                                  "message": gap["message"]}]))
    if len(state_files) > 1:
        session_at: float = _session_time(state_files[-1]) or start
        timed.append((session_at, 0, [{"event": "experiment_resume", "resumed_trials": [
            t.trial_id for t in trials if any((r.get("timestamp") or 0) >= session_at for r in t.rows)],
            "state_saved_at": None, "dropped_rows": None, "events_kept": None}]))
    timed.sort(key=lambda item: (item[0], item[1]))
    events: list[dict[str, Any]] = [{"event": "experiment_start", "name": os.path.basename(folder), "seed": None,
                                     "num_trials": len(trials), "scheduler": settings.get("scheduler"),
                                     "executor": "ray tune", "time": start}]
    for when, _, group in timed:
        for event in group:
            events.append({**event, "time": when})
    statuses = {t.trial_id: t.status for t in trials}
    events.append({"event": "experiment_end", "scheduler": f"{settings.get('scheduler') or 'scheduler'}: "
                   f"{len(exploits)} perturbs (from {POLICY_LOG})", "statuses": statuses,
                   "time": max([e["time"] for e in events] + [start])})
    ordered = []
    for seq, event in enumerate(events):
        ordered.append({"seq": seq, "event": event.pop("event"), "time": event.pop("time"), **event})
    return ordered, restored


def _missing(trial: _Trial, before: int, after: int, gaps: list[dict[str, Any]]) -> None:
    gaps.append({"trial_id": trial.trial_id, "what": "rows missing",
                 "message": f"trial {trial.trial_id}: Ray kept no rows for iterations {before + 1}..{after - 1}"})


def _stopped(stop: Any, row: Mapping[str, Any]) -> bool:
    if not isinstance(stop, Mapping) or not stop:
        return False
    for key, limit in stop.items():
        try:
            if float(row.get(key, "nan")) >= float(limit):
                return True
        except (TypeError, ValueError):
            continue
    return False


def _session_time(path: str) -> float | None:
    match = re.search(r"experiment_state-(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})", os.path.basename(path))
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%d_%H-%M-%S").timestamp()


def _error_event(folder: str, trial: _Trial, failures: int) -> dict[str, Any]:
    text = str(trial.meta.get("error_text") or "")  # set when read from a live ResultGrid
    name = trial.meta.get("error_filename") or trial.meta.get("error_file")  # the latter: Ray before 2.7
    if isinstance(name, str) and name:
        path = os.path.join(folder, trial.folder, os.path.basename(name))
        if os.path.isfile(path):
            text = _read_text(path, f"error of trial {trial.trial_id}")
    last_line = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
    error_type, _, message = last_line.partition(": ")
    if not message:
        error_type, message = "", last_line or "Ray recorded no error text (error.txt is missing)"
    iteration = int(trial.rows[-1].get("training_iteration", 0)) if trial.rows else 0
    return {"event": "trial_error", "trial_id": trial.trial_id, "iteration": iteration, "error_type": error_type,
            "message": message, "traceback": text, "num_failures": failures, "will_retry": False}


def _trial_record(folder: str, trial: _Trial, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
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
        error = _error_event(folder, trial, int(trial.meta.get("num_failures") or 0))
        record["error"] = {"error_type": error["error_type"], "message": error["message"],
                           "traceback": error["traceback"]}
    return record
