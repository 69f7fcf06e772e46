"use strict";
// One experiment, live: a snapshot from /api/snapshot, then server-sent deltas (appended rows and events only).
// Figures arrive as Plotly JSON built by pbtlab.serve.figures; deltas extend them with the same rules:
//   metric: a row whose restored_from is set starts a new piece at the cloned checkpoint ("cp"), with a dotted
//           jump from the trial's previous value; lineage: lanes grow, an exploit adds a donor -> target arrow.
// Every value from the run reaches the page through textContent (never innerHTML) or escaped Plotly text.
(function () {
  const expId = new URLSearchParams(location.search).get("id") || "";
  const S = {
    snap: null, trials: new Map(), order: [], figs: null, selected: null, best: null, events: [],
    logEvents: [], numEvents: 0, counts: {}, dirty: new Set(), lastDraw: {}, drawCost: {}, timer: null,
    bestFetch: null, bestFetchAgain: false, source: null, deltas: 0, bytes: 0, status: null, rowsSeen: 0,
    perTrial: {metric: true, lineage: true}, populationFetch: null, populationAgain: false, populationAt: null,
    populationWait: null, populationCost: 0, populationStale: false,
  };
  // the figures in page order; which ones the page extends row by row is in S.perTrial (by the server's form)
  const FIGURES = ["metric", "founders", "lineage", "hyperparameters", "schedule"];
  window.pbtlab = S; // for tests and curious users: the page's state

  // -- small helpers -----------------------------------------------------------------------------------------
  function fmt(value) {
    if (typeof value === "number") {
      if (Number.isInteger(value)) return String(value);
      return String(Number(value.toPrecision(6)));
    }
    if (value === null || value === undefined) return "";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }
  function esc(text) { // for Plotly labels, which read a few HTML tags
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function td(row, text, cls) {
    const cell = document.createElement("td");
    cell.textContent = fmt(text);
    if (cls) cell.className = cls;
    row.appendChild(cell);
    return cell;
  }
  function setText(id, text) { document.getElementById(id).textContent = text; }
  function showProblems(list) {
    const box = document.getElementById("problems");
    const ul = box.querySelector("ul");
    for (const text of list) {
      if (S.problemSet.has(text)) continue;
      S.problemSet.add(text);
      const li = document.createElement("li");
      li.textContent = text;
      ul.appendChild(li);
    }
    box.hidden = S.problemSet.size === 0;
  }
  function setIncomplete(list) {
    setText("status-line", (S.statusLabel || "") + (list && list.length ? " — waiting for: " + list.join("; ") : ""));
  }

  // -- status -------------------------------------------------------------------------------------------------
  function setStatus(status) {
    S.status = status;
    const badge = document.getElementById("status");
    badge.textContent = status.state;
    badge.className = "badge " + status.state;
    const resumes = S.counts.experiment_resume || 0;
    S.statusLabel = status.label + (resumes ? " · resumed " + resumes + "×" : "") +
      " · " + S.numEvents + " events";
    setIncomplete(S.incomplete);
    for (const id of S.order) updateTrialRow(id);
  }
  function foldStatus(event) {
    const trial = S.trials.get(String(event.trial_id));
    switch (event.event) {
      case "trial_add": if (trial) trial.status = "PENDING"; break;
      case "trial_start": if (trial) trial.status = "RUNNING"; break;
      case "trial_complete": if (trial) trial.status = "TERMINATED"; break;
      case "trial_error": if (trial) trial.status = event.will_retry ? "PENDING" : "ERROR"; break;
      case "experiment_end":
        if (event.statuses && typeof event.statuses === "object") {
          for (const [id, status] of Object.entries(event.statuses)) {
            const t = S.trials.get(id);
            if (t) t.status = String(status);
          }
        }
        break;
      default: break;
    }
    if (trial) updateTrialRow(trial.id);
  }

  // -- population table -----------------------------------------------------------------------------------------
  function buildTable() {
    const head = document.querySelector("#trials thead");
    const row = document.createElement("tr");
    for (const name of ["trial", "status", "iter", ...S.snap.param_columns, S.snap.metric || "metric"]) {
      const th = document.createElement("th");
      th.textContent = name;
      row.appendChild(th);
    }
    head.replaceChildren(row);
    document.querySelector("#trials tbody").replaceChildren();
    for (const id of S.order) addTrialRow(id);
  }
  function addTrialRow(id) {
    const trial = S.trials.get(id);
    const row = document.createElement("tr");
    row.dataset.trial = id;
    trial.cells = {id: td(row, id), status: td(row, ""), iter: td(row, "", "num"), config: [], metric: null};
    for (let k = 0; k < S.snap.param_columns.length; k++) trial.cells.config.push(td(row, "", "num"));
    trial.cells.metric = td(row, "", "num");
    trial.row = row;
    row.addEventListener("click", () => select(id));
    document.querySelector("#trials tbody").appendChild(row);
    updateTrialRow(id);
    const option = document.createElement("option");
    option.value = id;
    option.textContent = id;
    document.getElementById("filter-trial").appendChild(option);
  }
  function shownStatus(trial) {
    const ended = S.status && (S.status.state === "stopped" || S.status.state === "interrupted");
    if (ended && ["RUNNING", "PAUSED", "PENDING"].includes(trial.status)) return "INTERRUPTED";
    return trial.status;
  }
  function updateTrialRow(id) {
    const trial = S.trials.get(id);
    if (!trial || !trial.cells) return;
    const status = shownStatus(trial);
    trial.cells.status.textContent = status;
    trial.cells.status.className = "status-" + status;
    trial.cells.iter.textContent = fmt(trial.iteration);
    S.snap.param_columns.forEach((p, k) => { trial.cells.config[k].textContent = fmt(trial.config[p]); });
    trial.cells.metric.textContent = fmt(trial.metric);
    trial.row.classList.toggle("selected", S.selected === id);
    trial.row.classList.toggle("best", S.best === id);
  }

  // -- figures ----------------------------------------------------------------------------------------------------
  function emptyFigures() { // when the server could not build figures from damaged files: start from empty ones
    const trace = (id, extra) => Object.assign({type: "scatter", mode: "lines", x: [], y: [], name: esc(id),
      meta: {trial: id}}, extra || {});
    return {
      metric: {data: [...S.order.map((id) => trace(id)), trace(null, {name: "jumps", hoverinfo: "skip"})],
        layout: {xaxis: {title: {text: "training iteration"}}}},
      lineage: {data: [...S.order.map((id) => trace(id, {line: {width: 6}})),
        trace(null, {name: "exploits", text: []}), trace(null, {name: "ancestry"}), trace(null, {name: "best"})],
        layout: {yaxis: {autorange: "reversed"}}},
      schedule: {data: [], layout: {}},
      founders: {data: [], layout: {}, meta: {form: "shares"}},
      hyperparameters: {data: [], layout: {}, meta: {form: "bands"}},
    };
  }
  function metricTrace(id) { return S.figs.metric.data[S.trials.get(id).index]; }
  function laneTrace(id) { return S.figs.lineage.data[S.trials.get(id).index]; }
  function exploitsTrace() { return S.figs.lineage.data[S.order.length]; }

  function addPoint(trial, trace, x, y) {
    if (!trial.pieceOpen && trace.x.length) { trace.x.push(null); trace.y.push(null); }
    trial.pieceOpen = true;
    trace.x.push(x);
    trace.y.push(y);
  }
  function applyRow(row) {
    const trial = S.trials.get(row.t);
    if (!trial) return;
    const restored = row.r && typeof row.r === "object";
    if (S.perTrial.metric) extendCurve(trial, row, restored);
    if (S.perTrial.lineage) extendLane(trial, row, restored);
    trial.hasRows = true;
    trial.lastI = row.i;
    trial.lastM = row.m === undefined ? null : row.m;
    trial.iteration = row.i;
    trial.metric = trial.lastM;
    trial.config = row.c || {};
    updateTrialRow(row.t);
    S.populationStale = true;
    if (row.t === S.best) {
      if (restored) requestBest();
      else extendBest(row);
    }
  }
  function extendCurve(trial, row, restored) {
    const curve = metricTrace(row.t);
    if (restored) {
      trial.pieceOpen = false;
      if (row.r.reason !== null && row.r.reason !== undefined && row.cp) {
        addPoint(trial, curve, row.cp[0], row.cp[1]);
        if (trial.hasRows && trial.lastM !== null) {
          const jumps = S.figs.metric.data[S.order.length];
          jumps.x.push(trial.lastI, row.cp[0], null);
          jumps.y.push(trial.lastM, row.cp[1], null);
        }
      }
    }
    if (row.m !== null && row.m !== undefined) addPoint(trial, curve, row.i, row.m);
    S.dirty.add("metric");
  }
  function extendLane(trial, row, restored) {
    const lane = laneTrace(row.t);
    if (restored || !lane.x.length) {
      if (lane.x.length) { lane.x.push(null); lane.y.push(null); }
      lane.x.push(restored ? (row.r.iteration || 0) : 0, row.i);
      lane.y.push(trial.index, trial.index);
    } else {
      lane.x[lane.x.length - 1] = row.i;
    }
    S.dirty.add("lineage");
  }
  function applyExploit(event) {
    S.populationStale = true;
    if (!S.perTrial.lineage) return;
    const donor = S.trials.get(String(event.donor));
    const target = S.trials.get(String(event.trial_id));
    if (!donor || !target) return;
    const label = esc(event.trial_id) + " cloned " + esc(event.donor) + "'s checkpoint of iter " +
      event.donor_iteration + " at iter " + event.target_iteration;
    const trace = exploitsTrace();
    trace.x.push(event.donor_iteration, event.donor_iteration, null);
    trace.y.push(donor.index, target.index, null);
    trace.text.push(label, label, null);
    S.dirty.add("lineage");
  }
  function rankBest() {
    const sign = S.snap.mode === "min" ? -1 : 1;
    let best = null;
    let bestValue = -Infinity;
    for (const id of S.order) {
      const value = S.trials.get(id).metric;
      if (typeof value !== "number" || !isFinite(value)) continue;
      if (best === null || sign * value > bestValue) { best = id; bestValue = sign * value; }
    }
    return best;
  }
  function extendBest(row) {
    const fig = S.figs.schedule;
    if (!fig.data.length || !fig.meta || fig.meta.trial !== row.t) { requestBest(); return; }
    for (const trace of fig.data) {
      trace.x.push(row.i);
      trace.y.push(row.c ? row.c[trace.meta.param] : null);
      trace.customdata.push(esc(row.t));
    }
    if (S.perTrial.lineage) {
      const ancestry = S.figs.lineage.data[S.order.length + 1];
      if (ancestry.x.length >= 2) ancestry.x[ancestry.x.length - 2] = row.i;
      const star = S.figs.lineage.data[S.order.length + 2];
      if (star.x.length) star.x[0] = row.i;
      S.dirty.add("lineage");
    }
    S.dirty.add("schedule");
  }
  async function requestBest() { // the schedule needs the whole ancestry: asked of the server, at most every 2 s
    if (S.bestFetch || S.bestWait) { S.bestFetchAgain = true; return; }
    const since = performance.now() - (S.bestAt || -1e9);
    if (since < 2000) {
      S.bestWait = setTimeout(() => { S.bestWait = null; requestBest(); }, 2000 - since);
      return;
    }
    S.bestAt = performance.now();
    S.bestFetch = (async () => {
      try {
        const response = await fetch("/api/best?id=" + encodeURIComponent(expId));
        const data = await response.json();
        if (data.error) { showProblems(["schedule: " + data.error]); return; }
        S.figs.schedule = data.schedule;
        if (S.perTrial.lineage && data.ancestry.length) S.figs.lineage.data.splice(S.order.length + 1, 2, ...data.ancestry);
        restyleSelection();
        S.dirty.add("schedule");
        S.dirty.add("lineage");
        scheduleDraw();
      } catch (error) {
        showProblems(["could not fetch the best trial's schedule: " + error.message]);
      } finally {
        S.bestFetch = null;
        if (S.bestFetchAgain) { S.bestFetchAgain = false; requestBest(); }
      }
    })();
  }

  // -- rungs (ASHA, HyperBand): the figure from the server, asked again at most every 2 s after a rung decision --
  const RUNG_EVENTS = new Set(["rung_reached", "rung_promoted", "rung_stopped"]);
  async function requestRungs() {
    if (S.rungsFetch || S.rungsWait) { S.rungsAgain = true; return; }
    const since = performance.now() - (S.rungsAt || -1e9);
    if (since < 2000) {
      S.rungsWait = setTimeout(() => { S.rungsWait = null; requestRungs(); }, 2000 - since);
      return;
    }
    S.rungsAt = performance.now();
    S.rungsFetch = (async () => {
      try {
        const response = await fetch("/api/rungs?id=" + encodeURIComponent(expId));
        const data = await response.json();
        if (data.error) { showProblems(["rungs: " + data.error]); return; }
        document.getElementById("rungs").hidden = false;
        Plotly.react("plot-rungs", data.rungs.data, data.rungs.layout, {responsive: true, displaylogo: false});
      } catch (error) {
        showProblems(["could not fetch the rung plot: " + error.message]);
      } finally {
        S.rungsFetch = null;
        if (S.rungsAgain) { S.rungsAgain = false; requestRungs(); }
      }
    })();
  }

  // -- selection (click a trial anywhere) ---------------------------------------------------------------------------
  function select(id) {
    const previous = S.selected;
    S.selected = S.selected === id ? null : id;
    if (previous) updateTrialRow(previous);
    if (S.selected) updateTrialRow(S.selected);
    const box = document.getElementById("selection");
    box.hidden = S.selected === null;
    box.querySelector("span").textContent = S.selected === null ? "" : "Selected trial " + S.selected;
    restyleSelection();
    renderLog();
    scheduleDraw();
  }
  function restyleSelection() {
    const n = S.order.length;
    for (let k = 0; k < n; k++) {
      const id = S.order[k];
      const on = S.selected === null || S.selected === id;
      if (S.perTrial.metric) {
        const curve = S.figs.metric.data[k];
        curve.opacity = on ? 1 : 0.15;
        curve.line = Object.assign({}, curve.line, {width: S.selected === id ? 3.5 : 1.5});
      }
      if (S.perTrial.lineage) {
        const lane = S.figs.lineage.data[k];
        lane.opacity = S.selected === id ? 0.95 : (on ? 0.45 : 0.12);
      }
    }
    S.dirty.add("metric");
    S.dirty.add("lineage");
  }

  // -- large populations: one merged trace instead of one per trial -------------------------------------------------
  // Plotly's cost grows with the number of traces, so above MANY trials the per-trial traces (the page's model,
  // extended by the stream) are drawn as one trace, with the best and the selected trial drawn on top.
  const MANY = 40;
  function merged(traces, extra) {
    const x = [], y = [], ids = [];
    for (const trace of traces) {
      if (!trace.x.length) continue;
      const id = trace.meta.trial;
      for (let k = 0; k < trace.x.length; k++) { x.push(trace.x[k]); y.push(trace.y[k]); ids.push(id); }
      x.push(null); y.push(null); ids.push(null);
    }
    return Object.assign({type: "scatter", mode: "lines", x, y, customdata: ids, meta: {trial: null}}, extra);
  }
  function overlay(trace, color, width, label) {
    return Object.assign({}, trace, {line: {color, width}, opacity: 1, name: label,
      hovertemplate: label + " " + esc(trace.meta.trial) + "<br>iter %{x}<extra></extra>"});
  }
  function viewFigure(name) {
    const fig = S.figs[name];
    const n = S.order.length;
    if (n <= MANY || !(name in S.perTrial) || !S.perTrial[name]) return fig;
    const own = fig.data.slice(0, n);
    const rest = fig.data.slice(n);
    const tops = [];
    const bestIndex = S.best === null ? -1 : S.trials.get(S.best).index;
    const selectedIndex = S.selected === null ? -1 : S.trials.get(S.selected).index;
    if (name === "metric") {
      const all = merged(own, {name: "trials", line: {width: 1, color: "rgba(70, 100, 160, 0.35)"},
        hovertemplate: "trial %{customdata}<br>iter %{x}<br>" + esc(S.snap.metric || "") + " %{y:.6g}<extra></extra>"});
      if (bestIndex >= 0) tops.push(overlay(own[bestIndex], "#f59b00", 2.5, "best"));
      if (selectedIndex >= 0) tops.push(overlay(own[selectedIndex], "#e8590c", 3, "selected"));
      return {data: [all, ...rest, ...tops], layout: fig.layout};
    }
    const lanes = merged(own, {name: "lanes", line: {width: 2, color: "rgba(70, 100, 160, 0.3)"},
      hovertemplate: "trial %{customdata}<br>iter %{x}<extra></extra>"});
    if (selectedIndex >= 0) tops.push(overlay(own[selectedIndex], "#e8590c", 4, "selected"));
    // thousands of arrowheads would each be an SVG element: plain lines instead
    const arrows = Object.assign({}, rest[0], {mode: "lines", line: {width: 0.6, color: "rgba(90, 90, 90, 0.35)"}});
    return {data: [lanes, arrows, ...rest.slice(1), ...tops], layout: fig.layout};
  }

  // -- drawing (coalesced: each plot redraws at most every few hundred ms) ---------------------------------------------
  function scheduleDraw() {
    if (S.timer !== null) return;
    S.timer = setTimeout(draw, 150);
  }
  function draw() {
    S.timer = null;
    const now = performance.now();
    let again = false;
    const best = rankBest();
    if (best !== S.best) {
      const before = S.best;
      S.best = best;
      S.dirty.add("metric");
      if (before) updateTrialRow(before);
      if (best) { updateTrialRow(best); requestBest(); }
    }
    for (const name of FIGURES) {
      if (!S.dirty.has(name)) continue;
      const wait = Math.max(300, 3 * (S.drawCost[name] || 0));
      if (now - (S.lastDraw[name] || 0) < wait) { again = true; continue; }
      S.dirty.delete(name);
      const fig = S.figs[name];
      fig.layout.datarevision = (fig.layout.datarevision || 0) + 1;
      const started = performance.now();
      const shown = viewFigure(name);
      // new objects each time: Plotly keeps the ones it was given, and compares datarevision with them
      Plotly.react("plot-" + name, shown.data.map((t) => Object.assign({}, t)), Object.assign({}, shown.layout),
        {responsive: true, displaylogo: false});
      S.drawCost[name] = performance.now() - started;
      S.lastDraw[name] = performance.now();
      document.getElementById("plot-" + name).dataset.revision = String(fig.layout.datarevision);
    }
    if (S.logDirty) { S.logDirty = false; renderLog(); }
    if (S.populationStale) requestPopulation();
    if (again) scheduleDraw();
  }
  // founder shares, hyperparameter bands (and, for large populations, the metric's bands and the ancestry tree) are
  // rebuilt by the server, once per state of the run's files for every visitor: asked for at most every 2 s
  async function requestPopulation() {
    S.populationStale = false;
    if (S.populationFetch || S.populationWait) { S.populationAgain = true; return; }
    const since = performance.now() - (S.populationAt || -1e9);
    const spacing = Math.max(2000, 3 * S.populationCost);
    if (since < spacing) {
      S.populationWait = setTimeout(() => { S.populationWait = null; requestPopulation(); }, spacing - since);
      return;
    }
    S.populationAt = performance.now();
    S.populationFetch = (async () => {
      try {
        const response = await fetch("/api/population?id=" + encodeURIComponent(expId));
        const data = await response.json();
        if (data.error) { showProblems(["population views: " + data.error]); return; }
        for (const [name, fig] of Object.entries(data.figures)) {
          if (S.perTrial[name]) continue; // extended by the page itself
          S.figs[name] = fig;
          S.dirty.add(name);
        }
        S.populationRows = data.rows;
        scheduleDraw();
      } catch (error) {
        showProblems(["could not fetch the population views: " + error.message]);
      } finally {
        S.populationCost = performance.now() - S.populationAt;
        S.populationFetch = null;
        if (S.populationAgain) { S.populationAgain = false; requestPopulation(); }
      }
    })();
  }

  // -- event log ---------------------------------------------------------------------------------------------------
  const LOG_LIMIT = 500;
  function summary(event) {
    switch (event.event) {
      case "exploit":
        return "clones " + event.donor + " (score " + fmt(event.donor_score) + ", checkpoint of iter " +
          event.donor_iteration + ") at iter " + event.target_iteration + " (own score " + fmt(event.target_score) + ")";
      case "explore":
        return (event.changes || []).map((c) => c.param + ": " + fmt(c.old) + " --(" + c.op + ")--> " + fmt(c.new))
          .join("; ") || "no change";
      case "rung_reached": case "rung_promoted": case "rung_stopped": case "median_stopped":
        return String(event.message);
      case "trial_error":
        return event.error_type + ": " + event.message + (event.will_retry ? " (will retry)" : "");
      default: {
        const skip = new Set(["seq", "event", "time", "trial_id", "traceback", "config", "old_config", "donor_config",
          "new_config", "scheduler"]);
        return Object.entries(event).filter(([k]) => !skip.has(k)).map(([k, v]) => k + "=" + fmt(v)).join(", ");
      }
    }
  }
  function matches(event) {
    const kind = document.getElementById("filter-kind").value;
    const trial = document.getElementById("filter-trial").value;
    if (kind && event.event !== kind) return false;
    if (trial && String(event.trial_id) !== trial && String(event.donor) !== trial) return false;
    return true;
  }
  function renderLog() {
    const body = document.querySelector("#events tbody");
    const rows = [];
    const shown = S.logEvents.slice(-LOG_LIMIT).reverse();
    for (const event of shown) {
      const row = document.createElement("tr");
      row.className = "kind-" + event.event;
      row.dataset.seq = String(event.seq);
      if (S.selected !== null && (String(event.trial_id) === S.selected || String(event.donor) === S.selected)) {
        row.classList.add("selected");
      }
      td(row, event.seq, "num");
      td(row, typeof event.time === "number" ? new Date(event.time * 1000).toLocaleTimeString() : "");
      td(row, event.event);
      td(row, event.trial_id === undefined ? "" : event.trial_id);
      td(row, summary(event), "details");
      rows.push(row);
    }
    body.replaceChildren(...rows);
    setText("log-count", "showing " + shown.length + " of " + S.logMatching + " matching events (newest first)");
  }
  function addKindOption(kind) {
    const select = document.getElementById("filter-kind");
    if ([...select.options].some((o) => o.value === kind)) return;
    const option = document.createElement("option");
    option.value = kind;
    option.textContent = kind;
    select.appendChild(option);
  }
  async function refilter() {
    const kind = document.getElementById("filter-kind").value;
    const trial = document.getElementById("filter-trial").value;
    const query = new URLSearchParams({id: expId, limit: String(LOG_LIMIT)});
    if (kind) query.set("kind", kind);
    if (trial) query.set("trial", trial);
    const response = await fetch("/api/events?" + query.toString());
    const data = await response.json();
    if (data.error) { showProblems(["event log: " + data.error]); return; }
    S.logEvents = data.events;
    S.logMatching = data.matching;
    renderLog();
  }

  // -- settings ------------------------------------------------------------------------------------------------------
  function kvTable(id, object) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    for (const [key, value] of Object.entries(object || {})) {
      const row = document.createElement("tr");
      td(row, key);
      const cell = td(row, "");
      const code = document.createElement("code");
      code.textContent = typeof value === "object" && value !== null ? JSON.stringify(value, null, 1) : fmt(value);
      cell.appendChild(code);
      body.appendChild(row);
    }
  }

  // -- snapshot and stream -------------------------------------------------------------------------------------------
  function init(snap) {
    S.snap = snap;
    S.problemSet = new Set();
    document.getElementById("problems").querySelector("ul").replaceChildren();
    S.trials = new Map();
    S.order = [];
    snap.trials.forEach((t) => {
      S.order.push(t.id);
      S.trials.set(t.id, {id: t.id, index: t.index, status: t.status, iteration: t.iteration, metric: t.metric,
        config: t.config, pieceOpen: true, hasRows: t.iteration !== 0, lastI: t.iteration, lastM: t.metric});
    });
    S.figs = snap.figures || emptyFigures();
    S.perTrial = {metric: !(S.figs.metric.meta && S.figs.metric.meta.form === "bands"),
      lineage: !(S.figs.lineage.meta && S.figs.lineage.meta.form === "tree")};
    S.numEvents = snap.num_events;
    S.counts = snap.event_counts;
    S.incomplete = snap.incomplete;
    S.logEvents = snap.events.slice();
    S.logMatching = snap.num_events;
    document.title = "pbtlab · " + (snap.experiment.name || expId);
    setText("exp-name", snap.experiment.name || expId);
    document.getElementById("filter-trial").replaceChildren(new Option("all", ""));
    document.getElementById("filter-kind").replaceChildren(new Option("all", ""));
    Object.keys(snap.event_counts).sort().forEach(addKindOption);
    const t0 = performance.now();
    buildTable();
    setStatus(snap.status);
    showProblems(snap.problems);
    kvTable("scheduler", snap.experiment.scheduler);
    const rest = Object.assign({}, snap.experiment);
    delete rest.scheduler;
    delete rest.trial_ids;
    kvTable("experiment", rest);
    S.best = rankBest();
    for (const id of S.order) updateTrialRow(id);
    restyleSelection();
    S.timings.table = performance.now() - t0;
    for (const name of FIGURES) {
      const div = document.getElementById("plot-" + name);
      const shown = viewFigure(name);
      const started = performance.now();
      Plotly.newPlot(div, shown.data.map((t) => Object.assign({}, t)), Object.assign({}, shown.layout),
        {responsive: true, displaylogo: false});
      div.dataset.revision = "0";
      S.dirty.delete(name);
      div.on("plotly_click", (ev) => {
        const point = ev.points && ev.points[0];
        const trial = point && (typeof point.customdata === "string" && S.trials.has(point.customdata)
          ? point.customdata : point.data && point.data.meta && point.data.meta.trial);
        if (trial && S.trials.has(trial)) select(trial);
      });
      S.timings[name] = performance.now() - started;
    }
    const logStarted = performance.now();
    renderLog();
    S.timings.log = performance.now() - logStarted;
    if (Object.keys(snap.event_counts).some((kind) => RUNG_EVENTS.has(kind))) requestRungs();
  }
  function applyDelta(delta) {
    S.deltas += 1;
    for (const id of delta.new_trials || []) {
      if (S.trials.has(id)) continue;
      const index = S.order.length;
      S.order.push(id);
      S.trials.set(id, {id, index, status: "PENDING", iteration: 0, metric: null, config: {}, pieceOpen: true,
        hasRows: false, lastI: 0, lastM: null});
      if (S.perTrial.metric) S.figs.metric.data.splice(index, 0, {type: "scatter", mode: "lines", x: [], y: [],
        name: esc(id), meta: {trial: id}, line: {width: 1.5}});
      if (S.perTrial.lineage) S.figs.lineage.data.splice(index, 0, {type: "scatter", mode: "lines", x: [], y: [],
        name: esc(id), meta: {trial: id}, line: {width: 6}, opacity: 0.45});
      addTrialRow(id);
    }
    for (const row of delta.rows || []) applyRow(row);
    S.rowsSeen += (delta.rows || []).length;
    for (const event of delta.events || []) {
      S.numEvents += 1;
      S.counts[event.event] = (S.counts[event.event] || 0) + 1;
      addKindOption(String(event.event));
      foldStatus(event);
      if (event.event === "exploit") applyExploit(event);
      if (RUNG_EVENTS.has(event.event)) requestRungs();
      if (matches(event)) {
        S.logEvents.push(event);
        S.logMatching += 1;
        if (S.logEvents.length > 2 * LOG_LIMIT) S.logEvents = S.logEvents.slice(-LOG_LIMIT);
        S.logDirty = true;
      }
    }
    if (delta.incomplete) S.incomplete = delta.incomplete;
    if (delta.status) setStatus(delta.status);
    if (delta.problems && delta.problems.length) showProblems(delta.problems);
    scheduleDraw();
  }
  function openStream(viewId) {
    if (S.source) S.source.close();
    const source = new EventSource("/api/stream?view=" + encodeURIComponent(viewId));
    S.source = source;
    source.addEventListener("delta", (message) => {
      S.bytes += message.data.length;
      applyDelta(JSON.parse(message.data));
      setText("live", "live · " + S.deltas + (S.deltas === 1 ? " update" : " updates"));
    });
    source.addEventListener("reset", () => { source.close(); load(); });
    source.addEventListener("error", () => {
      setText("live", "reconnecting…");
      if (source.readyState === EventSource.CLOSED) setTimeout(load, 3000);
      else { source.close(); setTimeout(load, 3000); }
    });
    source.addEventListener("open", () => setText("live", "live"));
  }
  async function load() {
    let snap;
    try {
      S.timings = {scripts: performance.now()};
      let answer = window.pbtlabSnapshot; // started by boot.js while the scripts loaded
      window.pbtlabSnapshot = null;
      if (!answer) {
        answer = fetch("/api/snapshot?id=" + encodeURIComponent(expId))
          .then(async (response) => ({ok: response.ok, status: response.status, body: await response.json()}));
      }
      const response = await answer;
      snap = response.body;
      S.timings.snapshot = performance.now() - S.timings.scripts;
      if (!response.ok) throw new Error(snap.error || ("the server answered " + response.status));
    } catch (error) {
      document.getElementById("problems").hidden = false;
      document.getElementById("problems").querySelector("ul").replaceChildren();
      const li = document.createElement("li");
      li.textContent = "This experiment cannot be shown: " + error.message;
      document.getElementById("problems").querySelector("ul").appendChild(li);
      return;
    }
    if (snap.fatal) {
      S.problemSet = new Set();
      showProblems(["This experiment cannot be shown: " + snap.fatal]);
      return;
    }
    init(snap);
    S.readyMs = performance.now(); // since navigation started: the first page is drawn
    openStream(snap.id);
  }

  document.getElementById("clear-selection").addEventListener("click", () => { if (S.selected) select(S.selected); });
  document.getElementById("filter-kind").addEventListener("change", refilter);
  document.getElementById("filter-trial").addEventListener("change", refilter);
  load();
})();
