"""A node of a multi-node Ray cluster (ray.cluster_utils.Cluster: a head with no CPUs and two
1-CPU worker nodes, all local) is removed mid-sweep while it runs a cell. Ray restarts the lost
actor on the surviving node, the driver re-queues the cell, and the sweep completes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from sweeps.runner import EXIT_OK, run_sweep
from tests.fault.harness import assert_complete, audit, fault_spec, file_mtime, record
from tests.fault.test_worker_faults import result, run_in_thread

pytestmark = pytest.mark.slow


@pytest.fixture
def two_node_cluster() -> Iterator[Any]:
    """Stops the session cluster (the next test that asks for ``ray_cluster`` restarts it)."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def busy_node(cluster: Any) -> Any | None:
    """A worker node whose CellRunner actor is running a cell right now."""
    for node in cluster.worker_nodes:
        raylet = node.all_processes["raylet"][0].process.pid
        try:
            children = psutil.Process(raylet).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for p in children:
            try:
                if "RayCellRunner.run" in " ".join(p.cmdline()):
                    return node
            except psutil.NoSuchProcess:
                continue
    return None


def test_node_removed_mid_sweep(two_node_cluster: Any, tmp_path: Path) -> None:
    spec = fault_spec("nkill", seeds="[0, 1]")
    results = tmp_path / "results"
    metrics = results / "metrics" / "sweep=nkill" / "run=n"
    th, box = run_in_thread(lambda: run_sweep(spec, str(results), "n", workers=1))
    while th.is_alive() and not list(metrics.glob("[0-9a-f]*.parquet")):
        time.sleep(0.05)
    node = None
    while th.is_alive() and node is None:
        node = busy_node(two_node_cluster)
        time.sleep(0.02)
    assert node is not None, "the sweep ended before a node could be removed"
    two_node_cluster.remove_node(node, allow_graceful=False)
    t_kill = time.time()
    out = result(th, box, timeout=240)
    a = audit(results, spec, "n")
    assert out.exit_code == EXIT_OK and out.summary.failed == 0
    assert_complete(a, spec, ok_cells=8)
    retried = [h for h, n in out.summary.attempts.items() if n > 1]
    assert retried, "the removed node was not running a cell"
    recovery = max(file_mtime(results, spec, "n", h) for h in retried) - t_kill
    record(
        "node removed (1 of 2 worker nodes)",
        f"{len(retried)} cell(s) re-run after the actor restarted on the other node",
        a,
        recovery,
        wall_s=out.summary.wall_s,
    )
