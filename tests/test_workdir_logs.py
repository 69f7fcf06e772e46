"""Working directory and ``RunConfig(log_to_file=...)``.

Process workers run each trial inside its trial directory (a relative write lands there) and send their
file descriptors 1 and 2 to the trial's log files; in-process trials share the driver's working
directory, and a thread-aware ``sys.stdout``/``sys.stderr`` routes each trial's prints to its files
while the run lasts. (The Ray executor's side is in test_resources.py's Ray run.)
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from resource_trainables import probe_trainable

from pbtlab import tune
from pbtlab.errors import ConfigError
from pbtlab.tuner import Tuner


def read_text(path):
    with open(path) as handle:
        return handle.read()


def read_json(path):
    return json.loads(read_text(path))


def run(tmp_path, executor, log_to_file, relative_write=False, raw_write=False, n=2):
    space = {"i": tune.grid_search(list(range(n))), "probe_dir": str(tmp_path / "probe"), "work_s": 0.0,
             "relative_write": relative_write, "raw_write": raw_write}
    results = Tuner(probe_trainable, param_space=space, tune_config=tune.TuneConfig(seed=0),
                    run_config=tune.RunConfig(name="logs", storage_path=str(tmp_path / "runs"), verbose=0,
                                              executor=executor, log_to_file=log_to_file)).fit()
    seen = {}
    for name in os.listdir(tmp_path / "probe"):
        if name.endswith(".json"):
            seen[name[:-5]] = read_json(tmp_path / "probe" / name)
    return results, seen


def test_process_trials_run_in_their_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results, seen = run(tmp_path, "process", False, relative_write=True)
    for result in results:
        trial_id = result.metrics["trial_id"]
        assert seen[trial_id]["cwd"] == result.path
        assert read_text(os.path.join(result.path, "my_model", "weights.txt")) == trial_id
    assert not os.path.exists(tmp_path / "my_model")  # nothing landed in the driver's directory
    assert os.getcwd() == str(tmp_path)


def test_in_process_trials_share_the_drivers_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results, seen = run(tmp_path, "inprocess", False)
    assert {s["cwd"] for s in seen.values()} == {str(tmp_path)}
    assert {s["trial_dir"] for s in seen.values()} == {r.path for r in results}  # get_trial_dir() is per trial


@pytest.mark.parametrize("log_to_file, out_name, err_name", [
    (True, "stdout", "stderr"), ("both.log", "both.log", "both.log"), (("o.txt", "e.txt"), "o.txt", "e.txt")])
def test_process_log_to_file_redirects_descriptors(tmp_path, log_to_file, out_name, err_name):
    results, _ = run(tmp_path, "process", log_to_file, raw_write=True)
    for result in results:
        tid = result.metrics["trial_id"]
        out, err = f"stdout of {tid}\nfd1 of {tid}\n", f"stderr of {tid}\n"
        if out_name == err_name:
            text = read_text(os.path.join(result.path, out_name))
            assert sorted(text.splitlines()) == sorted((out + err).splitlines())
        else:
            assert read_text(os.path.join(result.path, out_name)) == out
            assert read_text(os.path.join(result.path, err_name)) == err


def test_in_process_log_to_file_routes_each_trials_prints_and_restores_the_streams(tmp_path, capsys):
    before = (sys.stdout, sys.stderr)
    print("driver before")
    results, _ = run(tmp_path, "inprocess", True, n=3)
    print("driver after")
    assert (sys.stdout, sys.stderr) == before
    for result in results:
        tid = result.metrics["trial_id"]
        assert read_text(os.path.join(result.path, "stdout")) == f"stdout of {tid}\n"
        assert read_text(os.path.join(result.path, "stderr")) == f"stderr of {tid}\n"
    captured = capsys.readouterr()
    assert captured.out == "driver before\ndriver after\n" and "stderr of" not in captured.err


def test_in_process_without_log_to_file_leaves_output_alone(tmp_path, capsys):
    results, _ = run(tmp_path, "inprocess", False, n=1)
    assert capsys.readouterr().out == f"stdout of {results[0].metrics['trial_id']}\n"
    assert not os.path.exists(os.path.join(results[0].path, "stdout"))


def test_log_to_file_bad_values_are_clear_errors():
    with pytest.raises(ConfigError, match=r"log_to_file=\.\.\.\) must be False, True, a file name or a tuple"):
        tune.RunConfig(log_to_file=("a", "b", "c"))
    with pytest.raises(ConfigError, match="got 3"):
        tune.RunConfig(log_to_file=3)
