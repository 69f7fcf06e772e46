"""How `pbtlab serve` copes with a 1,024-trial experiment: first page load, and what each live update costs.

    python bench/serve_scale.py                       # 1,024 trials x 100 iterations, 3 page loads
    python bench/serve_scale.py --trials 64 --repeats 5

1. Runs a real PBT experiment (in-process, a trivial trainable that checkpoints every 4 steps) with
   ``--trials`` trials, and the same with 2 trials (the peer the ratios compare with).
2. First page: ``--repeats`` fresh Chromium pages (Debian's /usr/bin/chromium, through Playwright), timed
   by the page from navigation start until the snapshot is drawn (table, the five plots, event log). The
   server reads the runs in the background when it starts (as ``pbtlab serve`` does); the script waits for
   that (and prints how long it took) before the first visits (of both runs, before any replay restarts the
   server), each in a fresh browser profile, which also downloads plotly.js; later visits (median) find it
   cached. For the first visit, the page's Resource Timing of the snapshot and of plotly.js. Plus the
   snapshot's size (raw and gzip) and the server's time to answer it.
3. Updates: a copy of the run is replayed as a live run writes it: the first half of the iterations,
   then ``--steps`` synchronous rounds (every trial's next 4 rows and the events up to them). The page follows by server-sent events;
   the script reports bytes received per update (as the page decodes them, and on the wire, gzip-compressed
   as the server sends them), the server's work per poll (with and without new lines) and the page's redraw
   time.

Prints medians and ratios; the figures in docs/serve.md come from this script.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def make_run(storage: str, trials: int, iterations: int) -> str:
    """A finished PBT experiment with ``trials`` trials; returns its directory."""
    from pbtlab import tune
    from pbtlab.config import RunConfig, TuneConfig
    from pbtlab.schedulers import PopulationBasedTraining
    from pbtlab.tuner import Tuner

    def trainable(config):
        step, score = 0, 0.0
        checkpoint = tune.get_checkpoint()
        if checkpoint:
            with open(os.path.join(checkpoint.path, "state")) as handle:
                step_text, score_text = handle.read().split()
                step, score = int(step_text), float(score_text)
        while True:
            step += 1
            score += config["rate"] * (1.0 - score / 200.0)
            if step % 4 == 0:
                with tempfile.TemporaryDirectory() as tmp:
                    with open(os.path.join(tmp, "state"), "w") as handle:
                        handle.write(f"{step} {score}")
                    tune.report({"score": score}, checkpoint=tune.Checkpoint.from_directory(tmp))
            else:
                tune.report({"score": score})

    scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=4,
                                        hyperparam_mutations={"rate": tune.uniform(0.1, 2.0)}, synch=True)
    Tuner(trainable, param_space={"rate": tune.uniform(0.1, 2.0)},
          tune_config=TuneConfig(metric="score", mode="max", num_samples=trials, seed=0, scheduler=scheduler),
          run_config=RunConfig(storage_path=storage, name=f"scale_{trials}", verbose=0,
                               stop={"training_iteration": iterations})).fit()
    return os.path.join(storage, f"scale_{trials}")


def _finished(path: str, iterations: int) -> bool:
    """Whether ``path`` holds a finished run of ``iterations`` iterations (so a kept run is reused as it is)."""
    with open(os.path.join(path, "events.jsonl"), "rb") as handle:
        last = json.loads(handle.read().splitlines()[-1])
    with open(os.path.join(path, "experiment.json")) as handle:
        stop = json.load(handle).get("stop") or {}
    return last.get("event") == "experiment_end" and stop.get("training_iteration") == iterations


def wait(page, expression, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {expression}")
        time.sleep(0.02)


def first_page(browser, url: str, experiment_id: str, repeats: int) -> dict:
    """Median time to a drawn page, and the snapshot's bytes (raw and gzip) and server time."""
    loads, scripts, plots, fetches = [], [], [], []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # one browser cache for all visits
    for _ in range(repeats):
        page = context.new_page()
        page.goto(f"{url}/experiment?id={experiment_id}")
        wait(page, "() => window.pbtlab && window.pbtlab.readyMs")
        loads.append(page.evaluate("() => window.pbtlab.readyMs") / 1000)
        # the page's Resource Timing: from request to last byte, for the snapshot and plotly.js (0 if cached)
        fetches.append(page.evaluate("""() => Object.fromEntries(performance.getEntriesByType('resource')
            .filter((e) => e.name.includes('/api/snapshot') || e.name.endsWith('/plotly.min.js'))
            .map((e) => [e.name.includes('/api/snapshot') ? 'snapshot' : 'plotly',
                         e.transferSize ? (e.responseEnd - e.requestStart) / 1000 : 0]))"""))
        scripts.append(page.evaluate("() => window.pbtlab.timings.scripts") / 1000)  # when experiment.js starts
        plots.append(page.evaluate("() => ['metric', 'founders', 'lineage', 'hyperparameters', 'schedule']"
                                   ".reduce((sum, name) => sum + (window.pbtlab.timings[name] || 0), 0)") / 1000)
        page.close()
    context.close()
    server_times = []  # the server's shared reader has read the files already: these are repeat visits
    for _ in range(repeats):
        started = time.perf_counter()
        raw = urllib.request.urlopen(f"{url}/api/snapshot?id={experiment_id}").read()
        server_times.append(time.perf_counter() - started)
    later = list(range(1, len(loads))) or [0]
    return {"cold_s": loads[0], "cold_snapshot_s": fetches[0]["snapshot"], "cold_plotly_s": fetches[0]["plotly"],
            "load_s": statistics.median(loads[i] for i in later),
            "scripts_s": statistics.median(scripts[i] for i in later),
            "own_s": statistics.median(loads[i] - scripts[i] for i in later),
            "plots_s": statistics.median(plots[i] for i in later), "snapshot_bytes": len(raw), "snapshot_gzip": len(gzip.compress(raw)),
            "snapshot_s": statistics.median(server_times)}


def replay_slices(source: str, steps: int, interval: int = 4) -> tuple[dict, list[dict]]:
    """The run as a live server sees it: the first half of the iterations, then ``steps`` synchronous rounds
    (every trial's next ``interval`` rows, and the events written up to the round's last row)."""
    def lines(*parts: str) -> list[bytes]:
        with open(os.path.join(source, *parts), "rb") as handle:
            return handle.read().splitlines(keepends=True)

    events = lines("events.jsonl")
    with open(os.path.join(source, "experiment.json")) as handle:
        experiment = json.load(handle)
    parsed = {t: [(json.loads(line), line) for line in lines(t, "result.jsonl")] for t in experiment["trial_ids"]}
    last = max(row["training_iteration"] for rows in parsed.values() for row, _ in rows)
    bounds = [last // 2 + interval * k for k in range(steps + 1)]
    event_times = [(json.loads(line)["time"], line) for line in events]
    slices, done_time, lower = [], float("-inf"), 0
    for upper in bounds:
        rows = {t: [line for row, line in items if lower < row["training_iteration"] <= upper]
                for t, items in parsed.items()}
        until = max((row["timestamp"] for items in parsed.values() for row, _ in items
                     if lower < row["training_iteration"] <= upper), default=done_time)
        slices.append({"rows": rows, "events": [line for t, line in event_times if done_time < t <= until]})
        done_time, lower = until, upper
    return experiment, slices


def write_slice(target: str, part: dict) -> None:
    with open(os.path.join(target, "events.jsonl"), "ab") as handle:
        handle.write(b"".join(part["events"]))
    for trial, lines in part["rows"].items():
        if lines:
            with open(os.path.join(target, trial, "result.jsonl"), "ab") as handle:
                handle.write(b"".join(lines))


def updates(browser, url: str, source: str, root: str, steps: int) -> dict:
    """Replay the run into ``root/replay``; measure bytes per update, server poll cost and redraw time."""
    import zlib

    from pbtlab.serve.live import LiveView, to_json

    target = os.path.join(root, "replay")
    os.makedirs(target)
    experiment, slices = replay_slices(source, steps)
    shutil.copy(os.path.join(source, "experiment.json"), target)
    for trial in experiment["trial_ids"]:
        os.makedirs(os.path.join(target, trial))
        shutil.copy(os.path.join(source, trial, "params.json"), os.path.join(target, trial))
    write_slice(target, slices[0])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: print("console:", m.type, m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: print("page error:", e))
    page.goto(f"{url}/experiment?id=1/replay")
    wait(page, "() => window.pbtlab && window.pbtlab.snap")
    probe = LiveView(target)  # the server's work per poll, measured on the same files
    probe.snapshot()
    idle = []
    for _ in range(20):
        started = time.perf_counter()
        probe.poll()
        idle.append(time.perf_counter() - started)
    busy, sizes, lines, draws, wire = [], [], [], [], []
    stream = zlib.compressobj(6, zlib.DEFLATED, 31)  # as the server compresses the stream: gzip, flushed per message
    for part in slices[1:]:
        before = page.evaluate("() => [window.pbtlab.deltas, window.pbtlab.bytes, window.pbtlab.numEvents, "
                               "window.pbtlab.rowsSeen]")
        write_slice(target, part)
        started = time.perf_counter()
        delta = probe.poll()
        busy.append(time.perf_counter() - started)
        if delta is not None:
            message = f"event: delta\ndata: {to_json(delta)}\n\n".encode()
            wire.append(len(stream.compress(message) + stream.flush(zlib.Z_SYNC_FLUSH)))
        new_rows = sum(len(v) for v in part["rows"].values())
        lines.append(len(part["events"]) + new_rows)
        wait(page, f"() => window.pbtlab.numEvents === {before[2] + len(part['events'])} && "
                   f"window.pbtlab.rowsSeen >= {before[3] + new_rows}")
        page.evaluate("() => { window.pbtlab.drawCost = {}; }")
        wait(page, "() => !window.pbtlab.timer && window.pbtlab.dirty.size === 0")
        after = page.evaluate("() => [window.pbtlab.deltas, window.pbtlab.bytes, window.pbtlab.drawCost]")
        sizes.append(after[1] - before[1])
        draws.append(max(after[2].values(), default=0.0))
        assert delta is not None
        time.sleep(1.0)  # let the page settle before the next round, as a live run's rounds are apart
    page.close()
    return {"idle_poll_ms": 1000 * statistics.median(idle), "busy_poll_ms": 1000 * statistics.median(busy),
            "update_bytes": statistics.median(sizes), "lines_per_update": statistics.median(lines),
            "update_gzip": statistics.median(wire),
            "draw_ms": statistics.median(draws), "updates": len(sizes)}


def report(browser, run_dir: str, folder: str, repeats: int) -> dict:
    """``pbtlab report`` of the run: seconds to write it (median of ``repeats``, each reading the run afresh),
    and seconds until Chromium has drawn its five interactive plots (median of ``repeats`` fresh pages)."""
    from pbtlab.viz.report import write_report

    path = os.path.join(folder, "report.html")
    writes, opens = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        write_report(run_dir, path)
        writes.append(time.perf_counter() - started)
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        page.goto("file://" + path, wait_until="load")
        wait(page, "() => document.querySelectorAll('.pbtlab-plot .main-svg').length >= 5")
        opens.append(time.perf_counter() - started)
        page.close()
    return {"report_write_s": statistics.median(writes), "report_open_s": statistics.median(opens),
            "report_bytes": os.path.getsize(path)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="live updates replayed (one PBT round each); 0: none")
    parser.add_argument("--report", action="store_true", help="also time `pbtlab report` of both runs (writing "
                                                                    "it, and opening it in Chromium)")
    parser.add_argument("--runs", default=None, help="a folder to keep the generated runs in and reuse them from "
                                                      "(default: a temporary folder, generated each time)")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
    from playwright.sync_api import sync_playwright

    from pbtlab.serve.app import start_server

    with tempfile.TemporaryDirectory() as storage:
        runs = os.path.abspath(args.runs) if args.runs else os.path.join(storage, "runs")
        replays = os.path.join(storage, "replays")
        os.makedirs(replays)
        results = {}
        for trials in (2, args.trials):
            started = time.perf_counter()
            path = os.path.join(runs, f"scale_{trials}")
            if os.path.isfile(os.path.join(path, "events.jsonl")) and _finished(path, args.iterations):
                print(f"reusing {path}")
                continue
            path = make_run(runs, trials, args.iterations)
            print(f"generated {trials} trials x {args.iterations} iterations in {time.perf_counter() - started:.1f} s"
                  f" ({sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs if f.endswith('.jsonl')) / 1e6:.1f} MB of JSON lines)")
        started = time.perf_counter()
        server = start_server([runs, replays], poll_interval=0.5)
        server.server.config.app.state.warmed.wait(600)  # the server reads the runs at start, before any visit
        print(f"server started and read both runs (figures built) in {time.perf_counter() - started:.1f} s")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            # every first page before any replay: a replay restarts the server without reading the kept runs,
            # and a first visit to that server would time reading 47 MB of JSON lines, not the page
            for trials in (2, args.trials):
                results[trials] = first_page(browser, server.url, f"0/scale_{trials}", args.repeats)
            for trials in (2, args.trials):
                if args.report:
                    results[trials].update(report(browser, os.path.join(runs, f"scale_{trials}"), storage,
                                                  args.repeats))
                root = os.path.join(replays, f"r{trials}")
                os.makedirs(root)
                if args.steps:
                    server.stop()
                    server = start_server([runs, root], poll_interval=0.5, warm=False)
                    results[trials].update(updates(browser, server.url, os.path.join(runs, f"scale_{trials}"), root,
                                                   args.steps))
            browser.close()
        server.stop()
    peer, big = results[2], results[args.trials]
    print()
    print(f"{'':42} {'2 trials':>12} {f'{args.trials} trials':>14} {'ratio':>8}")
    rows = [("first visit, page drawn (s)", "cold_s", "{:.2f}"),
            ("  its snapshot: request to last byte (s)", "cold_snapshot_s", "{:.3f}"),
            ("  its plotly.js: request to last byte (s)", "cold_plotly_s", "{:.3f}"),
            ("later visits, page drawn (s)", "load_s", "{:.2f}"),
            ("  of which HTML and scripts (s)", "scripts_s", "{:.2f}"), ("  then snapshot + drawing (s)", "own_s", "{:.2f}"),
            ("  of which the five plots (s)", "plots_s", "{:.2f}"), ("snapshot built by server (s)", "snapshot_s", "{:.3f}"),
            ("snapshot bytes (gzip)", "snapshot_gzip", "{:,.0f}"),
            ("pbtlab report: written in (s)", "report_write_s", "{:.2f}"),
            ("pbtlab report: plots drawn in Chromium (s)", "report_open_s", "{:.2f}"),
            ("pbtlab report: file size (bytes)", "report_bytes", "{:,.0f}"), ("snapshot bytes (raw JSON)", "snapshot_bytes", "{:,.0f}"),
            ("lines appended per update", "lines_per_update", "{:,.0f}"),
            ("bytes received per round", "update_bytes", "{:,.0f}"),
            ("  on the wire, gzip stream", "update_gzip", "{:,.0f}"),
            ("server poll, nothing new (ms)", "idle_poll_ms", "{:.2f}"),
            ("server poll, one round new (ms)", "busy_poll_ms", "{:.1f}"), ("page redraw per update (ms)", "draw_ms", "{:.0f}")]
    for label, key, form in rows:
        if key not in big:
            continue
        ratio = big[key] / peer[key] if peer[key] else float("nan")
        print(f"{label:42} {form.format(peer[key]):>12} {form.format(big[key]):>14} {ratio:>7.1f}x")
    if "update_bytes" not in big:
        return
    per_line = big["update_bytes"] / max(1, big["lines_per_update"])
    print(f"\nbytes per appended line at {args.trials} trials: {per_line:.0f} raw, "
          f"{big['update_gzip'] / max(1, big['lines_per_update']):.0f} on the wire; medians of {args.repeats} page "
          f"loads and {big['updates']} updates; plotly.js's basic bundle (1.2 MB, 0.4 MB gzip) is cached after the "
          "first page")


if __name__ == "__main__":
    main()
