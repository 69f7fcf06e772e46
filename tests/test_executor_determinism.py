"""Synchronous PBT with a seed makes the same decisions on every executor.

The tutorial's 4-trial experiment (a deterministic trainable) runs in-process, in worker processes
(2 at a time on this 2-core machine, so trials take turns) and on Ray. Trials run concurrently in the
last two, so the order in which their reports arrive differs, and with it the interleaving of
life-cycle events in ``events.jsonl``; what must not differ is anything decided or recorded about a
trial: the decision events in order, each trial's own events, every result row, and the final
configs, all compared minus wall-clock fields.
"""

from __future__ import annotations

import json
import os

import pytest

from pbtlab.examples.runs import run_toy_pbt
from pbtlab.rundir.store import is_wall_clock_field

DECISIONS = {"exploit", "explore", "exploit_skipped", "unrankable_score"}
ITERATIONS = 40


def _clean(record):
    if isinstance(record, dict):
        return {k: _clean(v) for k, v in record.items()
                if not is_wall_clock_field(k) and k not in ("seq", "executor")}
    if isinstance(record, list):
        return [_clean(v) for v in record]
    return record


def summary(results):
    """Everything the run decided and recorded, in a form that does not depend on report arrival order."""
    path = results.experiment_path
    with open(os.path.join(path, "events.jsonl")) as handle:
        events = [_clean(json.loads(line)) for line in handle]
    per_trial: dict[str, list] = {}
    for event in events:
        if "trial_id" in event and event["event"] not in DECISIONS:
            per_trial.setdefault(event["trial_id"], []).append(event)
    return {
        "decisions": [e for e in events if e["event"] in DECISIONS],
        "trial_events": per_trial,
        "rows": {r.trial_id: [_clean(row) for row in r.history()] for r in results},
        "final_configs": {r.trial_id: r.config for r in results},
        "statuses": {r.trial_id: r.status for r in results},
    }


def run(executor, storage):
    return run_toy_pbt(population=4, seed=7, iterations=ITERATIONS, synch=True, storage_path=storage,
                       name=f"toy_{executor}", executor=executor)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return summary(run("inprocess", str(tmp_path_factory.mktemp("reference"))))


def check_same(reference, other):
    assert len(reference["decisions"]) >= 10, "the experiment should exploit at every barrier"
    assert other["decisions"] == reference["decisions"]
    assert other["final_configs"] == reference["final_configs"]
    assert other["statuses"] == reference["statuses"]
    assert other["trial_events"] == reference["trial_events"]
    assert other["rows"] == reference["rows"]


def test_inprocess_is_reproducible(reference, storage):
    check_same(reference, summary(run("inprocess", storage)))


def test_process_executor_makes_the_same_decisions(reference, storage):
    check_same(reference, summary(run("process", storage)))


@pytest.mark.ray
def test_ray_executor_makes_the_same_decisions(reference, storage):
    ray = pytest.importorskip("ray", reason="make test installs ray (pip install 'pbtlab[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        check_same(reference, summary(run("ray", storage)))
    finally:
        ray.shutdown()
