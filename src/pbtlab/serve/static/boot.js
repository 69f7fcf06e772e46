"use strict";
// Runs before plotly.js is evaluated, so the experiment's snapshot downloads (and the server builds it) meanwhile;
// experiment.js takes this first answer and asks again only when it reloads.
window.pbtlabSnapshot = fetch("/api/snapshot?id=" + encodeURIComponent(new URLSearchParams(location.search).get("id") || ""))
  .then(async (response) => ({ok: response.ok, status: response.status, body: await response.json()}));
