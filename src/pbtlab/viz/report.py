"""One self-contained HTML report of an experiment (opens offline: no scripts, no CDN, images embedded).

    >>> path = write_report("pbtlab_results/my_run")            # doctest: +SKIP
    >>> path = write_report(grid, "report.html", animation=False)  # doctest: +SKIP

Every name and value from the experiment is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime
import html
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pbtlab.analysis.events import describe_event
from pbtlab.analysis.events import format_field as _fmt
from pbtlab.analysis.lineage import RunData, ancestry, best_trial, hyperparameter_schedule, run_data
from pbtlab.errors import ConfigError, describe
from pbtlab.nested import get_path
from pbtlab.rundir.records import EventKind
from pbtlab.viz import _mpl
from pbtlab.viz._style import trial_colors, trial_labels
from pbtlab.viz.history import plot_metric_history
from pbtlab.viz.distributions import numeric_params, plot_hyperparameter_distributions
from pbtlab.viz.forms import choose_form
from pbtlab.viz.founders import draw_founder_shares, founder_shares
from pbtlab.viz.lineage import TUTORIAL_LANES, ancestry_tree, draw_ancestry_tree, draw_lineage, lineage, lineage_figsize
from pbtlab.viz.population import plot_population_hyperparameters
from pbtlab.viz.rungs import RUNG_KINDS, plot_rungs
from pbtlab.viz.schedule import draw_schedule
from pbtlab.viz.trajectories import plot_parameter_history
from pbtlab.viz.tutorial import has_toy_parameters, toy_labels

__all__ = ["final_table", "OPEN_EVENT_LOG", "REPORT_FIGURES", "report_html", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1280px;color:#222;
padding:0 16px}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top} th{background:#f3f3f3} tr.best td{background:#fff4d6;font-weight:600}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px} pre{white-space:pre-wrap;margin:0}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:13px;color:#555}
.muted{color:#666;font-size:13px} .kind-exploit{color:#8a4b00;font-weight:600} .kind-explore{color:#00588a}
nav a{margin-right:1em}
"""


#: Event logs up to this many events are shown open; longer ones in a closed <details> (opened on a click).
OPEN_EVENT_LOG = 2000


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape(value if isinstance(value, str) else _fmt(value), quote=True)


def _png(figure: Any, dpi: int = 90) -> str:
    return base64.b64encode(_mpl.png_bytes(figure, dpi=dpi)).decode("ascii")


#: The report's figures that a caller may hand over already rendered (``report_html(figures=...)``).
REPORT_FIGURES = ("parameter_history", "schedule", "population", "lineage")


def _rendered(figures: Mapping[str, bytes], key: str, draw: Callable[[], Any]) -> str:
    """The figure ``key`` as base64 PNG: the caller's bytes when given (drawn once, for a file and the
    report alike), else ``draw()`` rendered now."""
    data = figures.get(key)
    return base64.b64encode(data).decode("ascii") if data is not None else _png(draw())


def _figure_html(data: str, alt: str, caption: str, mime: str = "image/png") -> str:
    return (f'<figure><img src="data:{mime};base64,{data}" alt="{_e(alt)}"/>'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], row_classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for n, row in enumerate(rows):
        cls = f' class="{_e(row_classes[n])}"' if row_classes and row_classes[n] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _settings_rows(run: RunData) -> list[tuple[str, Any]]:
    experiment = run.experiment
    keys = ["name", "trainable", "seed", "metric", "mode", "num_samples", "stop", "max_failures", "executor",
            "created", "param_space", "scheduler"]
    rows = [(key, experiment[key]) for key in keys if key in experiment]
    rows += [(key, value) for key, value in experiment.items() if key not in keys and key not in ("trial_ids",)]
    return rows


def report_html(results: Any, animation: bool | str | os.PathLike[str] = True, colors: Sequence[Any] | None = None,
                labels: Sequence[str] | None = None, title: str | None = None, interactive: bool = True,
                figures: Mapping[str, bytes] | None = None) -> str:
    """The report as one HTML string (see ``write_report``)."""
    figures = _check_figures(figures)
    run = run_data(results)
    colors = trial_colors(run, colors)
    toy = has_toy_parameters(run)
    if labels is None:
        labels = toy_labels(run) if toy and all("h0" in t.initial_config for t in run.trials) else None
    labels = trial_labels(run, labels)
    name = run.experiment.get("name") or os.path.basename(run.path)
    metric, mode = run.metric, run.mode
    try:
        best = best_trial(run).trial_id
    except ConfigError:
        best = None
    counts: dict[str, int] = {}
    for event in run.events:
        counts[str(event.get("event"))] = counts.get(str(event.get("event")), 0) + 1

    heading = _e(title or f"pbtlab report: {name}")
    written = _e(datetime.datetime.now().isoformat(timespec="seconds"))
    parts = [
        ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"/>'
         '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
         f"<title>{heading}</title><style>{_CSS}</style></head><body>"),
        f"<h1>{heading}</h1>",
        (f'<p class="muted">Experiment directory <code>{_e(run.path)}</code> · {len(run.trials)} trials · '
         f"{len(run.events)} events · report written {written}</p>"),
        ('<nav><a href="#settings">Settings</a><a href="#final">Final table</a>'
         + ('<a href="#interactive">Interactive plots</a>' if interactive else '') + '<a href="#figures">Figures</a>'
         '<a href="#lineage">Lineage</a><a href="#events">Event log</a></nav>'),
    ]

    parts.append("<h2 id=\"settings\">Settings</h2>")
    parts.append(_table(["setting", "value"], [(k, v) for k, v in _settings_rows(run)]))
    parts.append(f"<p class=\"muted\">Events: {_e(', '.join(f'{k} {v}' for k, v in sorted(counts.items())))}</p>")

    parts.append("<h2 id=\"final\">Final table</h2>")
    table = final_table(run)
    header = list(table[0]) if table else ["trial_id"]
    header_with_label = ["", *header, "start config"]
    rows, classes = [], []
    for entry, label in zip(table, labels):
        is_best = entry["trial_id"] == best
        rows.append(["★" if is_best else "", *[entry.get(h) for h in header], label])
        classes.append("best" if is_best else "")
    parts.append(_table(header_with_label, rows, classes))
    if best is not None:
        parts.append(f"<p class=\"muted\">★ best final trial by {_e(metric)} ({_e(mode)}).</p>")

    if interactive:
        from pbtlab.serve.figures import interactive_html

        parts.append("<h2 id=\"interactive\">Interactive plots</h2>")
        parts.append("<p class=\"muted\">Hover for values, drag to zoom, double-click to reset; the same plots as "
                     "<code>pbtlab serve</code>. They work offline: plotly.js is inside this file.</p>")
        parts.append(interactive_html(run))
    parts.append("<h2 id=\"figures\">Figures</h2>")
    if toy:
        def parameter_figure() -> Any:
            figure = _mpl.new_figure(figsize=(13, 6))
            ax_left, ax_right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
            plot_parameter_history(run, colors, labels, fig=figure, ax=ax_left)
            plot_metric_history(run, metric or "Q", colors, labels, ax=ax_right)
            return figure

        parts.append(_figure_html(_rendered(figures, "parameter_history", parameter_figure), "parameter history",
                                  "Left: each trial's parameters over the true reward's contours; dashed arrows are "
                                  "exploits from the event log (from the point before the jump to the cloned point), "
                                  "numbers are iterations where the scheduler decided. Right: the metric per trial "
                                  "against training iteration (dotted: jumps at exploits)."))
        if animation is True and choose_form("metric", len(run.trials)) != "lines":
            animation = False  # hundreds of moving trajectories: slow to render, and nothing to follow in them
            parts.append(f"<p class=\"muted\">No animation for {len(run.trials)} trials (write_report(..., "
                         "animation=PATH) embeds a GIF you made).</p>")
        if animation is True:
            with tempfile.TemporaryDirectory() as scratch:
                from pbtlab.viz.animation import make_animation

                made = make_animation(run, colors, labels, filename=os.path.join(scratch, "animation.gif"), dpi=70)
                with open(made.path, "rb") as handle:
                    gif = base64.b64encode(handle.read()).decode("ascii")
        elif animation:
            with open(os.fspath(animation), "rb") as handle:
                gif = base64.b64encode(handle.read()).decode("ascii")
        if animation:
            parts.append(_figure_html(gif, "animation", "Animation of the parameter history: one frame per "
                                      "reported step, the last included.", mime="image/gif"))
    elif metric:
        figure = _mpl.new_figure(figsize=(10, 5))
        plot_metric_history(run, metric, colors, labels, ax=figure.add_subplot())
        parts.append(_figure_html(_png(figure), f"{metric} history",
                                  f"{metric} per trial against training iteration (dotted: jumps at exploits)."))

    if run.events_of(*RUNG_KINDS):
        parts.append(_figure_html(_png(plot_rungs(run, colors)), "rungs",
                                  "Successive halving: each trial's metric against the scheduler's time attribute, "
                                  "one panel per bracket. Dashed lines are rungs (with how many went on or were "
                                  "stopped there), rings promotions, crosses stops, orange bars each rung's cutoff "
                                  "at its last decision; grey trials were stopped early."))

    params = run.param_columns
    if params and best is not None:
        def schedule_figure() -> Any:
            schedule = hyperparameter_schedule(run)
            figure = _mpl.new_figure(figsize=(10, 0.6 + 2.0 * len(schedule.params)))
            axes = figure.subplots(len(schedule.params), 1, sharex=True, squeeze=False)[:, 0]
            draw_schedule(list(axes), run, schedule, colors)
            return figure

        def population_figure() -> Any:
            figure = _mpl.new_figure(figsize=(10, 0.6 + 2.0 * len(params)))
            axes = figure.subplots(len(params), 1, sharex=True, squeeze=False)[:, 0]
            plot_population_hyperparameters(run, colors=colors, labels=labels, axes=list(axes))
            return figure

        parts.append(_figure_html(_rendered(figures, "schedule", schedule_figure),
                                  "hyperparameter schedule of the best trial",
                                  f"The hyperparameters trial {best}'s final state was trained with, stitched across "
                                  "the trials it descends from (colour: the trial that ran each stretch; dashed: "
                                  "exploits in its ancestry)."))
        if choose_form("hyperparameters", len(run.trials)) == "lines":
            parts.append(_figure_html(_rendered(figures, "population", population_figure),
                                      "population hyperparameters",
                                      "Every trial's hyperparameters over time; the dashed line is the best trial's "
                                      "schedule."))
    parts.extend(_population_section(run))

    parts.append("<h2 id=\"lineage\">Lineage</h2>")
    tree = lineage(run) if best is not None else lineage(run, 0) if run.trials else None
    if tree is not None and choose_form("lineage", len(run.trials)) == "tree":
        figure = _mpl.new_figure(figsize=lineage_figsize(len(run.trials), "tree"), layout="constrained")
        draw_ancestry_tree(figure.add_subplot(), ancestry_tree(run, best), metric)
        parts.append(_figure_html(_png(figure), "ancestry tree of the final population",
                                  "Every final trial's weights followed back through the checkpoints they were "
                                  "cloned from, to the trial that trained them from scratch (coloured by that "
                                  "founder); top: how many distinct ancestors the final population has at each "
                                  "iteration. Highlighted: the best final trial's ancestry."))
    elif tree is not None:
        def lineage_figure() -> Any:
            figure = _mpl.new_figure(figsize=lineage_figsize(len(run.trials)),
                                     layout="constrained" if len(run.trials) > TUTORIAL_LANES else None)
            draw_lineage(figure.add_subplot(), tree, colors, labels, metric)
            return figure

        parts.append(_figure_html(_rendered(figures, "lineage", lineage_figure), "lineage",
                                  "One lane per trial; an arrow for each exploit from the donor (at the cloned "
                                  "checkpoint's iteration) to the target; highlighted: the best final trial's "
                                  "ancestry."))
    if best is not None:
        exploit_by_seq = {e["seq"]: e for e in run.events_of(EventKind.EXPLOIT)}
        span_rows: list[tuple[str, int, int, str]] = []
        for span in ancestry(run, best):
            exploit = exploit_by_seq.get(span.entered_by) if span.entered_by is not None else None
            if exploit is not None:
                how = (f"exploit #{exploit['seq']}: cloned {exploit['donor']}'s checkpoint of iteration "
                       f"{exploit['donor_iteration']} (score {_fmt(exploit['donor_score'])} vs "
                       f"{_fmt(exploit['target_score'])})")
            else:
                how = "original start" if span.entered_by is None else f"restart #{span.entered_by}"
            span_rows.append((span.trial_id, span.start_iteration, span.end_iteration, how))
        parts.append(f"<p>Ancestry of the best final trial <b>{_e(best)}</b>, oldest first:</p>")
        parts.append(_table(["trained by", "from iteration", "to iteration", "how it got there"], span_rows))
    edges = tree.edges if tree is not None else ()
    parts.append(f"<details><summary>All {len(edges)} exploit edges (donor → target)</summary>")
    parts.append(_table(["event", "donor", "donor iteration", "target", "target iteration", "checkpoint"],
                        [(f"#{e.seq}", e.donor, e.donor_iteration, e.target, e.target_iteration, e.checkpoint)
                         for e in edges]))
    parts.append("</details>")

    parts.append("<h2 id=\"events\">Event log</h2>")
    event_rows = []
    for event in run.events:
        event_rows.append((event.get("seq"), event.get("event"), event.get("trial_id", ""), describe_event(event)))
    head = "".join(f"<th>{h}</th>" for h in ("seq", "event", "trial", "details"))
    body = "".join(
        f"<tr><td>{_e(seq)}</td><td class=\"kind-{_e(kind)}\">{_e(kind)}</td><td>{_e(trial)}</td>"
        f"<td><pre>{_e(details)}</pre></td></tr>" for seq, kind, trial, details in event_rows)
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if len(event_rows) <= OPEN_EVENT_LOG:
        parts.append(table_html)
    else:  # a closed <details> is not laid out until opened: a long log does not slow the page down
        parts.append(f"<details><summary>All {len(event_rows)} events (open to show)</summary>{table_html}</details>")
    parts.append("<p class=\"muted\">Written by pbtlab. This file is self-contained: it loads nothing from the "
                 "network" + (" (its only scripts are plotly.js and the plots, inlined)" if interactive else
                              ", and has no scripts") + ".</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _check_figures(figures: Mapping[str, bytes] | None) -> Mapping[str, bytes]:
    if figures is None:
        return {}
    if not isinstance(figures, Mapping):
        raise ConfigError(f"figures must be a dict of figure name -> PNG bytes, got {describe(figures)}")
    for key, data in figures.items():
        if key not in REPORT_FIGURES:
            raise ConfigError(f"figures has an unknown figure {key!r}; the report's figures are {list(REPORT_FIGURES)}")
        if not isinstance(data, bytes) or not data.startswith(b"\x89PNG"):
            raise ConfigError(f"figures[{key!r}] must be PNG bytes (from pbtlab.viz._mpl.png_bytes), "
                              f"got {describe(data)}")
    return figures


def _population_section(run: RunData) -> list[str]:
    """The population views: founder shares, and above 16 trials the hyperparameters' quantile bands."""
    if not run.trials or not any(t.rows for t in run.trials):
        return []
    parts = ["<h3 id=\"population\">The population</h3>"]
    figure = _mpl.new_figure(figsize=(10, 4.5), layout="constrained")
    draw_founder_shares(figure.add_subplot(), founder_shares(run))
    parts.append(_figure_html(_png(figure), "founder share over time",
                              "At each iteration, the share of the population whose weights descend from each "
                              "original trial (its founder), followed through every exploit's cloned checkpoint."))
    names = numeric_params(run)
    if names and choose_form("hyperparameters", len(run.trials)) != "lines":
        figure = _mpl.new_figure(figsize=(10, 0.8 + 2.0 * len(names)), layout="constrained")
        axes = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
        plot_hyperparameter_distributions(run, names, form="bands", axes=list(axes))
        parts.append(_figure_html(_png(figure), "hyperparameter distributions",
                                  "Each hyperparameter over the population: the bands hold 90% and 50% of the "
                                  "trials, the line is the median; dashed: the schedule the best final trial's "
                                  "weights were trained with."))
    return parts


def final_table(run: RunData) -> list[dict[str, Any]]:
    """One row per trial: id, status, last iteration, final hyperparameters and last metric value."""
    table = []
    for trial in run.trials:
        row = trial.final_row
        entry: dict[str, Any] = {"trial_id": trial.trial_id, "status": trial.status,
                                 "iterations": row.get("training_iteration", 0)}
        for p in run.param_columns:
            entry[p] = get_path(row.get("config") or trial.initial_config, p)
        if run.metric:
            entry[run.metric] = row.get(run.metric)
        table.append(entry)
    return table


def write_report(results: Any, output: str | os.PathLike[str] | None = None,
                 animation: bool | str | os.PathLike[str] = True,
                 colors: Sequence[Any] | None = None, labels: Sequence[str] | None = None,
                 interactive: bool = True, figures: Mapping[str, bytes] | None = None) -> str:
    """Write the experiment's HTML report: settings, final table, interactive plots (Plotly, inlined; skip
    them with ``interactive=False`` for a file with no scripts), figures (and the animation for the toy
    problem: rendered when ``animation`` is True, or an existing GIF's path), lineage and event log.
    ``output`` defaults to ``<run dir>/report.html``. ``figures`` (name in ``REPORT_FIGURES`` -> PNG
    bytes) embeds figures already rendered for files instead of drawing them again. Returns the path written.

        >>> write_report("pbtlab_results/my_run", "my_run.html")  # doctest: +SKIP
    """
    if not isinstance(animation, (bool, str, os.PathLike)):
        raise ConfigError(f"animation must be True, False or the path of a GIF to embed, got {describe(animation)}")
    if not isinstance(animation, bool) and not os.path.isfile(animation):
        raise ConfigError(f"animation must be True, False or the path of an existing GIF, got {os.fspath(animation)!r}")
    run = run_data(results)
    if output is None:  # a Ray Tune directory is only read: its report goes to the current folder
        output = f"{run.experiment['name']}_report.html" if run.experiment.get("source") == "ray" \
            else os.path.join(run.path, "report.html")
    if not isinstance(output, (str, os.PathLike)):
        raise ConfigError(f"output must be a file path ending in .html, got {describe(output)}")
    path = os.fspath(output)
    if not path.lower().endswith((".html", ".htm")):
        raise ConfigError(f"output must end in .html, got {path!r}")
    text = report_html(run, animation=animation, colors=colors, labels=labels, interactive=interactive,
                       figures=figures)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
