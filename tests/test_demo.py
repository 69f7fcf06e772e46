"""``pbtlab demo``: the tutorial end to end into one folder (what ``make demo`` runs)."""

from __future__ import annotations

import os
import re

import pytest
from PIL import Image

from pbtlab.cli import main

EXPECTED_FILES = ["figure2.png", "grid_search.png", "pbt_2_trials.gif", "pbt_2_trials.png", "pbt_4_lineage.png",
                  "pbt_4_population.png", "pbt_4_schedule.png", "pbt_4_trials.gif", "pbt_4_trials.png", "report.html"]


@pytest.mark.slow
def test_demo_writes_every_figure_animation_and_the_report(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["demo", "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert sorted(name for name in os.listdir(output) if name != "runs") == EXPECTED_FILES
    for name in EXPECTED_FILES:
        assert os.path.getsize(output / name) > 20_000, name
        assert f"  {name}" in printed
    for name in ("pbt_2_trials.gif", "pbt_4_trials.gif"):
        with Image.open(output / name) as gif:
            assert gif.n_frames == 101
    assert sorted(os.listdir(output / "runs")) == ["figure2_exploit_only", "figure2_explore_only", "grid_search",
                                                  "pbt_2_trials", "pbt_4_trials"]
    finals = {(m.group(1).strip(), m.group(2)): float(m.group(3)) for m in re.finditer(
        r"^(PBT, 2 trials|grid search|PBT, 4 trials|exploit only|explore only)\s+\S+\s+(h = \[[^\]]+\])\s+([-\d.]+)$",
        printed, re.MULTILINE)}
    assert len(finals) == 12
    assert finals[("PBT, 2 trials", "h = [0, 1]")] >= 1.19 and finals[("PBT, 2 trials", "h = [1, 0]")] >= 1.19
    assert finals[("grid search", "h = [0, 1]")] == pytest.approx(0.5925, abs=0.005)
    assert finals[("grid search", "h = [1, 0]")] == pytest.approx(0.39, abs=0.005)
    assert f"Open {output / 'report.html'} in a browser." in printed



def test_demo_replaces_its_own_previous_runs_but_nothing_else(tmp_path):
    from pbtlab.errors import ConfigError
    from pbtlab.viz.demo import _fresh_run_dir

    (tmp_path / "pbt_2_trials").mkdir()
    (tmp_path / "pbt_2_trials" / "experiment.json").write_text("{}")
    _fresh_run_dir(str(tmp_path), "pbt_2_trials")
    assert not (tmp_path / "pbt_2_trials").exists()
    (tmp_path / "grid_search").mkdir()
    (tmp_path / "grid_search" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"grid_search exists and is not a pbtlab experiment; choose another"):
        _fresh_run_dir(str(tmp_path), "grid_search")
    assert (tmp_path / "grid_search" / "notes.txt").exists()
