"use strict";
// The list page: every experiment under the served folders. Data is put in the page with textContent only.
(function () {
  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }
  function fmt(value) {
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
    return value === null || value === undefined ? "" : String(value);
  }
  function render(data) {
    document.getElementById("roots").textContent = "Serving " + data.roots.join(", ") + " (read-only)";
    const body = document.querySelector("#experiments tbody");
    body.replaceChildren();
    for (const exp of data.experiments) {
      const row = document.createElement("tr");
      const nameCell = cell(row, "");
      const link = document.createElement("a");
      link.href = "/experiment?id=" + encodeURIComponent(exp.id);
      link.textContent = exp.name;
      nameCell.appendChild(link);
      const status = cell(row, "");
      const badge = document.createElement("span");
      badge.className = "badge " + (exp.status ? exp.status.state : "");
      badge.textContent = exp.status ? exp.status.state : "?";
      badge.title = exp.status ? exp.status.label : "";
      status.appendChild(badge);
      if (exp.problems && exp.problems.length) {
        const note = document.createElement("span");
        note.className = "muted";
        note.textContent = " " + exp.problems.join("; ");
        status.appendChild(note);
      }
      cell(row, exp.trials, "num");
      const progress = cell(row, "");
      if (exp.progress !== null && exp.progress !== undefined) {
        const bar = document.createElement("span");
        bar.className = "bar";
        const fill = document.createElement("span");
        fill.style.width = Math.round(100 * exp.progress) + "%";
        bar.appendChild(fill);
        progress.appendChild(bar);
        progress.appendChild(document.createTextNode(Math.round(100 * exp.progress) + "%"));
      }
      cell(row, exp.best === null ? "" : (exp.metric ? exp.metric + " " : "") + fmt(exp.best), "num");
      cell(row, exp.started || "");
      cell(row, exp.id, "muted");
      body.appendChild(row);
    }
    document.getElementById("empty").hidden = data.experiments.length > 0;
  }
  async function refresh() {
    try {
      const response = await fetch("/api/experiments");
      if (!response.ok) throw new Error("the server answered " + response.status);
      render(await response.json());
      document.getElementById("problem").hidden = true;
    } catch (error) {
      const box = document.getElementById("problem");
      box.hidden = false;
      box.textContent = "Could not list experiments: " + error.message;
    }
  }
  refresh();
  setInterval(refresh, 5000);
})();
