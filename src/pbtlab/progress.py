"""What a person sees while a run goes: Ray-style decision log lines and a status table.

On a terminal the table is redrawn in place with ``rich`` (the ``[cli]`` extra) when it is
installed; elsewhere (pipes, CI logs, notebooks) a plain-text table is printed now and then and
at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from pbtlab.metrics import metric_value
from pbtlab.nested import get_path
from pbtlab.rundir.records import AUTO_RESULT_FIELDS

__all__ = [
    "ensure_log_handler", "format_cell", "hidden_note", "logger", "MAX_ROWS", "metric_columns", "PbtlabLog",
    "render_plain", "shown_trials", "status_rows", "StatusReporter", "summarize_changes",
]

_DEBUG, _INFO, _WARNING, _ERROR = 10, 20, 30, 40  # logging's levels


class PbtlabLog:
    """pbtlab's log lines, as the standard logger named "pbtlab" would show them, without importing
    :mod:`logging` until something else in the process has (about 2 ms of a short script: the module, and the
    ``string`` module and regular expressions it brings).

    Once any code has imported :mod:`logging`, every line goes through ``logging.getLogger("pbtlab")``, and
    the application's configuration applies. Until then nothing can have configured it, so the logger would
    have either :func:`ensure_log_handler`'s handler (INFO and above to the standard error it found,
    ``%(message)s``) or no handler at all (WARNING and above, through logging's last-resort handler, to the
    standard error of the moment, also ``%(message)s``): this writes what those would write.

        >>> PbtlabLog().debug("not shown")
    """

    def __init__(self) -> None:
        self._show_info = False  # ensure_log_handler was asked for: INFO lines are shown
        self._installed = False  # ...and the handler it asked for is in logging's "pbtlab" logger
        self._stream: Any = None  # the standard error when it was asked for (as a StreamHandler keeps it)

    def debug(self, message: str, exc_info: bool = False) -> None:
        self._log(_DEBUG, message, exc_info)

    def info(self, message: str) -> None:
        self._log(_INFO, message)

    def warning(self, message: str) -> None:
        self._log(_WARNING, message)

    def error(self, message: str) -> None:
        self._log(_ERROR, message)

    def ensure_handler(self) -> None:
        """:func:`ensure_log_handler`."""
        if not self._show_info:
            self._show_info, self._stream = True, sys.stderr
        if "logging" in sys.modules:
            self._install()

    def _install(self) -> None:
        """Show pbtlab's INFO lines on stderr unless the application configured logging itself."""
        import logging

        self._installed = True
        logger = logging.getLogger("pbtlab")
        if logger.handlers or logging.getLogger().handlers:
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)
            return
        handler = logging.StreamHandler(self._stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False

    def _log(self, level: int, message: str, exc_info: bool = False) -> None:
        logging = sys.modules.get("logging")
        if logging is not None:
            if self._show_info and not self._installed:  # logging was imported after the handler was asked for
                self._install()
            logging.getLogger("pbtlab").log(level, message, exc_info=exc_info, stacklevel=3)
            return
        if level < (_INFO if self._show_info else _WARNING):
            return
        stream = self._stream if self._show_info else sys.stderr
        try:
            stream.write(f"{message}\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: logging's handler would not stop the run either
            pass


#: pbtlab's log (see :class:`PbtlabLog`): ``logger.info(...)``, ``logger.warning(...)``...
logger = PbtlabLog()


def ensure_log_handler() -> None:
    """Show pbtlab's INFO lines on stderr unless the application configured logging itself (in a process that
    never imported :mod:`logging`, without importing it)."""
    logger.ensure_handler()


def format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return ""
    return str(value)


def summarize_changes(changes: Sequence[Any]) -> str:
    """Ray's explore summary: one ``name : old --- (op) --> new`` line per hyperparameter."""
    lines = []
    for change in changes:
        arrow = f"--- ({change.op}) -->" if change.op else "----->"
        lines.append(f"{change.param} : {change.old} {arrow} {change.new}")
    return "\n".join(lines) if lines else "No hyperparameters mutated."


def status_rows(trials: Sequence[Any], param_columns: Sequence[str], metric_columns: Sequence[str]) -> list[list[str]]:
    rows = []
    for trial in trials:
        result = trial.last_result or {}
        row = [trial.trial_id, trial.status.value]
        row += [format_cell(get_path(trial.config, column)) for column in param_columns]
        row += [str(trial.iteration), f"{trial.time_total_s:.4g}"]
        row += [format_cell(metric_value(result, column)) for column in metric_columns]
        rows.append(row)
    return rows


#: Rows the status table shows at most, as Ray's ``CLIReporter(max_progress_rows=20)``; the rest are counted.
MAX_ROWS = 20


def shown_trials(trials: Sequence[Any], metric: str | None, mode: str | None, limit: int = MAX_ROWS) -> list[Any]:
    """The trials the status table lists: all of them up to ``limit``; past that, the ``limit`` best by
    ``metric`` (``mode`` "max" or "min"), best first, trials without a score last, ties in trial order.
    At 64 or 1,024 trials the question a table can answer is who leads.

        >>> from types import SimpleNamespace as T
        >>> trials = [T(trial_id=f"t{i}", last_result={"q": q}) for i, q in enumerate([3.0, 9.0, None, 5.0])]
        >>> [t.trial_id for t in shown_trials(trials, "q", "max", limit=2)]
        ['t1', 't3']
        >>> [t.trial_id for t in shown_trials(trials, "q", "min", limit=3)]
        ['t0', 't3', 't1']
    """
    if len(trials) <= limit:
        return list(trials)
    sign = -1.0 if mode == "max" else 1.0

    def rank(position: int) -> tuple[int, float, int]:
        value = metric_value(trials[position].last_result or {}, metric) if metric else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            return 0, sign * float(value), position
        return 1, 0.0, position

    return [trials[i] for i in sorted(range(len(trials)), key=rank)[:limit]]


def hidden_note(total: int, shown: int, metric: str | None, mode: str | None) -> str:
    """The line under a table that lists ``shown`` of ``total`` trials (empty when it lists them all)."""
    if total <= shown:
        return ""
    which = f"the {shown} best by {metric} ({mode})" if metric and mode else f"the first {shown}"
    return (f"... {total - shown} more trials not shown; listed: {which}. Every trial: "
            "ResultGrid.get_dataframe(), or `pbtlab report` on the run directory.")


def metric_columns(trials: Sequence[Any], metric: str | None, limit: int = 3) -> list[str]:
    columns: list[str] = [metric] if metric else []
    for trial in trials:
        for key, value in (trial.last_result or {}).items():
            if len(columns) >= limit:
                return columns
            if key in AUTO_RESULT_FIELDS or key in columns:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if key in trial.config:
                continue
            columns.append(key)
    return columns


def render_plain(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], footer: str = "") -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    if footer:
        lines.append(footer)
    return "\n".join(lines)


class StatusReporter:
    """Prints the status table: live on a terminal, every ``interval_s`` and at the end elsewhere."""

    def __init__(self, verbose: int, interval_s: float, stream: IO[str] | None = None) -> None:
        self.verbose = verbose
        self.interval_s = interval_s
        self.stream = stream or sys.stdout
        self._last = time.monotonic()
        self._live: Any = None
        is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if verbose >= 2 and is_tty:
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:
                pass
            else:
                self._live = Live(console=Console(file=self.stream), refresh_per_second=4, transient=False)
                self._live.start()

    def table(self, controller: Any) -> tuple[str, list[str], list[list[str]], str]:
        """The title, header, rows (at most :data:`MAX_ROWS`) and the line that counts the trials left out."""
        trials = controller.trials
        params = controller.param_columns
        metrics = metric_columns(trials, controller.metric)
        header = ["Trial name", "status", *params, "iter", "total time (s)", *metrics]
        title = f"== Status ==  {controller.scheduler.debug_string()}  |  {controller.status_counts()}"
        shown = shown_trials(trials, controller.metric, controller.mode)
        footer = hidden_note(len(trials), len(shown), controller.metric, controller.mode)
        return title, header, status_rows(shown, params, metrics), footer

    def update(self, controller: Any, force: bool = False) -> None:
        if self.verbose < 2:
            return
        now = time.monotonic()
        interval = 0.25 if self._live is not None else self.interval_s
        if not force and now - self._last < interval:
            return
        self._last = now
        title, header, rows, footer = self.table(controller)
        if self._live is not None:
            from rich import box
            from rich.table import Table

            table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                          caption=footer or None, caption_justify="left")
            for index, column in enumerate(header):
                # the trial name and status must stay readable; numbers may be shortened
                width = max([len(column), *(len(row[index]) for row in rows)]) if index < 2 else None
                table.add_column(column, no_wrap=True, min_width=width)
            for row in rows:
                table.add_row(*row)
            self._live.update(table)
        elif not force:
            print(render_plain(title, header, rows, footer), file=self.stream, flush=True)

    def close(self, controller: Any) -> None:
        if self._live is not None:
            self.update(controller, force=True)
            self._live.stop()
            self._live = None
            return
        if self.verbose >= 1:
            title, header, rows, footer = self.table(controller)
            print(render_plain(title, header, rows, footer), file=self.stream, flush=True)
