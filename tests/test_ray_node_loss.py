"""A Ray node that runs trials is lost mid-run: its trials go on from their last checkpoints on a node that
survives, nothing they reported is lost, and the event log says what happened.

``ray.cluster_utils.Cluster`` starts a head node without CPUs (the driver's) and two worker nodes with one
CPU each. Trials are kept off the head with a custom resource, so every checkpoint is made on a worker node
and reaches the driver's experiment directory as bytes (``checkpoint_transport="auto"``). When a trial has
reported its 6th iteration, a callback removes the node its actor runs on (the raylet is killed, as a
machine that fails). Ray counts that as the trial failing (``FailureConfig(max_failures)``), as Ray Tune does.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import pytest
from ray_clusters import local_ray_cluster

from pbtlab import tune
from pbtlab.callbacks import Callback
from pbtlab.config import FailureConfig, RunConfig, TuneConfig
from pbtlab.tuner import Tuner

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ITERATIONS = 16
LOSE_AT = 6  # the iteration after which the node of the first trial is removed


@pytest.fixture(scope="module")
def cluster():
    yield from local_ray_cluster({"num_cpus": 0}, [{"num_cpus": 1, "resources": {"worker": 2}}] * 2)


def make_trainable(iterations):
    """A counting trainable that checkpoints every 2 iterations (built here: Ray pickles it by value)."""

    def counting_trainable(config):
        step = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder, open(os.path.join(folder, "step")) as handle:
                step = int(handle.read())
        while step < iterations:
            step += 1
            time.sleep(0.05)
            metrics = {"score": float(step * config["x"]), "step": step}
            if step % 2 == 0:
                with tempfile.TemporaryDirectory() as folder:
                    with open(os.path.join(folder, "step"), "w") as handle:
                        handle.write(str(step))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(metrics)

    return counting_trainable


class LoseTheNode(Callback):
    """Remove the node of the first trial to report ``LOSE_AT``, once."""

    def __init__(self, cluster, executor):
        self.cluster = cluster
        self.executor = executor
        self.lost: tuple[str, str, dict[str, str]] | None = None  # trial, its node, every trial's node then

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.lost is not None or result["training_iteration"] != LOSE_AT:
            return
        node_id = self.executor.trial_nodes[trial.trial_id]
        (node,) = [n for n in self.cluster.worker_nodes if n.node_id == node_id]
        self.lost = (trial.trial_id, node_id, dict(self.executor.trial_nodes))
        self.cluster.remove_node(node, allow_graceful=False)


def rows_of(path, trial_id):
    with open(os.path.join(path, trial_id, "result.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def test_trials_of_a_lost_node_continue_from_their_last_checkpoint_on_a_surviving_node(cluster, tmp_path):
    from pbtlab.executors.ray import RayExecutor

    executor = RayExecutor(actor_options={"resources": {"worker": 0.01}})
    loser = LoseTheNode(cluster, executor)
    results = Tuner(
        make_trainable(ITERATIONS), param_space={"x": tune.grid_search([1.0, 2.0])},
        tune_config=TuneConfig(metric="score", mode="max", seed=0),
        run_config=RunConfig(storage_path=str(tmp_path), name="run", verbose=0, executor=executor,
                             failure_config=FailureConfig(max_failures=2), callbacks=[loser]),
    ).fit()
    assert loser.lost is not None
    lost_trial, lost_node, nodes_then = loser.lost
    on_lost_node = sorted(t for t, node in nodes_then.items() if node == lost_node)
    path = results.experiment_path

    # every trial finished; the one that lost its node now runs elsewhere
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    assert executor.trial_nodes[lost_trial] != lost_node
    survivors = {n.node_id for n in cluster.worker_nodes}
    assert lost_node not in survivors and executor.trial_nodes[lost_trial] in survivors

    # the event log: the actors on the node died with it, and their trials restarted from their checkpoints
    events = results.events
    # (until Ray's control plane marks the node dead, a new actor may be placed on it and die at once:
    # that is a second failure of the same kind, and the trial is retried again)
    errors = [e for e in events if e["event"] == "trial_error"]
    assert sorted(set(e["trial_id"] for e in errors)) == on_lost_node
    assert all(e["error_type"] == "WorkerDied" and e["will_retry"] for e in errors)
    # nothing reported is lost: rows 1..k (k >= 6: the actor may serve calls until it notices its raylet is
    # gone), then the trial goes on from its last checkpoint among them, and the trainable's step matches
    # the engine's iteration in every row
    rows = rows_of(path, lost_trial)
    iterations = [r["training_iteration"] for r in rows]
    restart_row = next(i for i, r in enumerate(rows) if r.get("restored_from"))
    assert iterations[:restart_row] == list(range(1, restart_row + 1)) and restart_row >= LOSE_AT
    last_checkpoint = max(r["training_iteration"] for r in rows[:restart_row] if r["checkpoint_dir_name"])
    assert rows[restart_row]["restored_from"]["reason"] == "failure"
    assert rows[restart_row]["restored_from"]["iteration"] == last_checkpoint
    assert iterations[restart_row:] == list(range(last_checkpoint + 1, ITERATIONS + 1))
    assert all(r["step"] == r["training_iteration"] for r in rows)
    restarts = [e for e in events if e["event"] == "trial_start" and e["trial_id"] == lost_trial]
    assert [e["reason"] for e in restarts] == [None] + ["failure"] * (len(restarts) - 1) and len(restarts) >= 2
    assert all(e["iteration"] == last_checkpoint for e in restarts[1:])
    assert os.path.isdir(os.path.join(path, restarts[-1]["checkpoint"]))
    for other in (r.trial_id for r in results if r.trial_id not in on_lost_node):
        assert [r["training_iteration"] for r in rows_of(path, other)] == list(range(1, ITERATIONS + 1))
