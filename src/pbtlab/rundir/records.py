"""The one schema of a run directory: event records, the experiment's settings and the saved run state.

Every module that writes ``events.jsonl``, ``experiment.json`` or ``state.json`` builds these classes,
and every module that reads them parses them back with :func:`event_from_dict`,
:meth:`ExperimentSpec.from_dict` and :meth:`RunState.from_dict`. The field tables in
``docs/architecture.md`` are generated from the classes here (:func:`schema_markdown`).

    >>> record = Exploit(seq=7, time=0.0, trial_id="t1", donor="t0", target_iteration=8, donor_iteration=8,
    ...                  checkpoint="t0/checkpoint_000001", target_score=0.2, donor_score=0.9,
    ...                  old_config={"lr": 0.1}, donor_config={"lr": 0.01}, target_tag="1", donor_tag="0",
    ...                  time_attr="training_iteration", time_value=8)
    >>> data = record.to_dict()
    >>> data["event"], data["donor"]
    ('exploit', 't0')
    >>> event_from_dict(data) == record
    True
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, ClassVar

from pbtlab import lazy_dataclass
from pbtlab.errors import ExperimentError

__all__ = [
    "AUTO_RESULT_FIELDS", "CheckpointDeleted", "CheckpointMissing", "CheckpointSaved", "DataGap", "Event",
    "event_from_dict", "EVENT_TYPES", "EventKind", "ExperimentEnd", "ExperimentResume", "ExperimentSpec",
    "ExperimentStart", "Exploit", "ExploitSkipped", "Explore", "ForcedStart", "FOREIGN_ONLY", "FORMAT_VERSION",
    "MedianStopped", "Note", "recovery_summary", "RungEvent", "RungPromoted", "RungReached", "RungStopped",
    "RunState", "schema_markdown", "TrialAdd", "TrialComplete", "TrialErrored", "TrialRestore", "TrialStart",
    "UnrankableScore",
]

#: Version of the run-directory layout; a reader refuses a state of another version.
FORMAT_VERSION = 1


#: Fields the engine adds to every result row (``result.jsonl``), besides what the trainable reported.
AUTO_RESULT_FIELDS = frozenset({
    "training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "trial_id", "iterations_since_restore",
    "time_since_restore", "done", "config", "checkpoint_dir_name", "date", "restored_from",
})


class EventKind(str, enum.Enum):
    """What an ``events.jsonl`` record says happened (its ``event`` field)."""

    EXPERIMENT_START = "experiment_start"
    TRIAL_ADD = "trial_add"
    TRIAL_START = "trial_start"
    TRIAL_RESTORE = "trial_restore"
    EXPLOIT = "exploit"
    EXPLORE = "explore"
    EXPLOIT_SKIPPED = "exploit_skipped"
    UNRANKABLE_SCORE = "unrankable_score"
    RUNG_REACHED = "rung_reached"
    RUNG_PROMOTED = "rung_promoted"
    RUNG_STOPPED = "rung_stopped"
    MEDIAN_STOPPED = "median_stopped"
    TRIAL_ERROR = "trial_error"
    TRIAL_COMPLETE = "trial_complete"
    CHECKPOINT_DELETED = "checkpoint_deleted"
    CHECKPOINT_MISSING = "checkpoint_missing"
    CHECKPOINT_SAVED = "checkpoint_saved"
    DATA_GAP = "data_gap"
    FORCED_START = "forced_start"
    EXPERIMENT_RESUME = "experiment_resume"
    EXPERIMENT_END = "experiment_end"

    def __str__(self) -> str:
        return self.value


#: Field metadata of provenance that only runs read from another tool have (left out of ``to_dict`` while None).
FOREIGN_ONLY = {"foreign_only": True}


# Every event class is immutable, slotted and keyword-only, made by :mod:`pbtlab.lazy_dataclass`: its ``repr``,
# ``==`` and ``hash`` are functions shared by all of them, and its ``__init__`` is compiled the first time the
# class is used. With :func:`dataclasses.dataclass`, Python 3.11 compiled its methods one ``exec`` each, most of
# the 17 ms this module took to import (6 ms now).


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every record has: ``seq`` (0, 1, 2, ... without gaps) and ``time`` (wall clock, seconds).

        >>> event = TrialComplete(seq=3, time=1.0, trial_id="t0", iteration=4, reason="function_returned",
        ...                       was_running=True)
        >>> event
        TrialComplete(seq=3, time=1.0, trial_id='t0', iteration=4, reason='function_returned', was_running=True)
        >>> event == event_from_dict(event.to_dict()), event == dataclasses.replace(event, seq=4)
        (True, False)
    """

    kind: ClassVar[EventKind]
    seq: int
    time: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``events.jsonl`` (``seq``, ``event``, ``time``, then the fields).

        A field marked :data:`FOREIGN_ONLY` is left out while it is None: it exists for runs read from another
        tool (where the record came from), and pbtlab's own runs never set it."""
        data: dict[str, Any] = {"seq": self.seq, "event": self.kind.value, "time": self.time}
        for name, foreign_only in _record_fields(type(self)):
            value = getattr(self, name)
            if value is None and foreign_only:
                continue
            data[name] = value
        return data


_RECORD_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _record_fields(kind: type) -> tuple[tuple[str, bool], ...]:
    """An event class's fields after ``seq`` and ``time``, as (name, foreign only), looked up once per class
    (``dataclasses.fields`` filters the class's fields at every call)."""
    fields = _RECORD_FIELDS.get(kind)
    if fields is None:
        fields = _RECORD_FIELDS[kind] = tuple((f.name, bool(f.metadata.get("foreign_only")))
                                              for f in dataclasses.fields(kind)[2:])
    return fields


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class ExperimentStart(Event):
    """First record: the run's name, seed, size, scheduler (as in experiment.json) and executor."""

    kind: ClassVar[EventKind] = EventKind.EXPERIMENT_START
    name: str
    seed: int | None
    num_trials: int
    scheduler: dict[str, Any] | None
    executor: str


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class TrialAdd(Event):
    """A trial joined with its starting config; ``tag`` is Ray's experiment tag (``0_h0=0.0000,...``)."""

    kind: ClassVar[EventKind] = EventKind.TRIAL_ADD
    trial_id: str
    config: dict[str, Any]
    tag: str


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class TrialStart(Event):
    """A (re)start; ``reason`` is None at first, else exploit / explore / failure / resume."""

    kind: ClassVar[EventKind] = EventKind.TRIAL_START
    trial_id: str
    config: dict[str, Any]
    iteration: int
    checkpoint: str | None
    reason: str | None


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class TrialRestore(Event):
    """The trial's state was replaced from ``checkpoint`` (owned by ``from_trial``), just before its start."""

    kind: ClassVar[EventKind] = EventKind.TRIAL_RESTORE
    trial_id: str
    checkpoint: str
    from_trial: str
    iteration: int
    reason: str | None


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class Exploit(Event):
    """``trial_id`` (the target) clones ``donor``'s checkpoint taken at ``donor_iteration``.

    Scores are sign-adjusted (negative in ``min`` mode), as Ray logs them. In a run read from Ray Tune,
    ``checkpoint``, ``old_config``, ``time_attr`` and ``time_value`` are None where Ray kept no value, and
    ``policy_log`` / ``policy_log_line`` name the row this exploit was read from."""

    kind: ClassVar[EventKind] = EventKind.EXPLOIT
    trial_id: str
    donor: str
    target_iteration: int
    target_tag: str
    donor_tag: str
    donor_iteration: int
    checkpoint: str | None
    target_score: float | None
    donor_score: float | None
    old_config: dict[str, Any] | None
    donor_config: dict[str, Any]
    time_attr: str | None
    time_value: float | None
    policy_log: str | None = dataclasses.field(default=None, metadata=FOREIGN_ONLY)
    policy_log_line: int | None = dataclasses.field(default=None, metadata=FOREIGN_ONLY)


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class Explore(Event):
    """The new config and how each hyperparameter changed: ``changes = [{param, old, op, new}]``.

    ``donor`` is None for explore-only; ``iteration`` is the checkpoint's, ``target_iteration`` the decision's."""

    kind: ClassVar[EventKind] = EventKind.EXPLORE
    trial_id: str
    donor: str | None
    iteration: int
    target_iteration: int
    changes: list[dict[str, Any]]
    new_config: dict[str, Any]


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class Note(Event):
    """Something the scheduler wants a person to see; the kinds below add their own fields."""

    trial_id: str
    message: str


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class ExploitSkipped(Note):
    """The chosen donor had no checkpoint; nothing was changed."""

    kind: ClassVar[EventKind] = EventKind.EXPLOIT_SKIPPED
    donor: str | None = None
    reason: str | None = None


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class UnrankableScore(Note):
    """NaN, ±inf or a non-numeric score: never a donor, ranked last."""

    kind: ClassVar[EventKind] = EventKind.UNRANKABLE_SCORE
    metric: str | None = None
    value: Any = None


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class RungEvent(Note):
    """A successive-halving decision (ASHA, HyperBand): the fields the rung kinds share."""

    scheduler: str
    bracket: int
    rung: int | None
    milestone: float | None
    time_attr: str
    time_value: float
    metric: str
    value: float | None
    cutoff: float | None
    num_compared: int


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class RungReached(RungEvent):
    """HyperBand paused ``trial_id`` at rung ``rung`` (``time_attr`` = ``milestone``) of ``bracket`` until the
    bracket's other ``num_compared`` live trials get there; ``value`` is its metric there."""

    kind: ClassVar[EventKind] = EventKind.RUNG_REACHED


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class RungPromoted(RungEvent):
    """``trial_id`` goes on past rung ``rung`` of ``bracket``: ``value`` is not below ``cutoff`` (the metric's own
    units; None: nothing to compare with), among ``num_compared`` trials recorded at the rung."""

    kind: ClassVar[EventKind] = EventKind.RUNG_PROMOTED


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class RungStopped(RungEvent):
    """``trial_id`` was stopped: ``reason`` "below_cutoff" (ASHA), "not_top" (HyperBand kept the best
    1/reduction_factor of the bracket) or "max_t" (reached ``max_t``, the ``milestone``; ASHA's ``rung`` is None)."""

    kind: ClassVar[EventKind] = EventKind.RUNG_STOPPED
    reason: str


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class MedianStopped(Note):
    """MedianStoppingRule: ``trial_id``'s best ``value`` by ``time_value`` is worse than ``median``, the median of
    ``num_compared`` other trials' running means; ``action`` "stop" (hard_stop) or "pause"."""

    kind: ClassVar[EventKind] = EventKind.MEDIAN_STOPPED
    time_attr: str
    time_value: float
    metric: str
    value: float
    median: float
    num_compared: int
    action: str


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class TrialErrored(Event):
    """The trainable raised; ``will_retry`` says whether FailureConfig restarts it."""

    kind: ClassVar[EventKind] = EventKind.TRIAL_ERROR
    trial_id: str
    iteration: int
    error_type: str
    message: str
    traceback: str
    num_failures: int
    will_retry: bool


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class TrialComplete(Event):
    """``reason``: stop_criterion, function_returned, scheduler, stop_all or time_budget."""

    kind: ClassVar[EventKind] = EventKind.TRIAL_COMPLETE
    trial_id: str
    iteration: int
    reason: str
    was_running: bool


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointDeleted(Event):
    """Retention (``CheckpointConfig(num_to_keep)``) retired a checkpoint no clone still needs."""

    kind: ClassVar[EventKind] = EventKind.CHECKPOINT_DELETED
    trial_id: str
    checkpoint: str
    iteration: int


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointMissing(Event):
    """The checkpoint to restart from was deleted outside pbtlab; ``fallback`` was used (None: scratch)."""

    kind: ClassVar[EventKind] = EventKind.CHECKPOINT_MISSING
    trial_id: str
    checkpoint: str
    fallback: str | None
    reason: str | None


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSaved(Event):
    """The engine asked a trial for a checkpoint outside its reports: ``reason`` "scheduler" (PBT needs a
    donor checkpoint), "end" (``checkpoint_at_end``) or "requested" (the result, or a callback, set
    ``should_checkpoint``)."""

    kind: ClassVar[EventKind] = EventKind.CHECKPOINT_SAVED
    trial_id: str
    checkpoint: str
    iteration: int
    reason: str


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class DataGap(Event):
    """A run read from another tool (Ray Tune) lost this information; ``what`` names it. Never invented."""

    kind: ClassVar[EventKind] = EventKind.DATA_GAP
    trial_id: str | None
    what: str
    message: str


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class ForcedStart(Event):
    """Nothing was eligible to run, so the least advanced trial was started rather than hang."""

    kind: ClassVar[EventKind] = EventKind.FORCED_START
    trial_id: str


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class ExperimentResume(Event):
    """After ``Tuner.restore``: ``dropped_rows`` counts, per trial, the rows written after the saved state."""

    kind: ClassVar[EventKind] = EventKind.EXPERIMENT_RESUME
    resumed_trials: list[str]
    state_saved_at: float | None
    dropped_rows: dict[str, int] | None
    events_kept: int | None


@lazy_dataclass.dataclass(frozen=True, slots=True, kw_only=True)
class ExperimentEnd(Event):
    """Last record: the scheduler's ``debug_string()`` and every trial's status."""

    kind: ClassVar[EventKind] = EventKind.EXPERIMENT_END
    scheduler: str
    statuses: dict[str, str]


EVENT_TYPES: dict[EventKind, type[Event]] = {
    cls.kind: cls for cls in (
        ExperimentStart, TrialAdd, TrialStart, TrialRestore, Exploit, Explore, ExploitSkipped, UnrankableScore,
        RungReached, RungPromoted, RungStopped, MedianStopped, TrialErrored, TrialComplete, CheckpointDeleted,
        CheckpointMissing, CheckpointSaved, DataGap, ForcedStart, ExperimentResume, ExperimentEnd)
}


def event_from_dict(data: Mapping[str, Any], where: str = "event record") -> Event:
    """Parse one ``events.jsonl`` object; a missing field or an unknown kind is an ``ExperimentError``.

    Fields the class does not know are ignored (written by a newer pbtlab).

        >>> event_from_dict({"seq": 0, "event": "forced_start", "time": 1.0, "trial_id": "t0"})
        ForcedStart(seq=0, time=1.0, trial_id='t0')
    """
    try:
        kind = EventKind(data.get("event"))
    except ValueError:
        raise ExperimentError(f"{where}: unknown event kind {data.get('event')!r}; "
                              f"known kinds are {[k.value for k in EventKind]}") from None
    cls = EVENT_TYPES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise ExperimentError(f"{where}: a {kind.value!r} record lacks {missing}")
    return cls(**{k: v for k, v in data.items() if k in names})


# -- experiment settings ----------------------------------------------------------------------------------


@lazy_dataclass.dataclass(slots=True, kw_only=True)
class ExperimentSpec:
    """``experiment.json``: every setting a resume needs to continue the run as it was started.

    Values that are not JSON (a stop function, callbacks, a callable in the search space) are kept as
    their ``repr`` (``not_stored``) and must be passed again to ``Tuner.restore``.
    """

    name: str
    trainable: str
    trainable_path: str | None
    seed: int
    metric: str | None
    mode: str | None
    num_samples: int
    param_space: Any
    scheduler: dict[str, Any]
    stop: Any
    max_failures: int
    fail_fast: bool | str
    num_to_keep: int | None
    executor: str
    param_columns: list[str]
    verbose: int | None
    max_concurrent_trials: int | None
    time_budget_s: float | None
    progress_interval_s: float
    state_save_period_s: float | None
    trial_ids: list[str]
    created: str
    trial_dirs: dict[str, str] = dataclasses.field(default_factory=dict)  # where a trial's folder is not its id
    #: ``tune.with_resources``: each trial's ``{"cpu": ..., "gpu": ...}`` (empty: the executor's default)
    trial_resources: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    log_to_file: Any = False  # RunConfig(log_to_file=...)
    #: every storable field of TuneConfig / RunConfig (with its CheckpointConfig and FailureConfig), as
    #: ``pbtlab.config.stored_config`` writes them; None in runs written before they were stored
    tune_config: dict[str, Any] | None = None
    run_config: dict[str, Any] | None = None
    #: settings that are not JSON (``"RunConfig.callbacks"`` -> what they were): a resume needs them again
    not_stored: dict[str, str] = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "experiment.json") -> ExperimentSpec:
        """Read back; settings added after a run was written take their defaults."""
        required = ("name", "seed", "scheduler", "trial_ids")
        missing = [k for k in required if k not in data]
        if missing:
            raise ExperimentError(f"{where} is not a pbtlab experiment.json (missing {missing})")
        defaults: dict[str, Any] = {
            "trainable": "trainable", "trainable_path": None, "metric": None, "mode": None, "num_samples": 1,
            "param_space": {}, "stop": None, "max_failures": 0, "fail_fast": False, "num_to_keep": None,
            "executor": "inprocess", "param_columns": [], "verbose": None, "max_concurrent_trials": None,
            "time_budget_s": None, "progress_interval_s": 5.0, "state_save_period_s": 1.0, "created": "",
            "trial_dirs": {}, "trial_resources": {}, "log_to_file": False,
            "tune_config": None, "run_config": None, "not_stored": {}, "format_version": FORMAT_VERSION,
        }
        names = {f.name for f in dataclasses.fields(cls)}
        values = {**defaults, **{k: v for k, v in data.items() if k in names}}
        return cls(**values)


# -- saved run state --------------------------------------------------------------------------------------


def recovery_summary(trials: list[dict[str, Any]], rows: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Each trial's recovery point in a few words: the checkpoint it restarts from (None: from scratch, or
    nothing left to run), its iteration, its rows kept and whether it finished.

        >>> recovery_summary([{"trial_id": "t0", "status": "RUNNING", "iteration": 6, "restart": None,
        ...                    "latest": {"path": "t0/checkpoint_000001", "iteration": 6}}], {"t0": 8})
        {'t0': {'checkpoint': 't0/checkpoint_000001', 'iteration': 6, 'rows': 8, 'finished': False}}
    """
    summary = {}
    for record in trials:
        restart = record.get("restart") or {}
        checkpoint = restart.get("checkpoint") if restart else record.get("latest")
        summary[str(record["trial_id"])] = {
            "checkpoint": checkpoint["path"] if checkpoint else None,
            "iteration": int(checkpoint["iteration"]) if checkpoint else int(record.get("iteration", 0)),
            "rows": int(rows.get(record["trial_id"], 0)),
            "finished": record.get("status") in ("TERMINATED", "ERROR"),
        }
    return summary


@lazy_dataclass.dataclass(slots=True, kw_only=True)
class RunState:
    """``state.json``: every trial at its *recovery point*, what a resume continues from.

    A trial is at a recovery point when nothing it did since needs more than what is on disk: right
    after a checkpoint is registered, when it finished, or when the scheduler decided its restart. Each
    trial has its own; a crash costs a trial only its work since its own point.

    ``trials`` are ``Trial.to_dict()`` records, each as at its recovery point; ``rows_written`` says how
    many lines of each trial's result.jsonl belong to its point (a resume drops the rest), and
    ``events_written`` how many lines of events.jsonl belong to the state. ``scheduler`` is the
    scheduler's ``state_dict()`` as at the save, not rewound per trial: it keeps every decision (each is
    its target's recovery point) and the last score it saw of each trial; a trial that re-runs reports
    them again (see ``docs/core.md``, "Recovery points"). ``recovery`` summarizes each trial's
    point (:func:`recovery_summary`). ``elapsed_s`` is the run time spent so far
    (``TuneConfig(time_budget_s)`` counts on from it).
    """

    trials: list[dict[str, Any]]
    scheduler: dict[str, Any]
    next_seq: int
    rows_written: dict[str, int]
    events_written: int
    saved_at: float
    elapsed_s: float = 0.0
    recovery: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "state.json") -> RunState:
        keys = ("trials", "scheduler", "rows_written", "events_written")
        if not isinstance(data, Mapping) or any(k not in data for k in keys):
            raise ExperimentError(f"{where} is not a pbtlab state.json (missing {list(keys)})")
        if data.get("format_version") != FORMAT_VERSION:
            raise ExperimentError(f"{where} has format version {data.get('format_version')!r}; "
                                  f"this pbtlab reads version {FORMAT_VERSION}")
        return cls(
            trials=list(data["trials"]), scheduler=dict(data["scheduler"]),
            next_seq=int(data.get("next_seq", data["events_written"])),
            rows_written={str(k): int(v) for k, v in data["rows_written"].items()},
            events_written=int(data["events_written"]), saved_at=float(data.get("saved_at") or 0.0),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
            recovery={str(k): dict(v) for k, v in (data.get("recovery") or {}).items()})


# -- documentation --------------------------------------------------------------------------------------


def schema_markdown() -> str:
    """The event table of ``docs/architecture.md``, generated from the classes above."""
    lines = ["| event | fields | meaning |", "|---|---|---|"]
    for kind, cls in EVENT_TYPES.items():
        fields = [f.name for f in dataclasses.fields(cls)[2:]]
        doc = " ".join((cls.__doc__ or "").split())
        lines.append(f"| `{kind.value}` | {', '.join(f'`{f}`' for f in fields)} | {doc} |")
    return "\n".join(lines)
