"""`pbtlab serve` without a browser: listing, tailing by byte offset, status of finished/stopped/resumed runs,
traversal refusal, escaping, damaged files, the CLI. A real server runs on a free local port."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from pbtlab.analysis.lineage import run_data
from pbtlab.examples.runs import run_toy_pbt
from pbtlab.serve.figures import build_figures, interactive_html
from pbtlab.serve.live import LiveView
from pbtlab.rundir.tail import FileTail
from pbtlab.serve.runs import PathRefused, resolve_experiment, run_state

WORKER = os.path.join(os.path.dirname(__file__), "chaos_worker.py")
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-trial toy PBT run (seed 0) under <root>/runs/p2."""
    root = tmp_path_factory.mktemp("served")
    run_toy_pbt(population=2, seed=0, storage_path=str(root / "runs"), name="p2")
    return root


@pytest.fixture(scope="module")
def server(finished):
    from pbtlab.serve.app import start_server

    running = start_server([str(finished)])
    yield running
    running.stop()


def get(server, path):
    """(status, parsed JSON or text) of GET ``path``."""
    try:
        with urllib.request.urlopen(server.url + path) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read().decode(), error.code
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def raw_get(server, raw_path):
    """Send the path exactly as written (no client-side normalisation of '..')."""
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("GET", raw_path, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


# -- tailing ------------------------------------------------------------------------------------------------
def test_tail_parses_only_complete_lines_and_continues_from_its_offset(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq": 0}\n{"seq": 1}\n{"seq": 2, "ha')
    tail = FileTail(str(path))
    first = tail.read()
    assert [r["seq"] for r in first.records] == [0, 1]
    assert first.pending_bytes == len(b'{"seq": 2, "ha') and tail.offset == len(b'{"seq": 0}\n{"seq": 1}\n')
    assert tail.read().records == []  # still half-written: not parsed
    with open(path, "ab") as handle:
        handle.write(b'lf": true}\n{"seq": 3}\n')
    second = tail.read()
    assert second.records == [{"seq": 2, "half": True}, {"seq": 3}] and second.pending_bytes == 0
    assert tail.offset == path.stat().st_size and tail.lines == 4


def test_tail_skips_a_damaged_line_naming_it_and_reports_a_shrunk_file(tmp_path):
    path = tmp_path / "result.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\n[1, 2]\n{"a": 4}\n')
    chunk = FileTail(str(path), "t/result.jsonl").read()
    assert chunk.records == [{"a": 1}, {"a": 4}]
    assert [(d.file, d.line) for d in chunk.damaged] == [("t/result.jsonl", 2), ("t/result.jsonl", 3)]
    assert "not a JSON object but list" in chunk.damaged[1].message
    tail = FileTail(str(path))
    tail.read()
    path.write_bytes(b'{"a": 1}\n')
    assert tail.read().reset


def test_poll_sends_exactly_the_appended_rows_and_events(tmp_path, finished):
    source = finished / "runs" / "p2"
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    events = (source / "events.jsonl").read_bytes().splitlines(keepends=True)
    trial = json.loads((source / "experiment.json").read_text())["trial_ids"][0]
    rows = (source / trial / "result.jsonl").read_bytes().splitlines(keepends=True)
    (copy / "events.jsonl").write_bytes(b"".join(events[:40]))
    (copy / trial / "result.jsonl").write_bytes(b"".join(rows[:30]) + rows[30][:17])
    view = LiveView(str(copy))
    snapshot = view.snapshot()
    assert snapshot["num_events"] == 40 and snapshot["status"]["state"] == "running"
    assert snapshot["incomplete"] == [f"{trial}/result.jsonl: the last line is not complete yet (17 bytes)"]
    assert view.poll() is None  # nothing appended
    with open(copy / trial / "result.jsonl", "ab") as handle:
        handle.write(rows[30][17:] + b"".join(rows[31:35]))
    with open(copy / "events.jsonl", "ab") as handle:
        handle.write(b"".join(events[40:43]))
    delta = view.poll()
    assert [r["i"] for r in delta["rows"]] == [31, 32, 33, 34, 35] and {r["t"] for r in delta["rows"]} == {trial}
    assert [e["seq"] for e in delta["events"]] == [40, 41, 42]
    assert delta["incomplete"] == [] and view.poll() is None
    restarted = [json.loads(r) for r in rows[:35] if json.loads(r)["restored_from"]]
    sent = {r["i"]: r for r in delta["rows"]}
    for row in restarted:  # a restart row carries the cloned checkpoint's (iteration, metric)
        if row["training_iteration"] in sent:
            assert sent[row["training_iteration"]]["cp"][0] == row["restored_from"]["iteration"]


# -- listing and status -----------------------------------------------------------------------------------------
def test_list_shows_name_status_trials_progress_best_and_start(server, finished):
    from pbtlab.analysis import load_results

    status, data = get(server, "/api/experiments")
    assert status == 200
    (entry,) = data["experiments"]
    grid = load_results(finished / "runs" / "p2")
    assert entry["id"] == "0/runs/p2" and entry["name"] == "p2" and entry["trials"] == 2
    assert entry["status"]["state"] == "finished" and entry["progress"] == 1.0
    assert entry["best"] == max(r.metrics["Q"] for r in grid) and entry["metric"] == "Q"
    assert entry["started"] == grid.experiment["created"]


def test_snapshot_figures_equal_the_python_figures_of_the_run(server, finished):
    status, snap = get(server, "/api/snapshot?id=0/runs/p2")
    assert status == 200 and snap["problems"] == []
    expected = json.loads(json.dumps(build_figures(run_data(str(finished / "runs" / "p2")))))
    assert snap["figures"] == expected
    events = [json.loads(line) for line in (finished / "runs" / "p2" / "events.jsonl").read_text().splitlines()]
    assert snap["num_events"] == len(events) and snap["events"] == events[-300:]
    exploits = [e for e in events if e["event"] == "exploit"]
    edges = snap["figures"]["lineage"]["data"][2]
    assert edges["name"] == "exploits" and len(edges["x"]) == 3 * len(exploits) == 3 * 24
    assert [t["status"] for t in snap["trials"]] == ["TERMINATED", "TERMINATED"]
    assert snap["experiment"]["scheduler"]["perturbation_interval"] == 4


def test_a_run_without_experiment_end_is_running_while_fresh_and_stopped_when_old(finished, tmp_path):
    copy = tmp_path / "died"
    shutil.copytree(finished / "runs" / "p2", copy)
    lines = (copy / "events.jsonl").read_bytes().splitlines(keepends=True)
    (copy / "events.jsonl").write_bytes(b"".join(lines[:-1]))
    newest = max(os.stat(copy / name).st_mtime for name in ("events.jsonl", "state.json", "experiment.json"))
    assert run_state(str(copy), now=newest + 5, stale_after=600)["state"] == "running"
    stopped = run_state(str(copy), now=newest + 3600, stale_after=600)
    assert stopped["state"] == "stopped" and "for 60 min" in stopped["label"] and "pbtlab resume" in stopped["label"]
    assert run_state(str(finished / "runs" / "p2"), now=newest + 3600)["state"] == "finished"


@pytest.mark.slow
def test_killed_then_resumed_run_shows_stopped_then_finished_and_resumed(tmp_path):
    from pbtlab.serve.app import start_server

    storage = str(tmp_path / "runs")
    subprocess.run([sys.executable, WORKER, storage, "run", "5", "150", "-"], capture_output=True, timeout=120, check=False)
    past = os.stat(os.path.join(storage, "run", "events.jsonl")).st_mtime - 3600
    for name in ("events.jsonl", "state.json", "experiment.json"):  # it died an hour ago
        os.utime(os.path.join(storage, "run", name), (past, past))
    running = start_server([storage])
    try:
        status, snap = get(running, "/api/snapshot?id=0/run")
        assert status == 200 and snap["status"]["state"] == "stopped" and "experiment_end" in snap["status"]["label"]
        assert "RUNNING" in {t["status"] for t in snap["trials"]}  # shown as INTERRUPTED by the page
        view_id = snap["id"]
        subprocess.run([sys.executable, WORKER, storage, "run", "5", "0", "-"], capture_output=True, timeout=120,
                       check=False)
        _, snap = get(running, "/api/snapshot?id=0/run")
        assert snap["status"]["state"] == "finished" and snap["event_counts"]["experiment_resume"] == 1
        assert {t["status"] for t in snap["trials"]} == {"TERMINATED"} and snap["problems"] == []
        assert view_id != snap["id"]
    finally:
        running.stop()


# -- refusing paths outside the served folders ------------------------------------------------------------------------
@pytest.mark.parametrize("experiment_id", [
    "0/../..", "0/runs/../../etc", "0/%2e%2e/%2e%2e/etc", "0//etc/passwd", "0/runs/p2/../../..", "1/runs/p2",
    "/etc", "0/runs/p2/00000", "0/\\..\\..", "0/runs/p2\x00", "x/runs/p2", "",
])
def test_experiment_ids_outside_the_served_folders_are_refused(server, experiment_id):
    for endpoint in ("snapshot", "events", "best", "rungs"):
        status, body = get(server, f"/api/{endpoint}?id={urllib.parse.quote(experiment_id, safe='/%')}")
        assert status == 404 and "error" in body


@pytest.mark.parametrize("raw_path", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fetc%2fpasswd",
    "/../../../etc/passwd", "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/experiment.js/../../x",
    "/runs/p2/events.jsonl", "/0/runs/p2/state.json",
])
def test_raw_traversal_paths_are_refused(server, raw_path):
    status, body = raw_get(server, raw_path)
    assert status in (403, 404) and b"root:" not in body and b"experiment_start" not in body


def test_a_symlink_pointing_out_of_the_served_folder_is_neither_listed_nor_served(tmp_path, finished):
    from pbtlab.serve.app import start_server

    root = tmp_path / "root"
    root.mkdir()
    os.symlink(finished / "runs" / "p2", root / "escape")
    os.symlink(finished / "runs", root / "escape_dir")
    running = start_server([str(root)])
    try:
        assert get(running, "/api/experiments")[1]["experiments"] == []
        for experiment_id in ("0/escape", "0/escape_dir/p2"):
            assert get(running, f"/api/snapshot?id={experiment_id}")[0] == 404
    finally:
        running.stop()
    with pytest.raises(PathRefused, match="leaves the served folder"):
        resolve_experiment([str(root)], "0/escape")


def test_the_server_is_read_only_and_rejects_foreign_host_names(server):
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    for method in ("POST", "PUT", "DELETE"):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request(method, "/api/snapshot?id=0/runs/p2", body=b"{}")
        assert connection.getresponse().status == 405
        connection.close()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/api/experiments", headers={"Host": "attacker.example"})
    assert connection.getresponse().status == 400  # DNS rebinding: only loopback names reach a loopback server
    connection.close()


def test_static_files_are_a_fixed_list_and_plotly_is_the_basic_bundle_shipped_with_pbtlab(server):
    import hashlib

    from pbtlab.serve.figures import PLOTLY_BASIC_SHA256, plotly_js_path

    status, body = raw_get(server, "/static/plotly.min.js")
    with open(plotly_js_path(), "rb") as handle:
        assert status == 200 and body == handle.read()
    assert body.startswith(b"/**\n* plotly.js (basic - minified) v4.1.1")
    assert hashlib.sha256(body).hexdigest() == PLOTLY_BASIC_SHA256  # the npm package's file, unchanged
    assert raw_get(server, "/static/app.py")[0] == 404 and raw_get(server, "/static/index.html")[0] == 404


# -- escaping and damaged files ----------------------------------------------------------------------------------------
def rename_trial(run_dir, old, new):
    """Rename a trial everywhere in a copied run (its folder and every file naming it)."""
    os.rename(os.path.join(run_dir, old), os.path.join(run_dir, new))
    for folder, _, files in os.walk(run_dir):
        for name in files:
            if name.endswith((".json", ".jsonl", ".txt")):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text.replace(old, new))


@pytest.fixture
def hostile(tmp_path, finished):
    """A copy of the finished run with markup in its name, a trial id and the scheduler settings, a damaged
    event line, a half-written last result line; and a second experiment whose experiment.json is damaged."""
    root = tmp_path / "hostile_root"
    copy = root / "evil"
    shutil.copytree(finished / "runs" / "p2", copy)
    experiment = json.loads((copy / "experiment.json").read_text())
    rename_trial(str(copy), experiment["trial_ids"][0], XSS)
    experiment = json.loads((copy / "experiment.json").read_text())
    experiment["name"] = XSS
    experiment["scheduler"]["note"] = "</script><script>alert(2)</script>"
    (copy / "experiment.json").write_text(json.dumps(experiment))
    lines = (copy / "events.jsonl").read_bytes().splitlines(keepends=True)
    lines.insert(5, b'{"seq": "broken\n')
    (copy / "events.jsonl").write_bytes(b"".join(lines))
    trial = experiment["trial_ids"][1]
    with open(copy / trial / "result.jsonl", "ab") as handle:
        handle.write(b'{"training_iteration": 101, "Q": 1.')
    broken = root / "broken"
    broken.mkdir()
    (broken / "experiment.json").write_text('{"name": "half')
    return root


def test_damaged_and_half_written_files_are_reported_and_the_server_stays_up(hostile):
    from pbtlab.serve.app import start_server

    running = start_server([str(hostile)])
    try:
        listing = {e["id"]: e for e in get(running, "/api/experiments")[1]["experiments"]}
        assert listing["0/broken"]["status"]["state"] == "damaged"
        assert "experiment.json is damaged" in listing["0/broken"]["status"]["label"]
        assert listing["0/evil"]["name"] == XSS
        status, snap = get(running, "/api/snapshot?id=0/broken")
        assert status == 200 and snap["fatal"].startswith("experiment.json is damaged")
        status, snap = get(running, "/api/snapshot?id=0/evil")
        assert status == 200
        assert snap["problems"] == [("events.jsonl line 6 is damaged (Unterminated string starting at: line 1 "
                                     "column 9 (char 8)); it is skipped")]
        trial = snap["experiment"]["trial_ids"][1]
        assert snap["incomplete"] == [f"{trial}/result.jsonl: the last line is not complete yet (35 bytes)"]
        assert snap["trials"][1]["iteration"] == 100
        assert get(running, "/api/experiments")[0] == 200  # still serving
    finally:
        running.stop()


def test_plotly_labels_escape_markup(hostile):
    figures = build_figures(LiveView(str(hostile / "evil")).read_run()[0])
    trace = figures["metric"]["data"][0]
    assert trace["name"] == "&lt;img src=x onerror=alert(1)&gt;" and trace["meta"]["trial"] == XSS
    assert XSS not in json.dumps(figures).replace('"trial": "' + XSS, "")  # only as data, never as a label


def test_interactive_html_inlines_plotly_and_cannot_be_closed_by_data(hostile):
    fragment = interactive_html(LiveView(str(hostile / "evil")).read_run()[0])
    assert fragment.count("</script>") == 6 and XSS not in fragment and "<img" not in fragment
    assert "https://" not in fragment.split("</script>", 1)[1]  # figures reference nothing online
    assert 'id="pbtlab-lineage"' in fragment


# -- command line ----------------------------------------------------------------------------------------------------------
def _cli(*args, timeout=30):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([sys.executable, "-m", "pbtlab.cli", "serve", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_cli_refuses_a_missing_folder_naming_it(tmp_path):
    process = _cli(str(tmp_path / "nope"))
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert f"DIR must be a folder of experiments, got '{tmp_path / 'nope'}' (does not exist)" in err


def test_cli_serves_on_loopback_and_warns_only_for_another_host(finished):
    for host, warned in (("127.0.0.1", False), ("0.0.0.0", True)):
        process = _cli(str(finished), "--host", host, "--port", "0")
        try:
            line = process.stdout.readline()
            assert line.startswith(f"pbtlab serve: {finished} at http://{host}:")
            url = line.split(" at ")[1].split()[0].replace("0.0.0.0", "127.0.0.1")
            with urllib.request.urlopen(url + "api/experiments") as response:
                assert json.loads(response.read())["experiments"][0]["name"] == "p2"
        finally:
            process.terminate()
            _, err = process.communicate(timeout=30)
        assert ("WARNING: listening on 0.0.0.0" in err) is warned


def test_building_the_parser_does_not_import_the_web_stack():
    code = ("import sys; from pbtlab.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'plotly') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_missing_stack_names_the_extra(monkeypatch):
    from pbtlab.serve.stack import require_serve_stack

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(ImportError, match=r"pip install 'pbtlab\[serve\]'"):
        require_serve_stack()


def test_a_restart_waits_until_its_donors_checkpoint_row_is_read(tmp_path, finished):
    source = finished / "runs" / "p2"
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    first, second = json.loads((source / "experiment.json").read_text())["trial_ids"]
    rows = {t: (source / t / "result.jsonl").read_bytes().splitlines(keepends=True) for t in (first, second)}
    restart = next(i for i, line in enumerate(rows[first]) if json.loads(line)["restored_from"])
    donor_checkpoint = json.loads(rows[first][restart])["restored_from"]["checkpoint"]
    assert donor_checkpoint.startswith(second + "/")
    (copy / first / "result.jsonl").write_bytes(b"".join(rows[first][:restart]))
    (copy / second / "result.jsonl").write_bytes(b"")
    view = LiveView(str(copy))
    view.snapshot()
    with open(copy / first / "result.jsonl", "ab") as handle:  # the target's restart is on disk first
        handle.write(rows[first][restart])
    delta = view.poll()
    assert delta is None or [r for r in delta["rows"] if r["t"] == first] == []
    with open(copy / second / "result.jsonl", "ab") as handle:
        handle.write(b"".join(rows[second][:restart]))
    delta = view.poll()
    (sent,) = [r for r in delta["rows"] if r["t"] == first]
    donor_row = next(json.loads(line) for line in rows[second]
                     if json.loads(line)["checkpoint_dir_name"] == donor_checkpoint.split("/")[1])
    assert sent["cp"] == [donor_row["training_iteration"], donor_row["Q"]]


def growing_copy(source, copy):
    """A copy of the finished run ``source`` cut to its first 50 events, and a function that appends the next 10
    (as a live run grows) and returns the bytes it appended."""
    shutil.copytree(source, copy)
    events = (source / "events.jsonl").read_bytes().splitlines(keepends=True)
    (copy / "events.jsonl").write_bytes(b"".join(events[:50]))

    def grow():
        appended = b"".join(events[50:60])
        with open(copy / "events.jsonl", "ab") as handle:
            handle.write(appended)
        return appended

    return copy, grow


def test_a_second_visitor_reads_only_what_was_appended_and_continues_from_there(tmp_path, finished):
    from pbtlab.serve.live import SnapshotReaders

    copy, grow = growing_copy(finished / "runs" / "p2", tmp_path / "copy")
    readers = SnapshotReaders()
    first, first_view = readers.open(str(copy))
    reader, _ = readers._reader(str(copy))
    read_before = reader.events.offset
    appended = grow()
    second, second_view = readers.open(str(copy))
    assert reader.events.offset - read_before == len(appended)  # only the new bytes were read
    assert (first["num_events"], second["num_events"]) == (50, 60) and first["id"] != second["id"]
    assert second_view.poll() is None
    assert [e["seq"] for e in first_view.poll()["events"]] == list(range(50, 60))


def test_non_finite_values_reach_the_browser_as_strings(tmp_path, finished):
    from pbtlab.serve.live import to_json

    copy = tmp_path / "copy"
    shutil.copytree(finished / "runs" / "p2", copy)
    with open(copy / "events.jsonl", "a") as handle:
        handle.write('{"seq": 999, "event": "unrankable_score", "trial_id": "x", "value": NaN, "metric": "Q"}\n')
    text = to_json(LiveView(str(copy)).snapshot())
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON a browser accepts"))
    assert parsed["events"][-1]["value"] == "NaN"


def test_an_interrupted_run_shows_as_interrupted_not_finished(tmp_path):
    """Ctrl-C (or an error) still writes experiment_end, with the unfinished trials' statuses: not finished."""
    import signal

    from pbtlab import tune
    from pbtlab.config import RunConfig, TuneConfig
    from pbtlab.tuner import Tuner

    def trainable(config):
        for step in range(1, 10):
            if step == 3 and config["x"] == 1:
                os.kill(os.getpid(), signal.SIGINT)  # as a user pressing Ctrl-C
            tune.report({"score": float(step)})

    storage = str(tmp_path / "runs")
    with pytest.raises(KeyboardInterrupt):
        Tuner(trainable, param_space={"x": tune.grid_search([0, 1])}, tune_config=TuneConfig(seed=0),
              run_config=RunConfig(storage_path=storage, name="run", verbose=0)).fit()
    path = os.path.join(storage, "run")
    with open(os.path.join(path, "events.jsonl")) as handle:
        last = json.loads(handle.read().splitlines()[-1])
    assert last["event"] == "experiment_end"
    status = run_state(path)
    assert status["state"] == "interrupted"
    assert "2 of 2 trials unfinished" in status["label"] and "pbtlab resume" in status["label"]
    snapshot = LiveView(path).snapshot()
    assert snapshot["status"]["state"] == "interrupted"


# -- scale: figures built once and shared, population views, compressed updates --------------------------------------
def test_figures_are_built_once_per_state_of_the_files_and_shared_between_visitors(tmp_path, finished, monkeypatch):
    import pbtlab.serve.figures as figures_module
    from pbtlab.serve.live import SnapshotReaders

    copy, grow = growing_copy(finished / "runs" / "p2", tmp_path / "copy")
    built = []
    original = figures_module.build_figures
    monkeypatch.setattr(figures_module, "build_figures", lambda run: built.append(run) or original(run))
    readers = SnapshotReaders()
    first, _ = readers.open(str(copy))
    second, _ = readers.open(str(copy))
    population = readers.population(str(copy))
    assert len(built) == 1 and first["figures"] == second["figures"] and first["id"] != second["id"]
    assert population["figures"]["founders"] == first["figures"]["founders"]
    grow()
    third, _ = readers.open(str(copy))
    assert len(built) == 2 and third["num_events"] == 60  # appended lines: built again, once
    readers.population(str(copy))
    assert len(built) == 2


def test_the_best_trials_view_is_built_once_per_state_and_trial(tmp_path, finished, monkeypatch):
    """/api/best (the schedule and ancestry of a trial) is shared by visitors like the figures: built again only
    for another trial or when lines were appended."""
    import pbtlab.serve.figures as figures_module
    from pbtlab.serve.live import SnapshotReaders

    copy, grow = growing_copy(finished / "runs" / "p2", tmp_path / "copy")
    built = []
    original = figures_module.schedule_figure
    monkeypatch.setattr(figures_module, "schedule_figure", lambda run, trial: built.append(trial) or original(run, trial))
    readers = SnapshotReaders()
    first, second = readers.best(str(copy), None), readers.best(str(copy), None)
    assert built == [None] and first == second and first["schedule"]["data"]
    trial_id = json.loads((copy / "experiment.json").read_text())["trial_ids"][1]
    assert readers.best(str(copy), trial_id)["schedule"] != first["schedule"] and built == [None, trial_id]
    assert readers.best(str(copy), "nope") == {"error": "no trial 'nope' in this experiment"}
    grow()
    readers.best(str(copy), None)
    readers.best(str(copy), None)
    assert built == [None, trial_id, None]  # appended lines: built again, once


def test_population_endpoint_and_forms_follow_the_population_size(server, finished):
    status, data = get(server, "/api/population?id=0/runs/p2")
    assert status == 200 and sorted(data["figures"]) == ["founders", "hyperparameters"]  # 2 trials: lines, lanes
    expected = json.loads(json.dumps(build_figures(run_data(str(finished / "runs" / "p2")))))
    assert data["figures"]["founders"] == expected["founders"]
    founders = data["figures"]["founders"]["data"]
    assert all(abs(sum(t["y"][i] for t in founders) - 1) < 1e-9 for i in range(len(founders[0]["x"])))
    assert get(server, "/api/population?id=0/../etc")[0] == 404


def test_the_update_stream_is_gzip_compressed_and_flushed_per_message(finished, tmp_path):
    import zlib

    from pbtlab.serve.app import start_server

    copy = tmp_path / "root" / "p2"
    shutil.copytree(finished / "runs" / "p2", copy)
    events = (copy / "events.jsonl").read_bytes().splitlines(keepends=True)
    (copy / "events.jsonl").write_bytes(b"".join(events[:40]))
    running = start_server([str(tmp_path / "root")], poll_interval=0.1)
    try:
        status, snap = get(running, "/api/snapshot?id=0/p2")
        assert status == 200 and snap["num_events"] == 40
        host, port = running.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=20)
        connection.request("GET", f"/api/stream?view={snap['id']}", headers={"Accept-Encoding": "gzip"})
        response = connection.getresponse()
        assert response.getheader("Content-Encoding") == "gzip"
        decoder = zlib.decompressobj(31)
        text = decoder.decompress(response.read1(65536)).decode()
        assert text == "retry: 5000\n\n"  # decodable on its own: flushed, not buffered
        with open(copy / "events.jsonl", "ab") as handle:
            handle.write(b"".join(events[40:45]))
        while "event: delta" not in text or not text.endswith("\n\n"):
            text += decoder.decompress(response.read1(65536)).decode()
        delta = json.loads(text.split("event: delta\ndata: ", 1)[1].split("\n", 1)[0])
        assert [e["seq"] for e in delta["events"]] == [json.loads(line)["seq"] for line in events[40:45]]
        connection.close()
    finally:
        running.stop()


def test_the_server_and_the_report_need_no_plotly_package():
    code = ("import sys; sys.modules['plotly'] = None; import pbtlab.serve.app; "
            "from pbtlab.serve.figures import plotly_js_path; print(plotly_js_path().endswith('plotly-basic.min.js'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_a_warmed_server_answers_a_first_visit_without_building_or_compressing_anything(finished, monkeypatch):
    """The server's start fills the shared caches (the run's figures and snapshot, the page's files gzip-compressed),
    so the first visitor, with an empty browser cache, is answered from them like any later one."""
    import gzip

    import pbtlab.serve.app as app_module
    import pbtlab.serve.figures as figures_module
    from pbtlab.serve.app import STATIC_FILES, start_server

    expected = json.loads(json.dumps(build_figures(run_data(str(finished / "runs" / "p2")))))
    running = start_server([str(finished)])
    try:
        assert running.server.config.app.state.warmed.wait(60)
        built, compressed = [], []
        monkeypatch.setattr(figures_module, "build_figures", lambda run: built.append(run) or {})
        monkeypatch.setattr(app_module, "_gzip", lambda data: compressed.append(data) or b"")
        status, snapshot = get(running, "/api/snapshot?id=0/runs/p2")
        assert status == 200 and snapshot["figures"] == expected
        status, population = get(running, "/api/population?id=0/runs/p2")
        assert status == 200 and population["figures"]["founders"] == expected["founders"]
        host, port = running.url.removeprefix("http://").split(":")
        for name in STATIC_FILES:
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.request("GET", f"/static/{name}", headers={"Accept-Encoding": "gzip"})
            response = connection.getresponse()
            body = response.read()
            connection.close()
            with open(app_module.StaticFiles.path(name), "rb") as handle:
                assert response.getheader("Content-Encoding") == "gzip" and gzip.decompress(body) == handle.read()
        assert built == [] and compressed == []  # nothing was built or compressed for this first visit
    finally:
        running.stop()


def test_the_pages_files_carry_an_etag_a_revalidation_gets_304_and_a_changed_file_is_sent_anew(
        server, tmp_path, monkeypatch):
    from pbtlab.serve.app import StaticFiles

    host, port = server.url.removeprefix("http://").split(":")

    def fetch(headers):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/static/experiment.js", headers=headers)
        response = connection.getresponse()
        answer = response.status, response.getheader("ETag"), response.getheader("Cache-Control"), response.read()
        connection.close()
        return answer

    status, etag, cache, body = fetch({})
    with open(StaticFiles.path("experiment.js"), "rb") as handle:
        assert status == 200 and body == handle.read() and cache == "no-cache" and etag.startswith('"')
    assert fetch({"If-None-Match": etag}) == (304, etag, "no-cache", b"")  # the browser's copy is current
    assert fetch({"If-None-Match": '"another-version"'})[0::3] == (200, body)

    copy = tmp_path / "boot.js"
    copy.write_text("one")
    monkeypatch.setattr(StaticFiles, "path", staticmethod(lambda name: str(copy)))
    files = StaticFiles()
    first = files.get("boot.js")
    assert files.get("boot.js") is first and first.body == b"one"  # read once while the file is unchanged
    copy.write_text("two!")
    assert files.get("boot.js").body == b"two!" and files.get("boot.js").etag != first.etag
