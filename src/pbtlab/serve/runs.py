"""Reading experiment directories for ``pbtlab serve``: discovery, status, and tailing appended lines.

Nothing here needs the web stack; everything is plain JSON reading (nothing is ever unpickled).

    >>> from pbtlab.examples.runs import run_toy_pbt
    >>> grid = run_toy_pbt(population=2, seed=0, storage_path=getfixture("tmp_path"), name="demo")
    >>> [e.name for e in discover([str(getfixture("tmp_path"))])]
    ['demo']
    >>> tail = FileTail(os.path.join(grid.experiment_path, "events.jsonl"))
    >>> chunk = tail.read()
    >>> chunk.records[0]["event"], chunk.pending_bytes, tail.read().records
    ('experiment_start', 0, [])
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pbtlab.errors import ConfigError, describe
from pbtlab.metrics import metric_value
from pbtlab.rundir.store import EVENTS_FILE, EXPERIMENT_FILE, STATE_FILE
from pbtlab.rundir.tail import FileTail, inside, read_json_file  # noqa: F401 - FileTail: the doctest above

__all__ = [
    "check_ids", "DEFAULT_STALE_SECONDS", "discover", "ExperimentEntry", "finite", "fold_status", "MAX_DEPTH",
    "PathRefused", "resolve_experiment", "run_state", "RunStatus", "summarize",
]

#: How deep below a served folder experiments are looked for (``runs/<name>/experiment.json`` is depth 2).
MAX_DEPTH = 3
#: A run without ``experiment_end`` whose files did not change for this long is reported as stopped.
DEFAULT_STALE_SECONDS = 600.0


class RunStatus(str, enum.Enum):
    """What the files say about a run."""

    RUNNING = "running"      # no experiment_end yet, files changed recently
    FINISHED = "finished"    # the last event is experiment_end, and every trial ended
    INTERRUPTED = "interrupted"  # experiment_end with trials unfinished (Ctrl-C, an error, fail_fast): resumable
    STOPPED = "stopped"      # no experiment_end and nothing written for a while: the driver died or was killed
    STARTING = "starting"    # experiment.json exists, nothing else yet
    DAMAGED = "damaged"      # experiment.json cannot be read


# -- paths ------------------------------------------------------------------------------------------------
class PathRefused(Exception):
    """A requested path is outside the served folders (or not an experiment)."""


def resolve_experiment(roots: Sequence[str], experiment_id: str) -> str:
    """The directory of experiment ``"<root index>/<relative path>"``; raises PathRefused for anything else.

        >>> resolve_experiment(["/tmp"], "0/../etc")
        Traceback (most recent call last):
        ...
        pbtlab.serve.runs.PathRefused: '..' is not allowed in an experiment id
    """
    if not isinstance(experiment_id, str) or "\x00" in experiment_id or "\\" in experiment_id:
        raise PathRefused("an experiment id is '<root>/<path>'")
    index_text, _, relative = experiment_id.partition("/")
    if not index_text.isdigit() or int(index_text) >= len(roots):
        raise PathRefused(f"no served folder number {index_text!r}")
    parts = relative.split("/")
    if ".." in parts or "." in parts:
        raise PathRefused("'..' is not allowed in an experiment id")
    if relative.startswith("/") or any(part == "" for part in parts) and relative != "":
        raise PathRefused("an experiment path is relative, without empty parts")
    root = roots[int(index_text)]
    path = os.path.join(root, *[p for p in parts if p])
    if not inside(root, path):
        raise PathRefused("the path leaves the served folder")
    if not os.path.isfile(os.path.join(path, EXPERIMENT_FILE)):
        raise PathRefused("no experiment there")
    return path


# -- discovery and summaries ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class ExperimentEntry:
    """One experiment found under a served folder: ``experiment_id`` is ``"<root index>/<relative path>"``."""

    experiment_id: str
    name: str
    path: str


def discover(roots: Sequence[str]) -> list[ExperimentEntry]:
    """Every experiment directory (one holding ``experiment.json``) under ``roots``, at most MAX_DEPTH deep.

    Symlinked folders are followed only while they stay inside their root.
    """
    found: list[ExperimentEntry] = []
    for index, root in enumerate(roots):
        if not os.path.isdir(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            folder, depth = stack.pop()
            if os.path.isfile(os.path.join(folder, EXPERIMENT_FILE)) and inside(root, folder):
                relative = os.path.relpath(folder, root).replace(os.sep, "/")
                relative = "" if relative == "." else relative
                name = os.path.basename(os.path.normpath(folder))
                found.append(ExperimentEntry(f"{index}/{relative}", name, folder))
                continue
            if depth >= MAX_DEPTH:
                continue
            try:
                children = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
            except OSError:
                continue
            for child in children:
                if child.name.startswith(".") or not child.is_dir():
                    continue
                if inside(root, child.path):
                    stack.append((child.path, depth + 1))
    return found


def _last_line(path: str) -> bytes | None:
    """The last complete line of a file, read from its end."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = min(size, 65536)
            handle.seek(size - block)
            data = handle.read(block)
    except OSError:
        return None
    end = data.rfind(b"\n")
    if end < 0:
        return None
    start = data.rfind(b"\n", 0, end)
    return data[start + 1:end]


def run_state(experiment_dir: str, last_event: Mapping[str, Any] | None = None,
              stale_after: float = DEFAULT_STALE_SECONDS, now: float | None = None) -> dict[str, Any]:
    """The run's state and a sentence for people, from its last event and how long ago its files changed.

    ``last_event`` may be given (the live stream knows it); otherwise the last line of events.jsonl is read.
    """
    now = time.time() if now is None else now
    events_path = os.path.join(experiment_dir, EVENTS_FILE)
    if last_event is None:
        line = _last_line(events_path)
        try:
            last_event = json.loads(line) if line else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            last_event = None
    newest = 0.0
    for name in (EVENTS_FILE, STATE_FILE, EXPERIMENT_FILE):
        try:
            newest = max(newest, os.stat(os.path.join(experiment_dir, name)).st_mtime)
        except OSError:
            pass
    age = max(0.0, now - newest) if newest else None
    unfinished = _unfinished_trials(last_event)
    if unfinished:
        state = RunStatus.INTERRUPTED
        label = (f"interrupted: {unfinished[0]} of {unfinished[1]} trials unfinished "
                 "(`pbtlab resume` continues it)")
    elif isinstance(last_event, dict) and last_event.get("event") == "experiment_end":
        state, label = RunStatus.FINISHED, "finished"
    elif not os.path.exists(events_path):
        state = RunStatus.STARTING if age is not None and age < stale_after else RunStatus.STOPPED
        label = "starting" if state is RunStatus.STARTING else "stopped before its first event"
    elif age is not None and age >= stale_after:
        state = RunStatus.STOPPED
        label = (f"stopped: no experiment_end, nothing written for {_duration(age)} "
                 "(the driver died or was killed; `pbtlab resume` continues it)")
    else:
        state, label = RunStatus.RUNNING, "running"
    return {"state": state.value, "label": label, "age_s": None if age is None else round(age, 1)}


def _unfinished_trials(last_event: Any) -> tuple[int, int] | None:
    """``(unfinished, all)`` trials when ``last_event`` is an ``experiment_end`` that left some unfinished.

        >>> _unfinished_trials({"event": "experiment_end", "statuses": {"a": "TERMINATED", "b": "PAUSED"}})
        (1, 2)
        >>> _unfinished_trials({"event": "experiment_end", "statuses": {"a": "TERMINATED", "b": "ERROR"}})
    """
    if not isinstance(last_event, dict) or last_event.get("event") != "experiment_end":
        return None
    statuses = last_event.get("statuses")
    if not isinstance(statuses, dict) or not statuses:
        return None
    unfinished = sum(1 for status in statuses.values() if status not in ("TERMINATED", "ERROR"))
    return (unfinished, len(statuses)) if unfinished else None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def summarize(entry: ExperimentEntry, stale_after: float = DEFAULT_STALE_SECONDS) -> dict[str, Any]:
    """One line of the list page: name, status, trials, progress, best metric, started (never raises)."""
    summary: dict[str, Any] = {"id": entry.experiment_id, "name": entry.name, "status": None, "trials": None,
                               "progress": None, "best": None, "metric": None, "started": None, "problems": []}
    experiment, problem = read_json_file(os.path.join(entry.path, EXPERIMENT_FILE))
    if problem or not isinstance(experiment, dict):
        summary["status"] = {"state": RunStatus.DAMAGED.value, "label": problem or "experiment.json is not an object"}
        return summary
    summary["name"] = str(experiment.get("name") or entry.name)
    summary["status"] = run_state(entry.path, stale_after=stale_after)
    trial_ids_field = experiment.get("trial_ids")
    trial_ids: list[Any] = trial_ids_field if isinstance(trial_ids_field, list) else []
    summary["trials"] = len(trial_ids)
    summary["started"] = experiment.get("created")
    metric, mode = experiment.get("metric"), experiment.get("mode")
    summary["metric"] = metric
    state, problem = read_json_file(os.path.join(entry.path, STATE_FILE))
    if problem and summary["status"]["state"] != RunStatus.STARTING.value:
        summary["problems"].append(problem)
    trials_field = state.get("trials") if isinstance(state, dict) else None
    trials: list[Any] = trials_field if isinstance(trials_field, list) else []
    stop_field = experiment.get("stop")
    stop: dict[str, Any] = stop_field if isinstance(stop_field, dict) else {}
    target = finite(stop.get("training_iteration"))
    done, best = 0.0, None
    sign = -1.0 if mode == "min" else 1.0
    for trial in trials:
        if not isinstance(trial, dict):
            continue
        last_field = trial.get("last_result")
        last: dict[str, Any] = last_field if isinstance(last_field, dict) else {}
        if target:
            done += min(1.0, (finite(trial.get("iteration")) or 0.0) / target)
        else:
            done += trial.get("status") in ("TERMINATED", "ERROR")
        value = finite(metric_value(last, metric)) if metric else None
        if value is not None and (best is None or sign * value > sign * best):
            best = value
    if trial_ids:
        finished = summary["status"]["state"] == RunStatus.FINISHED.value
        summary["progress"] = 1.0 if finished else round(done / len(trial_ids), 4)
    summary["best"] = best
    return summary


# -- trial status from the event log ----------------------------------------------------------------------
def fold_status(statuses: dict[str, str], event: Mapping[str, Any]) -> None:
    """Update trial statuses with one event (the page does the same in app.js)."""
    kind, trial = event.get("event"), event.get("trial_id")
    if kind == "trial_add":
        statuses[str(trial)] = "PENDING"
    elif kind == "trial_start":
        statuses[str(trial)] = "RUNNING"
    elif kind == "trial_complete":
        statuses[str(trial)] = "TERMINATED"
    elif kind == "trial_error":
        statuses[str(trial)] = "PENDING" if event.get("will_retry") else "ERROR"
    elif kind == "experiment_end" and isinstance(event.get("statuses"), dict):
        statuses.update({str(k): str(v) for k, v in event["statuses"].items()})


def check_ids(values: Iterable[Any], what: str) -> list[str]:
    out = []
    for value in values:
        if not isinstance(value, str):
            raise ConfigError(f"{what} must be strings, got {describe(value)}")
        out.append(value)
    return out
