"""A pool that follows the cluster (issue 17), on Ray's fake multi-node autoscaler (the
provider behind ``ray.cluster_utils.AutoscalingCluster``: the autoscaler starts and stops real
local raylets as if they were cloud nodes).

The head has no CPU, so no worker fits until the autoscaler adds a node: every actor starts on
a node that joined during the sweep. The pool asks for two workers (pending actors plus
``request_resources``); with ``revive_timeout_s`` far below a node's boot time, actors still
waiting for their node must not be killed as stuck. At the end the pool lets its workers go
and drops its request, and the autoscaler removes the idle nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adv_core.config import Cell
from cluster.outcome import FAULT_ENV
from cluster.pool import RayBackend
from cluster.scheduler import CellState, run_cells
from tests.cluster.heads import Head, fake_autoscaling_config, free_ports, start_head, wait_for

pytestmark = pytest.mark.slow

WORKER_TYPES = {
    "cpu1": {
        "resources": {"CPU": 1, "object_store_memory": 80 * 1024 * 1024},
        "node_config": {},
        "min_workers": 0,
        "max_workers": 2,
    }
}


@pytest.fixture
def autoscaling_head(tmp_path: Path) -> Iterator[Head]:
    import ray

    if ray.is_initialized():  # the session cluster; conftest restarts it when asked for
        ray.shutdown()
    temp = Path(f"/tmp/rs-as-{os.getpid()}")
    config = tmp_path / "autoscaling.json"
    (port,) = free_ports(1)  # chosen first: the provider is told where the GCS is
    config.write_text(fake_autoscaling_config(f"127.0.0.1:{port}", WORKER_TYPES, 0.05))
    env = {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    head = start_head(
        temp,
        tmp_path / "head.log",
        num_cpus=0,
        port=port,
        env=env,
        extra=[f"--autoscaling-config={config}"],
    )
    try:
        ray.init(address=head.address)
        yield head
    finally:
        ray.shutdown()
        head.stop()


def _worker_nodes() -> list[str]:
    import ray

    return [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]


def test_pool_grows_with_the_autoscaler_and_lets_idle_nodes_go(
    autoscaling_head: Head,
    run_sink: Any,
    tiny_cells: list[Cell],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _worker_nodes() == []  # nothing can run until the autoscaler adds a node
    monkeypatch.setenv(FAULT_ENV, "sleep::0.5")
    backend = RayBackend(run_sink, 1, cpus_per_worker=1, revive_timeout_s=1.0, max_workers=2)
    try:
        summary = run_cells(tiny_cells, run_sink, backend, max_retries=0)
        # the sweep is over: the pool retired its workers and dropped its request
        assert backend.handles == {} and backend.retired == 2
        wait_for("the autoscaler to remove the idle nodes", lambda: not _worker_nodes(), 180)
    finally:
        backend.shutdown()
    assert summary.count(CellState.DONE) == 8 and summary.failed == 0
    assert all(n == 1 for n in summary.attempts.values())  # nothing ran twice
    assert backend.lost == 0 and backend.replaced == 0  # starting actors were left alone
    # two 1-CPU actors fit only on two 1-CPU nodes: both nodes the autoscaler added took cells
    assert len({w[0] for w in summary.workers.values()}) == 2, summary.workers
    done, _ = run_sink.store.cell_status(run_sink.run.sweep, run_sink.run.run_id)
    assert sorted(done) == sorted(c.cell_hash for c in tiny_cells)  # nothing lost
