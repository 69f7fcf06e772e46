"""Seeded runs whose every decision is pinned by the golden files beside this module.

The golden files were recorded before the engine was reorganised (issue 8); the test in
``tests/test_golden.py`` runs each scenario again and compares what it wrote, minus wall-clock fields.
Regenerate them only for a change that is meant to alter decisions, and say which in the commit:

    python tests/golden/scenarios.py --write
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)

#: Fields whose values depend on the clock or on source line numbers, dropped at any depth.
UNSTABLE = {"time", "timestamp", "time_total_s", "time_this_iter_s", "time_since_restore", "time_value", "date",
            "traceback", "saved_at", "state_saved_at", "created"}


def strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in UNSTABLE and not k.startswith("time_")}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def _jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def snapshot(path: str) -> dict[str, Any]:
    """Events, every result row and each trial's final config of the run at ``path``."""
    events = [strip(e) for e in _jsonl(os.path.join(path, "events.jsonl"))]
    trial_ids = [e["trial_id"] for e in events if e["event"] == "trial_add"]
    rows = {tid: [strip(r) for r in _jsonl(os.path.join(path, tid, "result.jsonl"))] for tid in trial_ids}
    with open(os.path.join(path, "state.json"), encoding="utf-8") as handle:
        state = json.load(handle)
    finals = {t["trial_id"]: {"config": t["config"], "status": t["status"], "iteration": t["iteration"]}
              for t in state["trials"]}
    return {"events": events, "rows": rows, "finals": finals}


def _toy(storage: str, population: int, synch: bool) -> str:
    from pbtlab.examples.runs import run_toy_pbt

    results = run_toy_pbt(population=population, seed=11, synch=synch, storage_path=storage, name="run")
    return results.experiment_path


def _worker(storage: str, name: str, kill_after: int, fail_dir: str) -> None:
    worker = os.path.join(TESTS, "chaos_worker.py")
    subprocess.run([sys.executable, worker, storage, name, "5", str(kill_after), fail_dir],
                   check=False, capture_output=True, timeout=300)


def _failures(storage: str) -> str:
    fail_dir = os.path.join(storage, "failed")
    os.makedirs(fail_dir)
    _worker(storage, "run", 0, fail_dir)
    return os.path.join(storage, "run")


def _resumed(storage: str) -> str:
    _worker(storage, "run", 150, "-")  # SIGKILLed at its 150th report
    _worker(storage, "run", 0, "-")  # resumed to the end
    return os.path.join(storage, "run")


SCENARIOS = {
    "pbt2_sync": lambda s: _toy(s, 2, True),
    "pbt2_async": lambda s: _toy(s, 2, False),
    "pbt4_sync": lambda s: _toy(s, 4, True),
    "pbt4_async": lambda s: _toy(s, 4, False),
    "failures": _failures,
    "resumed": _resumed,
}


def golden_path(name: str) -> str:
    return os.path.join(HERE, f"{name}.json.gz")


def run_scenario(name: str, storage: str) -> dict[str, Any]:
    return snapshot(SCENARIOS[name](storage))


def read_golden(name: str) -> dict[str, Any]:
    with gzip.open(golden_path(name), "rt", encoding="utf-8") as handle:
        return json.load(handle)


def write_golden(name: str, data: dict[str, Any]) -> None:
    with gzip.GzipFile(golden_path(name), "wb", mtime=0) as raw:
        raw.write(json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    sys.path.insert(0, TESTS)
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            write_golden(scenario, run_scenario(scenario, tmp))
            print("wrote", golden_path(scenario))
