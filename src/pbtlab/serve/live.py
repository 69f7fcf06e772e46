"""One browser's view of one experiment: a snapshot, then only what was appended (per-client byte offsets).

    >>> from pbtlab.examples.runs import run_toy_pbt
    >>> grid = run_toy_pbt(population=2, seed=0, storage_path=getfixture("tmp_path"))
    >>> view = LiveView(grid.experiment_path)
    >>> snapshot = view.snapshot()
    >>> snapshot["status"]["state"], len(snapshot["trials"]), view.poll()
    ('finished', 2, None)
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
from typing import Any

from pbtlab.metrics import metric_value as lookup_metric
from pbtlab.nested import get_path
from pbtlab.rundir.reader import RunDir
from pbtlab.rundir.store import EVENTS_FILE, EXPERIMENT_FILE
from pbtlab.rundir.tail import DamagedLine, FileTail, read_json_file
from pbtlab.serve.runs import DEFAULT_STALE_SECONDS, finite, fold_status, run_state

__all__ = ["jsonable", "LiveView", "LiveViews", "SNAPSHOT_EVENTS", "SnapshotReaders", "to_json"]

#: Events sent with the first page; older ones are fetched when the log is filtered.
SNAPSHOT_EVENTS = 300


def to_json(value: Any) -> str:
    """Compact JSON a browser can parse: NaN and infinities (rare: a diverged metric) become strings."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(jsonable(value), separators=(",", ":"), allow_nan=False)


def jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities as the strings "NaN", "Infinity", "-Infinity" (browsers reject them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else ("NaN" if math.isnan(value) else
                                                   ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class LiveView:
    """Follows one experiment directory for one client: ``snapshot()`` once, then ``poll()`` on a timer.

    ``poll`` stats the files and reads only bytes appended since the last call; a half-written last
    line is left for a later poll. It returns None when nothing changed.
    """

    def __init__(self, experiment_dir: str, stale_after: float = DEFAULT_STALE_SECONDS) -> None:
        self.experiment_dir = experiment_dir
        self.stale_after = stale_after
        self.id = secrets.token_urlsafe(12)
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.run = RunDir(experiment_dir, strict=False, experiment={})
        self.events = self.run.event_tail()
        self.tails: dict[str, FileTail] = {}
        self.trial_order: list[str] = []
        self.experiment: dict[str, Any] = {}
        self.metric: str | None = None
        self.param_columns: list[str] = []
        self.checkpoints: dict[str, tuple[Any, float | None]] = {}
        self.last_event: dict[str, Any] | None = None
        self.status: dict[str, Any] = {}
        self.pending: dict[str, int] = {}
        self.announced = 0
        self.deferred: dict[str, list[dict[str, Any]]] = {}
        self.all_events: list[dict[str, Any]] = []
        self.all_rows: dict[str, list[dict[str, Any]]] = {}
        self.all_damaged: list[str] = []
        self.initial: dict[str, dict[str, Any]] = {}
        self.waits: dict[str, int] = {}
        self._figures: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._best: tuple[tuple[Any, ...], dict[str | None, dict[str, Any]]] | None = None
        self._body: tuple[Any, dict[str, Any], str] | None = None

    # -- trials ------------------------------------------------------------------------------------------
    def _add_trial(self, trial_id: Any, problems: list[str]) -> None:
        trial_id = str(trial_id)
        if trial_id in self.tails or trial_id in self.trial_order:
            return
        tail = self.run.row_tail(trial_id)
        if tail is None:
            problems.append(f"trial {trial_id!r}'s folder {self.run.dirname(trial_id)!r} is not a "
                            "folder inside the experiment; not read")
            return
        self.trial_order.append(trial_id)
        self.tails[trial_id] = tail

    def _register(self, trial_id: str, row: dict[str, Any]) -> None:
        """Remember a checkpointed row's (iteration, metric): a later restart from it starts its curve there."""
        checkpoint = row.get("checkpoint_dir_name")
        if isinstance(checkpoint, str):
            metric_value = finite(lookup_metric(row, self.metric)) if self.metric else None
            key = f"{self.run.dirname(trial_id)}/{checkpoint}"  # as events name it: the trial's folder first
            self.checkpoints[key] = (row.get("training_iteration"), metric_value)

    def _ready(self, trial_id: str, rows: list[dict[str, Any]]) -> int:
        """How many of a trial's new rows can be sent: a restart whose cloned checkpoint was not read yet (the
        donor's file is read later than the target's during one flush) waits for the next poll, a few at most."""
        for index, row in enumerate(rows):
            restored = row.get("restored_from")
            if isinstance(restored, dict) and isinstance(restored.get("checkpoint"), str) \
                    and restored["checkpoint"].replace(os.sep, "/") not in self.checkpoints:
                waited = self.waits.get(trial_id, 0)
                if waited < 3:
                    self.waits[trial_id] = waited + 1
                    return index
        self.waits.pop(trial_id, None)
        return len(rows)

    def _slim(self, trial_id: str, row: dict[str, Any]) -> dict[str, Any]:
        """The fields the page needs from a result row; a restart also carries the cloned checkpoint's point
        (rows read together are registered first, as a donor's checkpoint may come later in the same read)."""
        iteration = row.get("training_iteration")
        metric_value = finite(lookup_metric(row, self.metric)) if self.metric else None
        checkpoint = row.get("checkpoint_dir_name")
        restored = row.get("restored_from") if isinstance(row.get("restored_from"), dict) else None
        clone = None
        if restored and isinstance(restored.get("checkpoint"), str):
            found = self.checkpoints.get(restored["checkpoint"].replace(os.sep, "/"))
            if found is not None and found[1] is not None:
                clone = [found[0], found[1]]
        config = row.get("config") if isinstance(row.get("config"), dict) else {}
        return {"t": trial_id, "i": iteration, "m": metric_value,
                "c": {p: get_path(config, p) for p in self.param_columns},
                "r": restored, "cp": clone, "k": checkpoint if isinstance(checkpoint, str) else None}

    # -- first page ----------------------------------------------------------------------------------------
    def _read_all(self, tail: FileTail) -> tuple[list[dict[str, Any]], list[DamagedLine], bool]:
        """Every complete record appended to ``tail`` since its offset (in chunks); ``True`` if the file shrank."""
        records: list[dict[str, Any]] = []
        damaged: list[DamagedLine] = []
        while True:
            part = tail.read()
            if part.reset:
                return records, damaged, True
            records.extend(part.records)
            damaged.extend(part.damaged)
            self.pending[tail.label] = part.pending_bytes
            if not part.records and not part.damaged:
                return records, damaged, False

    def _forget(self) -> None:
        """Start over from byte 0 (a file shrank: a resumed run truncated what followed its saved state)."""
        self.events = FileTail(self.events.path)
        self.tails = {}
        self.trial_order = []
        self.checkpoints = {}
        self.pending = {}
        self.all_events, self.all_rows, self.all_damaged = [], {}, []

    def read_run(self) -> tuple[Any, list[str], dict[str, str]]:
        """Everything on disk as ``(RunData or None, problems, trial statuses)``, reading only what was appended
        since the previous call (the server keeps one such reader per experiment for first pages).

        Byte offsets are kept, so ``poll`` (or a ``fork``) continues from here.
        """
        from pbtlab.analysis.lineage import RunData, TrialRecord

        problems: list[str] = []
        experiment, problem = read_json_file(os.path.join(self.experiment_dir, EXPERIMENT_FILE))
        if problem or not isinstance(experiment, dict):
            return None, [problem or "experiment.json is not a JSON object"], {}
        self.experiment = experiment
        self.run = RunDir(self.experiment_dir, strict=False, experiment=experiment)
        self.metric = experiment.get("metric") if isinstance(experiment.get("metric"), str) else None
        columns = experiment.get("param_columns")
        self.param_columns = [str(c) for c in columns] if isinstance(columns, list) else []
        for attempt in range(2):
            for trial_id in experiment.get("trial_ids") or []:
                self._add_trial(trial_id, problems)
            events, damaged, reset = self._read_all(self.events)
            for event in events:
                if event.get("event") == "trial_add":
                    self._add_trial(event.get("trial_id"), problems)
            appended: dict[str, list[dict[str, Any]]] = {}
            for trial_id in self.trial_order:
                rows, bad, shrank = self._read_all(self.tails[trial_id])
                appended[trial_id] = rows
                damaged.extend(bad)
                reset = reset or shrank
            if not reset or attempt:
                break
            self._forget()
        self.all_events.extend(events)
        self.all_damaged.extend(d.describe() for d in damaged)
        for trial_id, rows in appended.items():
            for row in rows:
                self._register(trial_id, row)
            self.all_rows.setdefault(trial_id, []).extend(rows)
        if self.all_events:
            self.last_event = self.all_events[-1]
        statuses = {tid: "PENDING" for tid in self.trial_order}
        for event in self.all_events:
            fold_status(statuses, event)
        records = []
        for index, trial_id in enumerate(self.trial_order):
            rows = self.all_rows.get(trial_id, [])
            if trial_id not in self.initial:
                params = self.run.params(trial_id)
                if params is not None:
                    self.initial[trial_id] = params
            initial = self.initial.get(trial_id) or (rows[0].get("config") if rows else {}) or {}
            records.append(TrialRecord(trial_id, index, dict(initial), tuple(rows), statuses.get(trial_id, "")))
        problems.extend(self.all_damaged)
        return RunData(self.experiment_dir, experiment, tuple(records), tuple(self.all_events)), problems, statuses

    def fork(self) -> LiveView:
        """A view for one more client that continues from this view's offsets (copied, not shared)."""
        view = LiveView(self.experiment_dir, self.stale_after)
        with self.lock:
            view.events.offset, view.events.lines = self.events.offset, self.events.lines
            for trial_id in self.trial_order:
                tail = FileTail(self.tails[trial_id].path, self.tails[trial_id].label)
                tail.offset, tail.lines = self.tails[trial_id].offset, self.tails[trial_id].lines
                view.tails[trial_id] = tail
            view.trial_order = list(self.trial_order)
            view.experiment, view.metric, view.param_columns = self.experiment, self.metric, list(self.param_columns)
            view.checkpoints = dict(self.checkpoints)
            view.last_event, view.status, view.pending = self.last_event, dict(self.status), dict(self.pending)
            view.announced = len(self.trial_order)
        return view

    def snapshot(self) -> dict[str, Any]:
        """Everything the experiment page starts from, and the byte offsets the stream continues from."""
        head, body, _ = self.snapshot_parts()
        return {**head, **body}

    def snapshot_parts(self) -> tuple[dict[str, Any], dict[str, Any], str]:
        """The snapshot as ``(head, body, body as JSON)``: the head (view id, the run's state) is made on every
        call; the body is built and serialized once per state of the files, for every visitor."""
        with self.lock:
            run, problems, statuses = self.read_run()
            self.announced = len(self.trial_order)
            if run is None:
                return {"id": self.id, "fatal": problems[0]}, {}, "{}"
            self.status = run_state(self.experiment_dir, self.last_event, self.stale_after)
            head = {"id": self.id, "status": self.status}
            state = (self.files_state(), tuple(sorted(self.pending.items())))
            if self._body is not None and self._body[0] == state:
                return head, self._body[1], self._body[2]
            experiment, records, events = run.experiment, run.trials, run.events
            figures, problem = self.figures(run)
            if problem:
                problems.append(problem)
            counts: dict[str, int] = {}
            for event in events:
                counts[str(event.get("event"))] = counts.get(str(event.get("event")), 0) + 1
            trials = []
            for record in records:
                last = record.rows[-1] if record.rows else {}
                config = last.get("config") if isinstance(last.get("config"), dict) else record.initial_config
                trials.append({"id": record.trial_id, "index": record.index,
                               "status": statuses.get(record.trial_id, ""),
                               "iteration": last.get("training_iteration", 0),
                               "metric": finite(lookup_metric(last, self.metric)) if self.metric else None,
                               "config": {p: get_path(config, p) for p in self.param_columns}})
            body = {
                "experiment": experiment, "metric": self.metric, "mode": experiment.get("mode"),
                "param_columns": self.param_columns, "trials": trials, "figures": figures,
                "events": events[-SNAPSHOT_EVENTS:], "num_events": len(events), "event_counts": counts,
                "problems": problems, "incomplete": self._incomplete()}
            self._body = (state, body, to_json(body))
            return head, body, self._body[2]

    def files_state(self) -> tuple[Any, ...]:
        """What has been read of the run's files (byte offsets): equal states have equal figures."""
        return (self.events.offset, tuple((tid, self.tails[tid].offset) for tid in self.trial_order))

    def figures(self, run: Any) -> tuple[dict[str, Any] | None, str | None]:
        """The run's figures (``build_figures``) for what was read so far, built once per files' state and shared
        by every visitor this reader serves; ``(None, problem)`` if the files cannot be turned into figures."""
        from pbtlab.serve.figures import build_figures

        state = self.files_state()
        if self._figures is not None and self._figures[0] == state:
            return self._figures[1], None
        try:
            figures = build_figures(run)
        except Exception as error:  # noqa: BLE001 - a damaged log can break the lineage logic: show it
            return None, f"the figures could not be built from these files: {type(error).__name__}: {error}"
        self._figures = (state, figures)
        return figures, None

    def best(self, run: Any, trial: str | None) -> dict[str, Any]:
        """The page's ``/api/best`` answer for ``trial`` (None: the best trial): its schedule and, where the lineage
        is drawn as lanes, its ancestry; built once per files' state and trial, shared by every visitor."""
        from pbtlab.serve.figures import ancestry_traces, forms, schedule_figure

        state = self.files_state()
        if self._best is None or self._best[0] != state:
            self._best = (state, {})
        found = self._best[1].get(trial)
        if found is None:
            try:
                lanes = forms(run)["lineage"] == "lanes"  # the tree comes with the population's figures
                found = {"schedule": schedule_figure(run, trial),
                         "ancestry": ancestry_traces(run, trial) if lanes else []}
            except Exception as error:  # noqa: BLE001 - a damaged log: say so, keep serving
                found = {"error": f"{type(error).__name__}: {error}"}
            self._best[1][trial] = found
        return found

    def _incomplete(self) -> list[str]:
        return [f"{name}: the last line is not complete yet ({size} bytes)" for name, size in self.pending.items()
                if size]

    # -- updates ---------------------------------------------------------------------------------------------
    def poll(self) -> dict[str, Any] | None:
        """What was appended since the last call, as ``{"rows", "events", "status", "problems"}``; None if nothing.

        ``{"reset": True}`` when a file shrank (a resumed run truncates to its saved state): reload the page data.
        """
        with self.lock:
            self.last_used = time.monotonic()
            problems: list[str] = []
            chunk = self.events.read()
            if chunk.reset:
                return {"reset": True}
            events = chunk.records
            damaged = list(chunk.damaged)
            pending_before = dict(self.pending)
            self.pending[EVENTS_FILE] = chunk.pending_bytes
            for event in events:
                if event.get("event") == "trial_add":
                    self._add_trial(event.get("trial_id"), problems)
            read: dict[str, list[dict[str, Any]]] = {}
            for trial_id in self.trial_order:
                tail = self.tails[trial_id]
                part = tail.read()
                if part.reset:
                    return {"reset": True}
                damaged.extend(part.damaged)
                self.pending[tail.label] = part.pending_bytes
                for row in part.records:
                    self._register(trial_id, row)
                read[trial_id] = part.records
            appended: list[tuple[str, dict[str, Any]]] = []
            for trial_id in self.trial_order:
                new_rows = self.deferred.pop(trial_id, []) + read[trial_id]
                ready = self._ready(trial_id, new_rows)
                appended.extend((trial_id, row) for row in new_rows[:ready])
                if ready < len(new_rows):
                    self.deferred[trial_id] = new_rows[ready:]
            rows = [self._slim(trial_id, row) for trial_id, row in appended]
            if events:
                self.last_event = events[-1]
            status = run_state(self.experiment_dir, self.last_event, self.stale_after)
            status_changed = status["state"] != self.status.get("state")
            self.status = status
            problems.extend(d.describe() for d in damaged)
            pending_changed = {k: v for k, v in self.pending.items() if v} != \
                {k: v for k, v in pending_before.items() if v}
            if not (events or rows or problems or status_changed or pending_changed):
                return None
            delta: dict[str, Any] = {"rows": rows, "events": events, "status": status, "problems": problems,
                                     "new_trials": self.trial_order[self.announced:]}
            self.announced = len(self.trial_order)
            if pending_changed:
                delta["incomplete"] = self._incomplete()
            return delta


class LiveViews:
    """The open views, by id; views nobody polled for ``idle_seconds`` are dropped, at most ``limit`` kept."""

    def __init__(self, idle_seconds: float = 600.0, limit: int = 256) -> None:
        self.idle_seconds = idle_seconds
        self.limit = limit
        self._views: dict[str, LiveView] = {}
        self._lock = threading.Lock()

    def add(self, view: LiveView) -> None:
        with self._lock:
            now = time.monotonic()
            for key in [k for k, v in self._views.items() if now - v.last_used > self.idle_seconds]:
                del self._views[key]
            while len(self._views) >= self.limit:
                oldest = min(self._views, key=lambda k: self._views[k].last_used)
                del self._views[oldest]
            self._views[view.id] = view

    def get(self, view_id: str) -> LiveView | None:
        with self._lock:
            return self._views.get(view_id)


class SnapshotReaders:
    """One reader per experiment for first pages, so a second visitor reads only what was appended since.

    ``open(path)`` returns ``(snapshot payload, LiveView)``: the view continues exactly where the payload ends.
    At most ``limit`` experiments are kept (least recently opened dropped).
    """

    def __init__(self, stale_after: float = DEFAULT_STALE_SECONDS, limit: int = 8) -> None:
        self.stale_after = stale_after
        self.limit = limit
        self._readers: dict[str, tuple[LiveView, threading.Lock]] = {}
        self._lock = threading.Lock()

    def _reader(self, path: str) -> tuple[LiveView, threading.Lock]:
        with self._lock:
            entry = self._readers.pop(path, None) or (LiveView(path, self.stale_after), threading.Lock())
            self._readers[path] = entry  # most recent last
            while len(self._readers) > self.limit:
                self._readers.pop(next(iter(self._readers)))
            return entry

    def open(self, path: str) -> tuple[dict[str, Any], LiveView]:
        """The snapshot for a new visitor, and the view its stream follows."""
        text, view = self.open_json(path)
        return json.loads(text), view

    def open_json(self, path: str) -> tuple[str, LiveView]:
        """``open``, with the snapshot as JSON text: its body is serialized once per state of the run's files."""
        reader, lock = self._reader(path)
        with lock:
            head, body, text = reader.snapshot_parts()
            view = reader.fork()
        head = {**head, "id": view.id}
        return (to_json(head)[:-1] + "," + text[1:]) if body else to_json(head), view

    def warm(self, paths: list[str], stopping: threading.Event | None = None) -> None:
        """Read and build the snapshots of ``paths`` (at most ``limit``, in order) before anyone asks."""
        for path in paths[:self.limit]:
            if stopping is not None and stopping.is_set():
                return
            reader, lock = self._reader(path)
            with lock:
                reader.snapshot_parts()

    def run(self, path: str) -> tuple[Any, list[str], dict[str, str]]:
        """The experiment's current ``RunData`` (reading only what was appended)."""
        reader, lock = self._reader(path)
        with lock, reader.lock:
            return reader.read_run()

    def best(self, path: str, trial: str | None) -> dict[str, Any]:
        """``LiveView.best`` for the experiment's files now, or ``{"error"}``."""
        reader, lock = self._reader(path)
        with lock, reader.lock:
            run, problems, _ = reader.read_run()
            if run is None:
                return {"error": problems[0]}
            if trial is not None and trial not in run.trial_ids:
                return {"error": f"no trial {trial!r} in this experiment"}
            return reader.best(run, trial)

    def population(self, path: str) -> dict[str, Any]:
        """The figures the server rebuilds as a run grows (``population_figures``) for its files' current state,
        built once per state and shared by every visitor: ``{"figures": {...}, "state": n}`` or ``{"error"}``."""
        from pbtlab.serve.figures import forms

        reader, lock = self._reader(path)
        with lock, reader.lock:
            run, problems, _ = reader.read_run()
            if run is None:
                return {"error": problems[0]}
            figures, problem = reader.figures(run)
            if figures is None:
                return {"error": problem}
            shown = forms(run)
            names = ["founders", "hyperparameters"] + [name for name, form in shown.items()
                                                       if form in ("bands", "tree")]
            return {"figures": {name: figures[name] for name in names}, "rows": sum(
                len(rows) for rows in reader.all_rows.values()), "events": len(reader.all_events)}
