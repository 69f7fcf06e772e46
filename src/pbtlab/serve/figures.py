"""Interactive Plotly figures of a run, as plain JSON (dicts and lists): no plotly import, no web stack.

The same figures serve ``pbtlab serve`` (the page extends them as rows and events are appended) and a
self-contained HTML report (``interactive_html`` inlines plotly.js's basic bundle, shipped with pbtlab).

    >>> from pbtlab.examples.runs import run_toy_pbt
    >>> from pbtlab.analysis.lineage import run_data
    >>> run = run_data(run_toy_pbt(population=2, seed=0, storage_path=getfixture("tmp_path")))
    >>> figures = build_figures(run)
    >>> sorted(figures), [t["meta"]["trial"] for t in figures["metric"]["data"][:2]]
    (['founders', 'hyperparameters', 'lineage', 'metric', 'schedule'], ['b6589_00000', 'b6589_00001'])
    >>> figures["metric"]["meta"]["form"], figures["lineage"]["meta"]["form"]
    ('lines', 'lanes')

Each figure's ``meta.form`` says how it draws the population (``pbtlab.viz.forms``: by its size). Trace layout
(the page relies on it): ``metric`` in form "lines" has one trace per trial (in trial order, pieces separated by
``None`` at every restart) and then one ``jumps`` trace; in form "bands", quantile bands and the top trials.
``lineage`` in form "lanes" has one lane trace per trial, then ``exploits``, ``ancestry`` and ``best``; in form
"tree", the final population's ancestry tree. ``schedule`` has one trace per hyperparameter. ``founders`` (the
founder shares, stacked) and ``hyperparameters`` (quantile bands per hyperparameter) are rebuilt by the server
(``population_figures``) rather than extended by the page.
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
from pbtlab.viz.distributions import QuantileBands, hyperparameter_distributions
from pbtlab.viz.forms import choose_form
from pbtlab.viz.founders import FOUNDER_COLORS, OTHERS_COLOR, founder_shares
from pbtlab.viz.history import metric_distribution, metric_history, top_metric_lines
from pbtlab.viz.lineage import ancestry_tree

__all__ = [
    "ancestry_traces", "best_trial_id", "build_figures", "FIGURE_NAMES", "forms", "founders_figure",
    "hyperparameters_figure", "interactive_html", "lineage_figure", "lineage_tree_figure", "MAX_LABELLED_LANES",
    "metric_bands_figure", "metric_figure", "PLOTLY_BASIC", "PLOTLY_BASIC_SHA256", "plotly_js_path",
    "plotly_text", "population_figures", "rungs_figure", "schedule_figure",
]

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
    return {"data": traces, "layout": layout, "meta": {"form": "lines"}}


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
    return {"data": traces, "layout": layout, "meta": {"form": "lanes"}}


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


def forms(run: RunData) -> dict[str, str]:
    """How the metric and lineage figures draw this run's population (``pbtlab.viz.forms``, by its size)."""
    return {"metric": choose_form("metric", len(run.trials)), "lineage": choose_form("lineage", len(run.trials))}


def population_figures(run: RunData, best: str | None = None) -> dict[str, dict[str, Any]]:
    """The figures the server rebuilds as a run grows (the page does not extend them row by row): founder
    shares, hyperparameter bands, and the metric and lineage when their form is the population's."""
    best = best or best_trial_id(run)
    shown = forms(run)
    figures = {"founders": founders_figure(run), "hyperparameters": hyperparameters_figure(run, best)}
    if shown["metric"] == "bands":
        figures["metric"] = metric_bands_figure(run)
    if shown["lineage"] == "tree":
        figures["lineage"] = lineage_tree_figure(run, best)
    return figures


def build_figures(run: RunData) -> dict[str, dict[str, Any]]:
    """All figures of a run as Plotly JSON: ``{"metric", "lineage", "schedule", "founders", "hyperparameters"}``."""
    best = best_trial_id(run)
    shown = forms(run)
    figures = population_figures(run, best)
    if shown["metric"] == "lines":
        figures["metric"] = metric_figure(run)
    if shown["lineage"] == "lanes":
        figures["lineage"] = lineage_figure(run, best)
    figures["schedule"] = schedule_figure(run, best)
    return {name: figures[name] for name in FIGURE_NAMES}


#: Every figure of a run, in page order.
FIGURE_NAMES = ("metric", "founders", "lineage", "hyperparameters", "schedule")


# -- population views ---------------------------------------------------------------------------------------------
def _numbers(values: Any) -> list[Any]:
    """Floats for Plotly, with None (a gap) where there is no value."""
    return [None if v != v else round(float(v), 9) for v in values]


def _band_traces(bands: QuantileBands, axis: str = "", steps: bool = True, color: str = "59, 110, 168",
                 legend: bool = True) -> list[dict[str, Any]]:
    """The outer band, the inner band (each a lower edge and an upper edge filled down to it) and the median."""
    xs = list(bands.iterations)
    shape = "hv" if steps else "linear"
    levels, values = bands.levels, bands.values
    pairs = [(0, len(levels) - 1, 0.16)] + ([(1, 3, 0.34)] if len(levels) == 5 else [])
    traces: list[dict[str, Any]] = []
    for low, high, alpha in pairs:
        name = f"{levels[low]:.0%}–{levels[high]:.0%} of trials"
        common = {"type": "scatter", "mode": "lines", "x": xs, "xaxis": f"x{axis}", "yaxis": f"y{axis}",
                  "line": {"width": 0, "shape": shape}, "meta": {"band": name}, "legendgroup": name}
        traces.append({**common, "y": _numbers(values[low]), "name": name, "showlegend": False, "hoverinfo": "skip"})
        traces.append({**common, "y": _numbers(values[high]), "name": name, "fill": "tonexty",
                       "fillcolor": f"rgba({color}, {alpha})", "showlegend": legend,
                       "customdata": _numbers(values[low]),
                       "hovertemplate": f"{name}: %{{customdata:.4g}} – %{{y:.4g}}<br>iter %{{x}}<extra></extra>"})
    traces.append({"type": "scatter", "mode": "lines", "x": xs, "y": _numbers(values[len(levels) // 2]),
                   "xaxis": f"x{axis}", "yaxis": f"y{axis}", "name": "median", "showlegend": legend,
                   "legendgroup": "median", "line": {"width": 1.5, "shape": shape, "color": f"rgb({color})"},
                   "customdata": list(bands.counts), "meta": {"band": "median"},
                   "hovertemplate": "median %{y:.4g}<br>iter %{x} (%{customdata} trials)<extra></extra>"})
    return traces


def metric_bands_figure(run: RunData, top_k: int = 5) -> dict[str, Any]:
    """The population's metric as quantile bands, with the top ``top_k`` trials (by final value) as lines."""
    metric = run.metric
    layout = {**_BASE_LAYOUT, "showlegend": True, "legend": {"font": {"size": 10}},
              "xaxis": {"title": {"text": "training iteration"}},
              "yaxis": {"title": {"text": plotly_text(metric or "")}, "zerolinecolor": "#e3e3e3"}}
    if not metric or not _reports(run, metric):
        return {"data": [], "layout": {**layout, "title": {"text": "no metric reported yet", "font": {"size": 13}}},
                "meta": {"form": "bands"}}
    distribution = metric_distribution(run, metric, top_k)
    traces = _band_traces(distribution.bands, steps=False)
    lines = top_metric_lines(run, distribution)
    for n, trial_id in enumerate(distribution.top):
        xs: list[Any] = []
        ys: list[Any] = []
        for its, values in lines[trial_id].pieces:
            if xs:
                xs.append(None)
                ys.append(None)
            xs.extend(its)
            ys.extend(round(v, 9) for v in values)
        label = f"{'best' if n == 0 else f'#{n + 1}'} {plotly_text(trial_id)}"
        traces.append({"type": "scatter", "mode": "lines", "x": xs, "y": ys, "name": label,
                       "meta": {"trial": trial_id}, "line": {"width": 2.5 if n == 0 else 1.3,
                                                             "color": ANCESTRY_COLOR if n == 0 else None},
                       "hovertemplate": f"{label}<br>iter %{{x}}<br>{plotly_text(metric)} %{{y:.6g}}<extra></extra>"})
    layout["title"] = {"text": f"{plotly_text(metric)} of the {len(run.trials)} trials: quantile bands, top "
                               f"{len(distribution.top)} as lines", "font": {"size": 13}}
    return {"data": traces, "layout": layout, "meta": {"form": "bands", "top": list(distribution.top)}}


def founders_figure(run: RunData, max_founders: int = 12) -> dict[str, Any]:
    """Founder share over time, stacked (a Muller plot): the leading founders, then the others as one layer."""
    shares = founder_shares(run)
    xs = list(shares.iterations)
    leading = shares.leading(max_founders)
    rest = [k for k in range(len(shares.founders)) if k not in set(leading)]
    traces = []
    for n, k in enumerate(leading):
        founder = plotly_text(shares.founders[k])
        traces.append({"type": "scatter", "mode": "lines", "x": xs, "y": _numbers(shares.shares[:, k]),
                       "stackgroup": "founders", "name": founder, "meta": {"trial": shares.founders[k]},
                       "line": {"width": 0.5, "shape": "hv", "color": FOUNDER_COLORS[n % len(FOUNDER_COLORS)]},
                       "fillcolor": FOUNDER_COLORS[n % len(FOUNDER_COLORS)],
                       "customdata": [int(c) for c in shares.counts[:, k]],
                       "hovertemplate": f"founder {founder}: %{{y:.1%}} (%{{customdata}} trials)<br>iter %{{x}}"
                                        "<extra></extra>"})
    if rest:
        traces.append({"type": "scatter", "mode": "lines", "x": xs, "y": _numbers(shares.shares[:, rest].sum(axis=1)),
                       "stackgroup": "founders", "name": f"{len(rest)} others", "meta": {"trial": None},
                       "line": {"width": 0.5, "shape": "hv", "color": OTHERS_COLOR}, "fillcolor": OTHERS_COLOR,
                       "hovertemplate": f"{len(rest)} other founders: %{{y:.1%}}<br>iter %{{x}}<extra></extra>"})
    surviving = int((shares.counts[-1] > 0).sum()) if xs else 0
    layout = {**_BASE_LAYOUT, "showlegend": True, "legend": {"font": {"size": 10}, "traceorder": "normal"},
              "title": {"text": f"whose weights the population carries: {surviving} of {len(shares.founders)} "
                                "founders left" if xs else "no trial has reported yet", "font": {"size": 13}},
              "xaxis": {"title": {"text": "training iteration"}},
              "yaxis": {"title": {"text": "share of the population"}, "tickformat": ".0%", "range": [0, 1]}}
    return {"data": traces, "layout": layout, "meta": {"form": "shares"}}


def hyperparameters_figure(run: RunData, best: str | None = None) -> dict[str, Any]:
    """Each tuned numeric hyperparameter's quantile bands over the population, one panel each, with the best
    trial's schedule (gold, dashed)."""
    distributions = hyperparameter_distributions(run) if run.trials else {}
    schedule = None
    if best is not None and distributions:
        try:
            schedule = hyperparameter_schedule(run, best, list(distributions))
        except ConfigError:
            schedule = None
    traces: list[dict[str, Any]] = []
    layout: dict[str, Any] = {**_BASE_LAYOUT, "margin": {"l": 70, "r": 20, "t": 36, "b": 78}, "showlegend": True,
                              "legend": {"font": {"size": 10}, "orientation": "h", "y": -0.16, "yanchor": "top"},
                              "title": {"text": f"hyperparameters of the {len(run.trials)} trials: quantile bands"
                                        + (f", best trial {plotly_text(best)} dashed" if schedule else ""),
                                        "font": {"size": 13}}}
    count = max(1, len(distributions))
    gap = 0.08
    height = (1.0 - gap * (count - 1)) / count
    for k, (param, bands) in enumerate(distributions.items()):
        axis = "" if k == 0 else str(k + 1)
        traces.extend(_band_traces(bands, axis, steps=True, legend=k == 0))
        if schedule is not None:
            traces.append({"type": "scatter", "mode": "lines", "x": list(schedule.iterations),
                           "y": list(schedule.values[param]), "xaxis": f"x{axis}", "yaxis": f"y{axis}",
                           "name": f"best trial {plotly_text(best)}", "legendgroup": "best", "showlegend": k == 0,
                           "line": {"shape": "hv", "width": 2, "dash": "dash", "color": ANCESTRY_COLOR},
                           "meta": {"trial": best},
                           "hovertemplate": f"{plotly_text(param)} = %{{y}}<br>iter %{{x}}<extra></extra>"})
        top = 1.0 - k * (height + gap)
        layout[f"yaxis{axis}"] = {"title": {"text": plotly_text(param)}, "domain": [max(0.0, top - height), top],
                                  "type": "log" if bands.log_scale else "linear", "zerolinecolor": "#e3e3e3"}
        if bands.log_scale:
            layout[f"yaxis{axis}"]["dtick"] = 1  # one label per power of ten
        layout[f"xaxis{axis}"] = {"anchor": f"y{axis}", "showticklabels": k == count - 1}
        if k:
            layout[f"xaxis{axis}"]["matches"] = "x"
        if k == count - 1:
            layout[f"xaxis{axis}"]["title"] = {"text": "training iteration"}
    return {"data": traces, "layout": layout, "meta": {"form": "bands"}}


def lineage_tree_figure(run: RunData, best: str | None = None, max_founders: int = 12) -> dict[str, Any]:
    """The final population's ancestry tree: one row per final trial, stretches coloured by founder, a link
    at every branch, the best trial's ancestry in gold. Drawn as one trace per colour."""
    tree = ancestry_tree(run, best) if run.trials else None
    traces: list[dict[str, Any]] = []
    if tree is None or not tree.nodes:
        return {"data": [], "layout": {**_BASE_LAYOUT, "title": {"text": "no trial has reported yet"}},
                "meta": {"form": "tree"}}
    colour_of = {f: FOUNDER_COLORS[n % len(FOUNDER_COLORS)] for n, f in enumerate(tree.founders[:max_founders])}
    groups: dict[str, dict[str, list[Any]]] = {}
    for node in tree.nodes:
        color = colour_of.get(node.founder, "#999999")
        group = groups.setdefault(color, {"x": [], "y": [], "customdata": []})
        text = f"{plotly_text(node.trial_id)} (founder {plotly_text(node.founder)})"
        if node.parent is not None:
            parent_row = tree.nodes[node.parent].row
            group["x"].extend([node.start_iteration, node.start_iteration])
            group["y"].extend([parent_row, node.row])
            group["customdata"].extend([text, text])
        elif group["x"]:
            group["x"].append(None)
            group["y"].append(None)
            group["customdata"].append(None)
        group["x"].extend([node.start_iteration, node.end_iteration, None])
        group["y"].extend([node.row, node.row, None])
        group["customdata"].extend([text, text, None])
    width = max(1.0, min(3.0, 300.0 / max(1, len(tree.leaves))))
    for color, group in groups.items():
        founders = [f for f, c in colour_of.items() if c == color]
        traces.append({"type": "scatter", "mode": "lines", **group,
                       "name": f"founder {plotly_text(founders[0])}" if len(founders) == 1 else "other founders",
                       "meta": {"trial": None}, "line": {"width": width, "color": color},
                       "hovertemplate": "%{customdata}<br>iter %{x}<extra></extra>"})
    xs: list[Any] = []
    ys: list[Any] = []
    for k, n in enumerate(tree.best_path):
        node = tree.nodes[n]
        until = tree.nodes[tree.best_path[k + 1]].start_iteration if k + 1 < len(tree.best_path) \
            else node.end_iteration  # an ancestor counts up to where the path branched off it
        if node.parent is not None:
            xs.extend([node.start_iteration])
            ys.extend([tree.nodes[node.parent].row])
        xs.extend([node.start_iteration, until])
        ys.extend([node.row, node.row])
    traces.append({"type": "scatter", "mode": "lines", "x": xs, "y": ys, "name": "ancestry", "meta": {"trial": None},
                   "line": {"width": width + 1.5, "color": ANCESTRY_COLOR}, "hoverinfo": "skip"})
    if tree.best_path:
        leaf = tree.nodes[tree.best_path[-1]]
        traces.append({"type": "scatter", "mode": "markers", "x": [leaf.end_iteration], "y": [leaf.row],
                       "name": "best", "meta": {"trial": tree.best_trial},
                       "marker": {"symbol": "star", "size": 16, "color": ANCESTRY_COLOR,
                                  "line": {"width": 1, "color": "#000"}},
                       "hovertemplate": f"best trial {plotly_text(tree.best_trial)}<extra></extra>"})
    common_until = tree.common_ancestor_until
    summary = (f"the {len(tree.leaves)} final trials descend from {len(tree.founders)} founder"
               f"{'s' if len(tree.founders) != 1 else ''}"
               + (f", one common ancestor up to iter {common_until}" if common_until is not None else ""))
    layout = {**_BASE_LAYOUT, "showlegend": False,
              "title": {"text": f"ancestry of the final population: {summary}", "font": {"size": 13}},
              "xaxis": {"title": {"text": "training iteration"}},
              "yaxis": {"autorange": "reversed", "zeroline": False, "showticklabels": False,
                        "title": {"text": "final trials, related ones together"}}}
    return {"data": traces, "layout": layout,
            "meta": {"form": "tree", "lineages": [list(pair) for pair in tree.lineages]}}


#: plotly.js's "basic" bundle (scatter, bar, pie; MIT, v4.1.1 as the ``plotly`` package's full bundle), shipped
#: with pbtlab: it is evaluated in about a fifth of the full bundle's time, which decides how fast a page opens.
PLOTLY_BASIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "plotly-basic.min.js")
#: sha256 of ``plotly-basic.min.js`` from the npm package plotly.js-basic-dist-min 4.1.1 (scripts/fetch_plotly_basic.sh)
PLOTLY_BASIC_SHA256 = "99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba"


def plotly_js_path() -> str:
    """The path of the plotly.js bundle the page and the report use (the basic bundle shipped with pbtlab; every
    figure here is a ``scatter`` trace, so the full bundle's other trace types are not needed).

        >>> os.path.basename(plotly_js_path())
        'plotly-basic.min.js'
    """
    if not os.path.isfile(PLOTLY_BASIC):  # pragma: no cover - a broken install
        raise ConfigError(f"plotly-basic.min.js is missing from pbtlab's files (looked at {PLOTLY_BASIC})")
    return PLOTLY_BASIC


def interactive_html(run: RunData, names: Sequence[str] = FIGURE_NAMES, include_plotly: bool = True) -> str:
    """An HTML fragment with the run's interactive figures, working offline (for ``pbtlab report``).

    plotly.js's basic bundle (about 1.2 MB) is inlined once when ``include_plotly``; figure JSON is embedded with
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
        height = {"lineage": 560, "hyperparameters": 200 + 140 * len(run.tuned_params)}.get(name, 420)
        parts.append(f'<div class="pbtlab-plot" id="pbtlab-{name}" style="height:{height}px"></div>'
                     f'<script>(function(){{var f={payload};Plotly.newPlot("pbtlab-{name}",f.data,f.layout,'
                     f'{{responsive:true,displaylogo:false}});}})();</script>')
    return "\n".join(parts)


def rungs_figure(run: RunData, max_panels: int = 6) -> dict[str, Any]:
    """A successive-halving run rung by rung (``pbtlab.viz.rungs.rung_plot_data``, as Plotly JSON): one panel
    per bracket sharing the y axis; each trial's metric against the scheduler's time attribute (grey when the
    scheduler stopped it), rings at promotions, crosses at stops, a black bar at each rung's last cutoff
    (black: Plotly's trial colours include orange), dotted lines at the milestones. Raises ConfigError for a
    run without rung decisions."""
    from pbtlab.viz.rungs import rung_plot_data

    data = rung_plot_data(run)
    panels = data.panels[:max_panels]
    traces: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    layout: dict[str, Any] = {**_BASE_LAYOUT, "yaxis": {"title": {"text": plotly_text(data.metric)}}}
    gap = 0.04
    for number, panel in enumerate(panels):
        axis = "x" if number == 0 else f"x{number + 1}"
        width = (1.0 - gap * (len(panels) - 1)) / len(panels)
        start = number * (width + gap)
        layout["xaxis" if number == 0 else f"xaxis{number + 1}"] = {
            "domain": [start, start + width], "anchor": "y",
            "title": {"text": f"{plotly_text(data.time_attr)} · bracket {panel.bracket}"}}
        for trial_id, (times, values) in panel.curves.items():
            stopped = trial_id in panel.stopped_early
            traces.append({"type": "scatter", "mode": "lines", "x": list(times), "y": list(values), "xaxis": axis,
                           "name": plotly_text(trial_id), "meta": {"trial": trial_id},
                           "line": {"width": 1 if stopped else 2, "color": "#b0b0b0" if stopped else None},
                           "hovertemplate": f"{plotly_text(trial_id)}<br>%{{x}}: %{{y:.6g}}<extra></extra>"})
        for kind, symbol, color in (("promoted", "circle-open", "#1a7f37"), ("stopped", "x", "#cf222e")):
            marks = [m for m in panel.marks if m.kind == kind and m.value is not None and m.reason != "max_t"]
            traces.append({"type": "scatter", "mode": "markers", "xaxis": axis, "name": kind,
                           "x": [m.time for m in marks], "y": [m.value for m in marks],
                           "text": [f"{plotly_text(m.trial_id)} {kind} at rung {m.rung}" for m in marks],
                           "marker": {"symbol": symbol, "size": 9, "color": color},
                           "hovertemplate": "%{text}<br>%{y:.6g}<extra></extra>"})
        cutoffs = sorted(panel.cutoffs.items())
        traces.append({"type": "scatter", "mode": "markers", "xaxis": axis, "name": "cutoff",
                       "x": [m for m, _ in cutoffs], "y": [c for _, c in cutoffs],
                       "marker": {"symbol": "line-ew", "size": 22, "line": {"width": 4, "color": "black"}},
                       "hovertemplate": "cutoff %{y:.6g} at %{x}<extra></extra>"})
        for milestone in panel.milestones:
            shapes.append({"type": "line", "xref": axis, "yref": "paper", "x0": milestone, "x1": milestone,
                           "y0": 0, "y1": 1, "line": {"dash": "dot", "width": 1, "color": "#555555"}})
    layout["shapes"] = shapes
    layout["title"] = {"text": f"{plotly_text(data.scheduler)}: {plotly_text(data.metric)} by rung "
                               f"(rings: promoted, crosses: stopped, black bars: cutoff)", "font": {"size": 13}}
    return {"data": traces, "layout": layout}
