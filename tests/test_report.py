"""The HTML report: self-contained, escaped, complete; and it renders in headless Chromium without console errors."""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import subprocess

import pytest

from pbtlab import RunConfig, TuneConfig, Tuner, tune
from pbtlab.analysis.events import describe_event
from pbtlab.analysis.lineage import RunLineage
from pbtlab.cli import main
from pbtlab.examples.runs import run_toy_pbt
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.viz.report import write_report

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NASTY = '<script>alert("x")</script>&"'


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    return run_toy_pbt(population=4, seed=0, storage_path=str(tmp_path_factory.mktemp("report_runs")), name="pbt4",
                       iterations=40)


def _nasty_trainable(config):
    for step in range(1, 9):
        tune.report({"score": config["x"] * step, "note": config["tag"]})


@pytest.fixture(scope="module")
def nasty_run(tmp_path_factory):
    """A non-toy run whose names and config values contain HTML."""
    scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2, synch=True,
                                        hyperparam_mutations={"x": tune.uniform(0.0, 1.0)}, quantile_fraction=0.5)
    tuner = Tuner(_nasty_trainable,
                  param_space={"x": tune.uniform(0.0, 1.0), "tag": tune.grid_search([NASTY, "a&b", "<b>bold</b>"])},
                  tune_config=TuneConfig(metric="score", mode="max", seed=1, scheduler=scheduler),
                  run_config=RunConfig(storage_path=str(tmp_path_factory.mktemp("nasty")), name="exp<i>&",
                                       stop={"training_iteration": 8}, verbose=0))
    return tuner.fit()


def _read(path) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _images(text: str) -> list[tuple[str, bytes]]:
    return [(mime, base64.b64decode(data)) for mime, data in
            re.findall(r'<img src="data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)"', text)]


def test_report_is_self_contained_and_complete(toy_run, tmp_path):
    path = write_report(toy_run, tmp_path / "report.html")
    text = _read(path)
    assert "<link" not in text and 'src="http' not in text and "src='http" not in text and "@import" not in text
    images = _images(text)
    assert [mime for mime, _ in images] == ["image/png", "image/gif"] + ["image/png"] * 4  # founder shares added
    assert all(data[:4] in (b"\x89PNG", b"GIF8") and len(data) > 5_000 for _, data in images)
    assert text.count("<img ") == len(images)  # every image is embedded
    for heading in ("Settings", "Final table", "Interactive plots", "Figures", "Lineage", "Event log"):
        assert f">{heading}</h2>" in text
    # the interactive plots: plotly.js once, one Plotly figure per plot, nothing loaded from elsewhere
    assert text.count("Plotly.newPlot(") == 5 and text.count('class="pbtlab-plot"') == 5
    static = write_report(toy_run, tmp_path / "static.html", interactive=False, animation=False)
    assert "<script" not in _read(static) and os.path.getsize(static) < os.path.getsize(path) / 3
    exploits = [e for e in toy_run.events if e["event"] == "exploit"]
    assert text.count('class="kind-exploit"') == len(exploits)
    assert f"All {len(exploits)} exploit edges" in text
    for result in toy_run:
        assert result.trial_id in text
    best = toy_run.get_best_result("Q", "max").trial_id
    assert re.search(r'<tr class="best"><td>★</td><td>' + best, text)
    # the event log shows each event as `pbtlab events` does (the same formatter), escaped
    for event in (exploits[0], toy_run.events[-1]):
        assert f"<td><pre>{html.escape(describe_event(event), quote=True)}</pre></td>" in text


def test_report_cli_defaults_to_the_run_directory(toy_run, capsys, monkeypatch):
    built = []  # the lineage (jumps, ancestry) is computed once for the whole report
    original = RunLineage.__init__

    def counting(self, data):
        built.append(data)
        original(self, data)

    monkeypatch.setattr(RunLineage, "__init__", counting)
    assert main(["report", toy_run.experiment_path, "--no-animation"]) == 0
    assert len(built) == 1
    path = os.path.join(toy_run.experiment_path, "report.html")
    assert capsys.readouterr().out.strip() == f"Wrote {path}"
    text = _read(path)
    assert "data:image/gif" not in text and len(_images(text)) == 5


def test_report_bad_arguments(toy_run, tmp_path, capsys):
    from pbtlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"output must end in .html, got '.*report.pdf'"):
        write_report(toy_run, tmp_path / "report.pdf")
    with pytest.raises(ConfigError, match=r"animation must be True, False or the path of an existing GIF"):
        write_report(toy_run, tmp_path / "r.html", animation=str(tmp_path / "missing.gif"))
    assert main(["report", str(tmp_path / "not_a_run")]) == 2
    assert "no experiment directory at" in capsys.readouterr().err


# -- the browser ------------------------------------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
                  "--v=0", "--virtual-time-budget=5000"]
# Added to a copy of the report only: logs how many images decoded, so the test sees them render.
IMAGE_PROBE = ("<script>window.addEventListener('load',function(){var i=document.images,n=0;"
               "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}"
               "console.log('IMAGES-DECODED '+n+'/'+i.length);});</script>")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _console(chromium: str, page: str, profile: str) -> tuple[list[str], str]:
    """Render ``page`` headless; return the console messages Chromium logged, and the DOM."""
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                           f"file://{page}"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    messages = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return messages, done.stdout


@pytest.mark.browser
def test_report_renders_in_headless_chromium_without_console_errors(toy_run, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it with scripts/ensure_chromium.sh)")
    # the probe works: a page with errors shows them
    control = tmp_path / "control.html"
    control.write_text("<html><body><script>console.error('control-error'); missing();</script></body></html>")
    messages, _ = _console(chromium, str(control), str(tmp_path / "profile0"))
    assert any("control-error" in m for m in messages) and any("Uncaught ReferenceError" in m for m in messages)

    report = write_report(toy_run, tmp_path / "report.html")
    messages, dom = _console(chromium, report, str(tmp_path / "profile1"))
    assert messages == []
    assert "Final table" in dom and toy_run[0].trial_id in dom

    probed = tmp_path / "probed.html"
    probed.write_text(_read(report).replace("</body>", IMAGE_PROBE + "</body>"),
                      encoding="utf-8")
    messages, _ = _console(chromium, str(probed), str(tmp_path / "profile2"))
    assert len(messages) == 1 and '"IMAGES-DECODED 6/6"' in messages[0], messages
