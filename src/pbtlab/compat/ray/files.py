"""Ray Tune's files in an experiment directory, read as plain data: nothing is unpickled, nothing is written.

Ray 2.x writes, per experiment: ``experiment_state-<time>.json`` (the trials: id, tag, status, config,
folder), per trial ``result.json`` (one JSON row a report) and ``progress.csv`` (the same rows without
``config``), checkpoint folders, and with PBT ``pbt_global.txt`` and ``pbt_policy_<trial_id>.txt``.
Metric, mode and the scheduler's settings live only in ``tuner.pkl``; its opcodes are read as data with
``pickletools.genops`` (which builds no object and imports nothing) to find those few values.

    >>> tuner_settings("/nonexistent/tuner.pkl")
    {}
"""

from __future__ import annotations

import csv
import datetime
import glob
import json
import os
import pickletools
import re
from collections.abc import Iterator
from typing import Any

from pbtlab.compat.ray import STATE_GLOB
from pbtlab.errors import ExperimentError

__all__ = [
    "CSV_FILE", "ERROR_TEXT", "find_state_files", "json_lines", "parse_state", "POLICY_LOG", "read_csv_rows",
    "read_text", "ROW_FILE", "session_time", "TUNER_PICKLE", "tuner_settings",
]

POLICY_LOG = "pbt_global.txt"


TUNER_PICKLE = "tuner.pkl"


ROW_FILE = "result.json"


CSV_FILE = "progress.csv"


ERROR_TEXT = "error.txt"


def read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ExperimentError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as error:
        raise ExperimentError(f"{what} is not text ({error}): {path}") from None


def json_lines(path: str, what: str) -> Iterator[tuple[int, Any]]:
    if not os.path.exists(path):
        return
    for number, line in enumerate(read_text(path, what).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise ExperimentError(f"{path} line {number}: {what} is damaged ({error.msg})") from None


def find_state_files(path: str) -> tuple[str, list[str]]:
    files = sorted(glob.glob(os.path.join(glob.escape(path), STATE_GLOB)))
    if not files:
        raise ExperimentError(f"{path} is not a Ray Tune experiment: no {STATE_GLOB} in it")
    return files[-1], files  # Ray restores from the newest, and its names sort by time


def parse_state(state_path: str) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], dict[str, Any]]:
    text = read_text(state_path, "Ray experiment state")
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


def read_csv_rows(path: str) -> list[dict[str, Any]]:
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


def session_time(path: str) -> float | None:
    match = re.search(r"experiment_state-(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})", os.path.basename(path))
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%d_%H-%M-%S").timestamp()
