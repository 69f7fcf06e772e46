"""A simulated 2-node Ray cluster: a trial on one node clones a checkpoint made on the other.

``ray.cluster_utils.Cluster`` starts two raylets on this machine (1 CPU each). The driver joins the
head node ("node_a"); trial 0's actor is pinned to node_a and trial 1's to node_b with a custom
resource. With ``checkpoint_transport="auto"`` the node_b actor keeps its files in a node-local
scratch directory: its checkpoints reach the driver's experiment directory only as bytes through the
object store, and a donor checkpoint made on node_a reaches node_b the same way. The run must make
exactly the decisions, and report exactly the rows, of the same seeded run in-process.
"""

from __future__ import annotations

import pytest
from ray_clusters import local_ray_cluster

from pbtlab.examples.runs import run_toy_pbt
from pbtlab.rundir.store import is_wall_clock_field

pytestmark = pytest.mark.ray

ITERATIONS = 24  # barriers at 4..20: trial 1 clones trial 0 three times, trial 0 clones trial 1 twice


@pytest.fixture(scope="module")
def cluster():
    yield from local_ray_cluster({"num_cpus": 1, "resources": {"node_a": 1}},
                                 [{"num_cpus": 1, "resources": {"node_b": 1}}])


def pin_to_nodes(trial_id):
    return {"resources": {"node_a" if trial_id.endswith("0") else "node_b": 0.01}}


def clean_rows(results):
    return {r.trial_id: [{k: v for k, v in row.items() if not is_wall_clock_field(k)} for row in r.history()]
            for r in results}


def test_checkpoints_cross_nodes_through_the_object_store(cluster, tmp_path):
    import ray

    from pbtlab.executors.ray import RayExecutor

    executor = RayExecutor(actor_options=pin_to_nodes)
    results = run_toy_pbt(population=2, seed=0, iterations=ITERATIONS, storage_path=str(tmp_path / "ray"),
                          executor=executor)
    first, second = (r.trial_id for r in results)

    # the two trials ran on different nodes, and node_a is the driver's
    driver_node = ray.get_runtime_context().get_node_id()
    assert executor.trial_nodes[first] == driver_node
    assert executor.trial_nodes[second] != driver_node
    assert {n["NodeID"] for n in ray.nodes() if n["Alive"]} == {driver_node, executor.trial_nodes[second]}

    # every exploit cloned a checkpoint made on the other node, in both directions
    exploits = [(e["trial_id"], e["donor"]) for e in results.events_of("exploit")]
    assert exploits == [(second, first)] * 3 + [(first, second)] * 2

    # node_b's checkpoints came to the driver as bytes; node_a's donors went to node_b as bytes
    second_checkpoints = [row for row in results.trial(second).history() if row["checkpoint_dir_name"]]
    assert executor.checkpoints_to_driver == len(second_checkpoints) == 6
    assert executor.checkpoints_to_workers == 3

    # and the run is the same run as in-process: same decisions, same rows (theta came through intact)
    reference = run_toy_pbt(population=2, seed=0, iterations=ITERATIONS, storage_path=str(tmp_path / "local"))
    assert clean_rows(results) == clean_rows(reference)
    assert [r.config for r in results] == [r.config for r in reference]
    assert executor.actors_started == 2  # trials stayed alive across all five exploits
