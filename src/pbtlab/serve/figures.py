"""Interactive Plotly figures of a run, as plain JSON (dicts and lists): no plotly import, no web stack.

The same figures serve ``pbtlab serve`` (the page extends them as rows and events are appended) and a
self-contained HTML report (``interactive_html`` inlines plotly.min.js from the ``plotly`` package).

    >>> from pbtlab.examples.runs import run_toy_pbt
    >>> from pbtlab.analysis.lineage import run_data
    >>> run = run_data(run_toy_pbt(population=2, seed=0, storage_path=getfixture("tmp_path")))
    >>> figures = build_figures(run)
    >>> sorted(figures), [t["meta"]["trial"] for t in figures["metric"]["data"][:2]]
    (['lineage', 'metric', 'schedule'], ['b6589_00000', 'b6589_00001'])

Trace layout (the page relies on it): ``metric`` has one trace per trial (in trial order, pieces separated
by ``None`` at every restart) and then one ``jumps`` trace; ``lineage`` has one lane trace per trial, then
``exploits``, ``ancestry`` and ``best``; ``schedule`` has one trace per hyperparameter.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from typing import Any

from pbtlab.analysis.lineage import (
    RunData,
    Schedule,
    ancestry,
    best_trial,
    hyperparameter_schedule,
    lineage_edges,
    trial_segments,
)
from pbtlab.errors import ConfigError
from pbtlab.viz._style import ANCESTRY_COLOR  # the best trial's ancestry: the same gold as the static plots
from pbtlab.viz.history import metric_history

#: Lane labels are trial ids up to this many trials; beyond, the axis shows trial numbers.
MAX_LABELLED_LANES = 40
_BASE_LAYOUT: dict[str, Any] = {"margin": {"l": 60, "r": 20, "t": 36, "b": 44}, "hovermode": "closest",
                                "showlegend": False, "font": {"size": 12}}


def plotly_text(value: Any) -> str:
    """Text for Plotly labels: Plotly reads a few HTML tags in labels, so ``<``, ``>`` and ``&`` are escaped."""
    return html.escape(str(value), quote=False)


def best_trial_id(run: RunData) -> str | None:
    try:
        return best_trial(run).trial_id
    except ConfigError:
        return None


def metric_figure(run: RunData) -> dict[str, Any]:
    """Each trial's metric over training iterations; a restart starts a new piece at the cloned checkpoint."""
    metric = run.metric
    traces: list[dict[str, Any]] = []
    jump_x: list[Any] = []
    jump_y: list[Any] = []
    lines = {line.trial_id: line for line in metric_history(run, metric)} if metric and _reports(run, metric) else {}
    for trial in run.trials:
        xs: list[Any] = []
        ys: list[Any] = []
        line = lines.get(trial.trial_id)
        for its, values in (line.pieces if line else ()):
            if xs:
                xs.append(None)
                ys.append(None)
            xs.extend(its)
            ys.extend(values)
        for (bx, by), (cx, cy) in (line.jumps if line else ()):
            jump_x.extend([bx, cx, None])
            jump_y.extend([by, cy, None])
        traces.append({"type": "scatter", "mode": "lines", "x": xs, "y": ys, "name": plotly_text(trial.trial_id),
                       "meta": {"trial": trial.trial_id}, "line": {"width": 1.5},
                       "hovertemplate": f"trial {plotly_text(trial.trial_id)}<br>iter %{{x}}<br>"
                                        f"{plotly_text(metric)} %{{y:.6g}}<extra></extra>"})
    traces.append({"type": "scatter", "mode": "lines", "x": jump_x, "y": jump_y, "name": "jumps",
                   "meta": {"trial": None}, "line": {"width": 1, "dash": "dot", "color": "#999"},
                   "hoverinfo": "skip"})
    layout = {**_BASE_LAYOUT, "title": {"text": f"{plotly_text(metric or 'metric')} per trial · breaks at exploits "
                                                "· dotted: jump to the cloned checkpoint", "font": {"size": 13}},
              "xaxis": {"title": {"text": "training iteration"}},
              "yaxis": {"title": {"text": plotly_text(metric or "")}, "zerolinecolor": "#e3e3e3"}}
    return {"data": traces, "layout": layout}


def _reports(run: RunData, metric: str) -> bool:
    return any(metric in row for trial in run.trials for row in trial.rows[:1])


def lineage_figure(run: RunData, best: str | None = None) -> dict[str, Any]:
    """One lane per trial (its trained stretches); one vertical arrow per exploit, at the cloned iteration,
    from the donor's lane to the target's; the best trial's ancestry in gold."""
    lane = {trial.trial_id: trial.index for trial in run.trials}
    traces: list[dict[str, Any]] = []
    for trial in run.trials:
        xs: list[Any] = []
        ys: list[Any] = []
        for segment in trial_segments(trial) if trial.rows else ():
            if xs:
                xs.append(None)
                ys.append(None)
            xs.extend([segment.start_iteration, segment.end_iteration])
            ys.extend([trial.index, trial.index])
        traces.append({"type": "scatter", "mode": "lines", "x": xs, "y": ys, "name": plotly_text(trial.trial_id),
                       "meta": {"trial": trial.trial_id}, "line": {"width": 6}, "opacity": 0.45,
                       "hovertemplate": f"trial {plotly_text(trial.trial_id)}<br>iter %{{x}}<extra></extra>"})
    ex: list[Any] = []
    ey: list[Any] = []
    texts: list[Any] = []
    for edge in lineage_edges(run):
        if edge.donor not in lane or edge.target not in lane:
            continue
        label = (f"{plotly_text(edge.target)} cloned {plotly_text(edge.donor)}'s checkpoint of iter "
                 f"{edge.donor_iteration} at iter {edge.target_iteration}")
        ex.extend([edge.donor_iteration, edge.donor_iteration, None])
        ey.extend([lane[edge.donor], lane[edge.target], None])
        texts.extend([label, label, None])
    traces.append({"type": "scatter", "mode": "lines+markers", "x": ex, "y": ey, "text": texts, "name": "exploits",
                   "meta": {"trial": None}, "line": {"width": 1, "color": "#777"},
                   "marker": {"symbol": "arrow", "angleref": "previous", "size": 9, "color": "#777"},
                   "hovertemplate": "%{text}<extra></extra>"})
    traces.extend(ancestry_traces(run, best))
    widest = max((len(t.trial_id) for t in run.trials[:MAX_LABELLED_LANES]), default=4)
    layout = {**_BASE_LAYOUT, "margin": {"l": min(200, 16 + 7 * widest), "r": 20, "t": 36, "b": 44},
              "title": {"text": "arrows: donor → target · gold: the best trial's ancestry", "font": {"size": 13}},
              "xaxis": {"title": {"text": "training iteration"}},
              "yaxis": {"autorange": "reversed", "zeroline": False}}
    if len(run.trials) <= MAX_LABELLED_LANES:
        layout["yaxis"].update({"tickmode": "array", "tickvals": [t.index for t in run.trials],
                                "ticktext": [plotly_text(t.trial_id) for t in run.trials]})
    else:
        layout["yaxis"]["title"] = {"text": "trial number"}
    return {"data": traces, "layout": layout}


def ancestry_traces(run: RunData, best: str | None = None) -> list[dict[str, Any]]:
    """The ``ancestry`` and ``best`` traces of the lineage figure (empty when no trial can be ranked)."""
    best = best or best_trial_id(run)
    xs: list[Any] = []
    ys: list[Any] = []
    star: dict[str, list[Any]] = {"x": [], "y": []}
    if best is not None:
        lane = {trial.trial_id: trial.index for trial in run.trials}
        for span in ancestry(run, best):
            xs.extend([span.start_iteration, span.end_iteration, None])
            ys.extend([lane[span.trial_id], lane[span.trial_id], None])
        record = run.trial(best)
        if record.rows:
            star = {"x": [int(record.rows[-1].get("training_iteration", 0))], "y": [record.index]}
    return [{"type": "scatter", "mode": "lines", "x": xs, "y": ys, "name": "ancestry", "meta": {"trial": None},
             "line": {"width": 3, "color": ANCESTRY_COLOR}, "hoverinfo": "skip"},
            {"type": "scatter", "mode": "markers", **star, "name": "best", "meta": {"trial": best},
             "marker": {"symbol": "star", "size": 16, "color": ANCESTRY_COLOR, "line": {"width": 1, "color": "#000"}},
             "hovertemplate": f"best trial {plotly_text(best)}<extra></extra>"}]


def schedule_figure(run: RunData, trial: str | None = None) -> dict[str, Any]:
    """The hyperparameters the best (or given) trial's final weights were trained with, one panel each."""
    trial = trial or best_trial_id(run)
    schedule: Schedule | None = hyperparameter_schedule(run, trial) if trial is not None else None
    params = list(schedule.params) if schedule else run.tuned_params
    traces = []
    layout: dict[str, Any] = {**_BASE_LAYOUT, "margin": {"l": 70, "r": 20, "t": 36, "b": 44},
                              "title": {"text": f"trained by the best trial {plotly_text(trial)} and its ancestors"
                                        if trial else "no trial ranked yet", "font": {"size": 13}}}
    count = max(1, len(params))
    gap = 0.06
    height = (1.0 - gap * (count - 1)) / count
    for k, param in enumerate(params):
        axis = "" if k == 0 else str(k + 1)
        xs = list(schedule.iterations) if schedule else []
        ys = list(schedule.values[param]) if schedule else []
        owners = list(schedule.owners) if schedule else []
        traces.append({"type": "scatter", "mode": "lines", "x": xs, "y": ys, "name": plotly_text(param),
                       "customdata": [plotly_text(o) for o in owners], "meta": {"param": param},
                       "line": {"shape": "hv", "width": 2}, "xaxis": f"x{axis}", "yaxis": f"y{axis}",
                       "hovertemplate": f"{plotly_text(param)} = %{{y}}<br>iter %{{x}}, trained by trial "
                                        f"%{{customdata}}<extra></extra>"})
        top = 1.0 - k * (height + gap)
        layout[f"yaxis{axis}"] = {"title": {"text": plotly_text(param)}, "domain": [max(0.0, top - height), top],
                                  "zerolinecolor": "#e3e3e3"}
        layout[f"xaxis{axis}"] = {"anchor": f"y{axis}", "matches": "x" if k else None,
                                  "showticklabels": k == count - 1}
        if k == count - 1:
            layout[f"xaxis{axis}"]["title"] = {"text": "training iteration"}
    for key in list(layout):
        if key.startswith("xaxis") and layout[key].get("matches") is None:
            layout[key].pop("matches", None)
    shapes = []
    for iteration, _seq in (schedule.switches if schedule else ()):
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": iteration, "x1": iteration, "y0": 0,
                       "y1": 1, "line": {"dash": "dot", "width": 1, "color": ANCESTRY_COLOR}})
    layout["shapes"] = shapes
    return {"data": traces, "layout": layout, "meta": {"trial": trial}}


def build_figures(run: RunData) -> dict[str, dict[str, Any]]:
    """All figures of a run as Plotly JSON: ``{"metric": ..., "lineage": ..., "schedule": ...}``."""
    best = best_trial_id(run)
    return {"metric": metric_figure(run), "lineage": lineage_figure(run, best), "schedule": schedule_figure(run, best)}


def plotly_js_path() -> str:
    """The path of plotly.min.js inside the installed ``plotly`` package (in the ``[viz]`` and ``[serve]``
    extras); found without importing plotly."""
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise ImportError("interactive plots need the plotly package (its plotly.min.js): pip install 'pbtlab[viz]'")
    path = os.path.join(os.path.dirname(spec.origin), "package_data", "plotly.min.js")
    if not os.path.isfile(path):  # pragma: no cover - a broken plotly install
        raise ConfigError(f"plotly.min.js is missing from the installed plotly package (looked at {path})")
    return path


def interactive_html(run: RunData, names: Sequence[str] = ("metric", "lineage", "schedule"),
                     include_plotly: bool = True) -> str:
    """An HTML fragment with the run's interactive figures, working offline (for ``pbtlab report``).

    plotly.min.js (about 4.6 MB) is inlined once when ``include_plotly``; figure JSON is embedded with
    ``<`` escaped, so no value from the run can close the script element. ``run`` is a
    ``pbtlab.analysis.lineage.RunData`` (``run_data(path_or_grid)``).
    """
    figures = build_figures(run)
    unknown = [n for n in names if n not in figures]
    if unknown:
        raise ConfigError(f"names must be among {sorted(figures)}, got {unknown}")
    parts = []
    if include_plotly:
        with open(plotly_js_path(), encoding="utf-8") as handle:
            parts.append(f"<script>{handle.read()}</script>")
    for name in names:
        payload = json.dumps(figures[name]).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        parts.append(f'<div class="pbtlab-plot" id="pbtlab-{name}" style="height:420px"></div>'
                     f'<script>(function(){{var f={payload};Plotly.newPlot("pbtlab-{name}",f.data,f.layout,'
                     f'{{responsive:true,displaylogo:false}});}})();</script>')
    return "\n".join(parts)
