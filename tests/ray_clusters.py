"""A multi-node Ray cluster on this machine for the tests that move trials between nodes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def local_ray_cluster(head_node_args: dict[str, Any], worker_nodes: list[dict[str, Any]]) -> Iterator[Any]:
    """A multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``), connected to, for a module's
    fixture to yield from: ``yield from local_ray_cluster({...}, [{...}, ...])``."""
    ray = pytest.importorskip("ray", reason="make test installs ray (pip install 'pbtlab[ray]')")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={**head_node_args, "include_dashboard": False})
    for node in worker_nodes:
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
