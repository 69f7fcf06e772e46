"""`pbtlab serve` in real Chromium (Debian's), driven by Playwright, while a seeded run progresses in another process.

Checks: the table, curves and lineage update live and match the event log and the finished run's files;
clicking a trial highlights it everywhere; traversal attempts are refused; markup in names stays text;
the console has no errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("starlette")
playwright_api = pytest.importorskip("playwright.sync_api")

from pbtlab.serve.figures import build_figures
from pbtlab.serve.live import LiveView

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
XSS = "<img src=x onerror=alert(1)>"

#: A seeded 4-trial toy PBT whose reports are slowed down, so the page sees it grow (run as `python -c`).
LIVE_RUN = """
import sys, time
import pbtlab.session as session
report = session.TrialSession.report
def slow_report(self, metrics, checkpoint=None):
    time.sleep(0.03)
    return report(self, metrics, checkpoint)
session.TrialSession.report = slow_report
from pbtlab.examples.runs import run_toy_pbt
run_toy_pbt(population=4, seed=3, iterations=60, storage_path=sys.argv[1], name="live")
"""


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (make test installs it)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Watched:
    """A page whose console errors, uncaught exceptions and dialogs are recorded."""

    def __init__(self, browser, width=1400, height=1000):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def js(self, expression, arg=None):
        return self.page.evaluate(expression, arg)

    def wait(self, expression, what, timeout=30.0, arg=None):
        """Wait until the page expression is truthy (the page's CSP forbids Playwright's eval-based waits)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression, arg)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {what} (last value {value!r})")
            time.sleep(0.1)


def wait_for(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen")
        time.sleep(0.05)


def page_figure(watched, name):
    return watched.js(f"() => window.pbtlab.figs.{name}.data.map(t => ({{x: t.x, y: t.y, name: t.name}}))")


def segments(trace):
    """A trace with None separators as the set of its (x, y) pieces."""
    pieces, piece = set(), []
    for x, y in zip(trace["x"], trace["y"]):
        if x is None:
            if piece:
                pieces.add(tuple(piece))
            piece = []
        else:
            piece.append((x, y))
    if piece:
        pieces.add(tuple(piece))
    return pieces


def test_live_run_table_curves_lineage_follow_the_files_and_clicks_highlight(browser, tmp_path):
    from pbtlab.serve.app import start_server

    root = tmp_path / "results"
    root.mkdir()
    server = start_server([str(root)], poll_interval=0.2)
    run = subprocess.Popen([sys.executable, "-c", LIVE_RUN, str(root)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    run_dir = root / "live"
    watched = Watched(browser)
    try:
        wait_for(lambda: (run_dir / "events.jsonl").exists(), "the run's first events")
        watched.page.goto(f"{server.url}/experiment?id=0/live")
        watched.wait("() => window.pbtlab && window.pbtlab.snap !== null", "the snapshot")
        first_events = watched.js("() => window.pbtlab.numEvents")
        # updates arrive while the run is still going, without reloading the page
        watched.wait("() => window.pbtlab.deltas >= 2", "two live updates")
        # events come in bursts (at perturbation steps), so two updates may carry only rows: wait for new events
        watched.wait(f"() => window.pbtlab.numEvents > {first_events}", "new events arriving live")
        assert run.poll() is None, "the run finished before the page saw it grow; slow it down"
        watched.wait("() => Number(document.getElementById('plot-metric').dataset.revision) >= 1", "a redrawn curve")
        mid = watched.js("""() => { const S = window.pbtlab;
            return {events: S.numEvents, exploits: S.counts.exploit || 0,
                    edges: S.figs.lineage.data[S.order.length].x.length / 3,
                    table: S.order.map(id => Number(S.trials.get(id).cells.iter.textContent)),
                    lanes: S.order.map((id, k) => { const x = S.figs.lineage.data[k].x; return x[x.length - 1]; }),
                    curves: S.order.map((id, k) => { const x = S.figs.metric.data[k].x; return x[x.length - 1]; })};
        }""")
        assert mid["events"] > first_events
        assert mid["edges"] == mid["exploits"]  # one lineage arrow per exploit the log has shown
        assert mid["table"] == mid["lanes"] == mid["curves"]  # table, lineage and curves at the same iteration

        assert run.wait(timeout=120) == 0, run.stderr.read()
        watched.wait("() => document.getElementById('status').textContent === 'finished'", "the finished status")
        view = LiveView(str(run_dir))
        finished, _, _ = view.read_run()
        expected = json.loads(json.dumps(build_figures(finished)))
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
        n = len(finished.trials)
        watched.wait("() => !window.pbtlab.timer && window.pbtlab.dirty.size === 0 && !window.pbtlab.bestFetch "
                     "&& !window.pbtlab.bestWait && !window.pbtlab.populationFetch && !window.pbtlab.populationWait "
                     "&& !window.pbtlab.populationStale", "all updates drawn")
        drawn = watched.js("() => ['metric', 'lineage'].map(n => document.getElementById('plot-' + n)"
                           "._fullLayout.xaxis.range[1])")
        assert min(drawn) >= 60  # what Plotly drew was recomputed up to the last iteration, not only the model
        metric = page_figure(watched, "metric")
        for k in range(n):  # every trial's curve, with its breaks, equals the one built from the files
            assert metric[k]["x"] == expected["metric"]["data"][k]["x"]
            assert metric[k]["y"] == expected["metric"]["data"][k]["y"]
        assert segments(metric[n]) == segments(expected["metric"]["data"][n])  # the dotted jumps
        lineage = page_figure(watched, "lineage")
        for k in range(n + 3):  # lanes, exploit arrows (in event order), ancestry, best
            assert (lineage[k]["x"], lineage[k]["y"]) == (expected["lineage"]["data"][k]["x"],
                                                          expected["lineage"]["data"][k]["y"]), k
        assert len(lineage[n]["x"]) == 3 * sum(e["event"] == "exploit" for e in events) > 0
        for name in ("founders", "hyperparameters"):  # rebuilt by the server as the run grew
            drawn = page_figure(watched, name)
            assert [(t["x"], t["y"]) for t in drawn] == [(t["x"], t["y"]) for t in expected[name]["data"]], name
        schedule = page_figure(watched, "schedule")
        assert [(t["x"], t["y"]) for t in schedule] == [(t["x"], t["y"]) for t in expected["schedule"]["data"]]
        table = watched.js("() => [...document.querySelectorAll('#trials tbody tr')].map(r => "
                           "[...r.children].map(c => c.textContent))")
        assert [row[0] for row in table] == finished.trial_ids
        assert {row[1] for row in table} == {"TERMINATED"} and {row[2] for row in table} == {"60"}
        assert watched.js("() => window.pbtlab.numEvents") == len(events)
        assert watched.js("() => document.querySelector('#events tbody tr').dataset.seq") == str(events[-1]["seq"])

        # clicking a trial in the table highlights it in every view
        target = finished.trial_ids[2]
        watched.page.click(f"#trials tbody tr[data-trial='{target}']")
        state = watched.js("""() => { const S = window.pbtlab;
            return {row: document.querySelector('#trials tr.selected').dataset.trial,
                    curves: S.figs.metric.data.slice(0, S.order.length).map(t => t.opacity),
                    plotted: document.getElementById('plot-metric').data.slice(0, S.order.length).map(t => t.opacity),
                    lanes: S.figs.lineage.data.slice(0, S.order.length).map(t => t.opacity),
                    logged: [...document.querySelectorAll('#events tr.selected td:nth-child(4)')].length,
                    note: document.querySelector('#selection span').textContent}; }""")
        watched.wait("() => !window.pbtlab.timer", "the highlight drawn")
        plotted = watched.js("() => document.getElementById('plot-metric').data.slice(0, 4).map(t => t.opacity)")
        assert state["row"] == target and state["note"] == f"Selected trial {target}"
        assert state["curves"] == plotted == [0.15, 0.15, 1, 0.15]
        assert state["lanes"] == [0.12, 0.12, 0.95, 0.12] and state["logged"] > 0
        # ... and clicking a trial's lane in the lineage plot selects that one
        watched.page.locator("#plot-lineage").scroll_into_view_if_needed()
        point = watched.js("""() => { const gd = document.getElementById('plot-lineage'), L = gd._fullLayout;
            const box = gd.getBoundingClientRect(), xs = gd.data[1].x.filter(v => v !== null);
            return [box.left + L._size.l + L.xaxis.d2p(xs[xs.length - 1]), box.top + L._size.t + L.yaxis.d2p(1)]; }""")
        watched.page.mouse.move(point[0] - 3, point[1])
        watched.page.mouse.click(point[0], point[1])
        watched.wait("() => window.pbtlab.selected", "a selection from the plot")
        assert watched.js("() => window.pbtlab.selected") == finished.trial_ids[1]
        # the event log filters by kind and by trial
        watched.page.select_option("#filter-kind", "exploit")
        watched.wait("() => [...document.querySelectorAll('#events tbody tr')].every(r => r.className.includes"
                     "('kind-exploit'))", "only exploits")
        shown = watched.js("() => document.querySelectorAll('#events tbody tr').length")
        assert shown == sum(e["event"] == "exploit" for e in events)
        watched.page.select_option("#filter-trial", target)
        expected_rows = [e for e in events if e["event"] == "exploit" and target in (e["trial_id"], e["donor"])]
        watched.wait(f"() => document.querySelectorAll('#events tbody tr').length === {len(expected_rows)}",
                     "the trial's exploits")
        assert watched.errors == [] and watched.dialogs == []
    finally:
        if run.poll() is None:
            run.kill()
        watched.page.close()
        server.stop()


def test_traversal_attempts_from_the_browser_are_refused(browser, tmp_path):
    from pbtlab.serve.app import start_server

    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "experiment.json").write_text('{"name": "secret", "trial_ids": []}')
    os.symlink(outside / "secret", root / "link")
    server = start_server([str(root)])
    watched = Watched(browser)
    try:
        for path in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                     "/api/snapshot?id=0/../outside/secret", "/api/snapshot?id=0/%2e%2e/outside/secret",
                     f"/api/snapshot?id=0/{outside}/secret", "/api/snapshot?id=0/link",
                     "/api/events?id=0/link", "/api/best?id=0/..%2foutside%2fsecret"):
            response = watched.page.goto(server.url + path)
            assert response.status == 404, path
            assert "root:" not in watched.page.content() and "secret" not in watched.page.content().split(
                "<body", 1)[-1].replace(str(outside), ""), path
        watched.page.goto(server.url + "/")
        watched.wait("() => document.getElementById('roots').textContent", "the list")
        assert watched.js("() => document.querySelectorAll('#experiments tbody tr').length") == 0
    finally:
        watched.page.close()
        server.stop()


def test_markup_in_names_stays_text_and_damaged_files_show_as_such(browser, tmp_path):
    from pbtlab.examples.runs import run_toy_pbt
    from pbtlab.serve.app import start_server

    root = tmp_path / "root"
    run_toy_pbt(population=2, seed=0, iterations=20, storage_path=str(root), name="evil")
    run_dir = root / "evil"
    experiment = json.loads((run_dir / "experiment.json").read_text())
    old = experiment["trial_ids"][0]
    os.rename(run_dir / old, run_dir / XSS)
    for folder, _, files in os.walk(run_dir):
        for name in files:
            if name.endswith((".json", ".jsonl", ".txt")):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as handle:
                    text = handle.read().replace(old, XSS)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
    experiment = json.loads((run_dir / "experiment.json").read_text())
    experiment["name"] = XSS
    experiment["scheduler"]["note"] = "</script><script>alert(2)</script>"
    (run_dir / "experiment.json").write_text(json.dumps(experiment))
    lines = (run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)
    (run_dir / "events.jsonl").write_bytes(b"".join(lines[:3] + [b"{garbage\n"] + lines[3:]))
    (root / "broken").mkdir()
    (root / "broken" / "experiment.json").write_text('{"name": ')
    shutil.copytree(run_dir, root / "copy")
    server = start_server([str(root)])
    watched = Watched(browser)
    try:
        watched.page.goto(server.url + "/")
        watched.wait("() => document.querySelectorAll('#experiments tbody tr').length === 3", "three experiments")
        names = watched.js("() => [...document.querySelectorAll('#experiments tbody a')].map(a => a.textContent)")
        assert sorted(names) == sorted(["broken", XSS, XSS])
        assert "damaged" in watched.js("() => document.querySelector('#experiments').textContent")
        watched.page.goto(server.url + "/experiment?id=0/evil")
        watched.wait("() => window.pbtlab.snap", "the snapshot")
        watched.wait("() => !window.pbtlab.bestFetch && !window.pbtlab.bestWait && !window.pbtlab.timer", "the page settled")
        assert watched.js("() => document.getElementById('exp-name').textContent") == XSS
        assert watched.js("() => document.querySelector('#trials tbody td').textContent") == XSS
        problems = watched.js("() => document.getElementById('problems').textContent")
        assert "events.jsonl line 4 is damaged" in problems
        assert "alert(2)" in watched.js("() => document.getElementById('scheduler').textContent")
        assert watched.js("() => document.querySelectorAll('img, script:not([src])').length") == 0
        watched.page.goto(server.url + "/experiment?id=0/broken")
        watched.wait("() => !document.getElementById('problems').hidden", "the problem box")
        assert "cannot be shown: experiment.json is damaged" in watched.js(
            "() => document.getElementById('problems').textContent")
        assert watched.errors == [] and watched.dialogs == []
    finally:
        watched.page.close()
        server.stop()


def test_a_large_population_is_drawn_as_a_population_and_clicks_still_select(browser, tmp_path):
    from pbtlab.examples.runs import run_toy_pbt
    from pbtlab.serve.app import start_server

    root = tmp_path / "root"
    run_toy_pbt(population=48, seed=1, iterations=8, storage_path=str(root), name="many")
    expected = json.loads(json.dumps(build_figures(LiveView(str(root / "many")).read_run()[0])))
    server = start_server([str(root)])
    watched = Watched(browser)
    try:
        watched.page.goto(server.url + "/experiment?id=0/many")
        watched.wait("() => window.pbtlab && window.pbtlab.readyMs", "the drawn page")
        # above 16 trials the metric is the population's quantile bands with the top 5 trials as lines
        metric = page_figure(watched, "metric")
        assert [t["name"] for t in metric][:5] == ["5%–95% of trials"] * 2 + ["25%–75% of trials"] * 2 + ["median"]
        assert [(t["x"], t["y"]) for t in metric] == [(t["x"], t["y"]) for t in expected["metric"]["data"]]
        assert sum(t["name"].startswith(("best ", "#")) for t in metric) == 5
        # founder shares and hyperparameter bands as the server built them
        for name in ("founders", "hyperparameters"):
            drawn = page_figure(watched, name)
            assert [(t["x"], t["y"]) for t in drawn] == [(t["x"], t["y"]) for t in expected[name]["data"]], name
        founders = page_figure(watched, "founders")
        totals = [sum(t["y"][i] for t in founders) for i in range(len(founders[0]["x"]))]
        assert all(abs(total - 1) < 1e-6 for total in totals)
        # the lineage's 48 lanes are one merged trace; clicking a trial in the table draws it on top
        traces = watched.js("() => document.getElementById('plot-lineage').data.map(t => t.name)")
        assert traces[0] == "lanes" and len(traces) == 4  # lanes, exploits, ancestry, best
        target = watched.js("() => window.pbtlab.order[5]")
        watched.page.click(f"#trials tbody tr[data-trial='{target}']")
        watched.wait("() => document.getElementById('plot-lineage').data.some(t => t.name === 'selected')",
                     "the selected trial drawn on top")
        on_top = watched.js("() => document.getElementById('plot-lineage').data.find(t => t.name === 'selected')")
        assert on_top["meta"]["trial"] == target
        assert watched.errors == [] and watched.dialogs == []
    finally:
        watched.page.close()
        server.stop()
