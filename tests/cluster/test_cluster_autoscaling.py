"""A pool that follows the cluster (issue 17), on a real multi-node Ray cluster whose nodes the
test adds and removes the way an autoscaler would (``ray.cluster_utils.Cluster``).

The head has no CPU, so no worker fits until a node joins. With a fixed size (``max_workers``)
the pool holds pending actors and asks Ray's autoscaler for the bundles through
``request_resources`` (read back here from the key the v1 autoscaler reads); the test answers
the request by adding a node, and a second one mid-sweep. Actors waiting for their node are
never killed as stuck (``revive_timeout_s`` is far below the wait). When the work runs out the
pool retires its workers and drops its request, so the nodes go idle and can be removed.
Without a fixed size the pool follows the cluster: a node added mid-sweep gets a worker.

(Ray's fake multi-node provider, behind ``ray.cluster_utils.AutoscalingCluster``, was tried
first: its ``start`` runs ``ray stop --force``, which stops every Ray cluster of this user on a
shared machine, and on a loaded 2-core machine its raylets time out waiting for their agents.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adv_core.config import Cell
from cluster.pool import RayBackend
from cluster.scheduler import CellState, Summary, run_cells
from tests.cluster.helpers import wait_for
from tests.fault.inject import HOOK_ENV, hook, open_gate

pytestmark = pytest.mark.slow
MB = 1024 * 1024
NODE = {"num_cpus": 1, "object_store_memory": 80 * MB}


@pytest.fixture
def empty_head() -> Iterator[Any]:
    """A head with no CPU: every worker needs a node that joins later."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # the session cluster; conftest restarts it when asked for
        ray.shutdown()
    head = {"num_cpus": 0, "object_store_memory": 80 * MB, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    ray.init(address=cluster.address)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def requested() -> list[dict[str, float]] | None:
    """The bundles of the standing ``request_resources`` call, as the v1 autoscaler reads them."""
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
    return None if raw is None else list(json.loads(raw))


def _sweep(cells: list[Cell], sink: Any, backend: RayBackend) -> tuple[threading.Thread, dict]:
    box: dict[str, Any] = {"done": 0}

    def progress(s: Summary) -> None:
        box["done"] = s.count(CellState.DONE)

    def drive() -> None:
        box["summary"] = run_cells(cells, sink, backend, max_retries=0, progress=progress)

    th = threading.Thread(target=drive)
    th.start()
    return th, box


def _check(summary: Summary, sink: Any, cells: list[Cell]) -> None:
    assert summary.count(CellState.DONE) == len(cells) and summary.failed == 0
    assert all(n == 1 for n in summary.attempts.values())  # nothing ran twice
    done, bad = sink.store.cell_status(sink.run.sweep, sink.run.run_id)
    assert sorted(done) == sorted(c.cell_hash for c in cells) and not bad  # nothing lost


def test_fixed_pool_asks_for_nodes_waits_for_them_and_lets_them_go(
    empty_head: Any,
    run_sink: Any,
    tiny_cells: list[Cell],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import ray

    gate = tmp_path / "gate"  # cells wait at it: the second node joins while they run
    monkeypatch.setenv(HOOK_ENV, hook(f"gate:0:{gate}"))
    backend = RayBackend(run_sink, 1, cpus_per_worker=1, revive_timeout_s=0.5, max_workers=2)
    th, box = _sweep(tiny_cells, run_sink, backend)
    try:
        # the sweep asks for two 1-CPU workers; only the autoscaler (here: the test) can help
        wait_for("the request", lambda: requested() == [{"CPU": 1.0}] * 2, 60, 0.1)
        time.sleep(1.5)  # the 0.5 s revive timeout passes three times over before any node
        first = empty_head.add_node(**NODE)
        wait_for("a worker on the first node", lambda: len(backend.live) == 1, 180, 0.1)
        assert backend.replaced == 0  # the actors that waited for a node were not killed
        second = empty_head.add_node(**NODE)  # mid-sweep: a cell is running on the first
        wait_for("a worker on the second node", lambda: len(backend.live) == 2, 180, 0.1)
        open_gate(gate)
        th.join(timeout=300)
        assert not th.is_alive()
        # the work is done: the pool let its workers go and dropped its request
        assert backend.handles == {}
        wait_for("the request to be dropped", lambda: requested() == [], 30, 0.1)
        avail = ray.available_resources().get("CPU", 0)
        assert avail == ray.cluster_resources().get("CPU") == 2  # both nodes idle: removable
        empty_head.remove_node(first)
        empty_head.remove_node(second)
    finally:
        th.join(timeout=300)
        backend.shutdown()
    summary = box["summary"]
    _check(summary, run_sink, tiny_cells)
    assert backend.lost == 0 and backend.replaced == 0 and backend.retired == 2
    # two 1-CPU workers fit only on two 1-CPU nodes: the node added mid-sweep took cells too
    assert len({w[0] for w in summary.workers.values()}) == 2, summary.workers


def test_pool_without_a_size_follows_nodes_that_join(
    empty_head: Any,
    run_sink: Any,
    tiny_cells: list[Cell],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    monkeypatch.setenv(HOOK_ENV, hook(f"gate:0:{gate}"))
    empty_head.add_node(**NODE)
    empty_head.wait_for_nodes()
    backend = RayBackend(run_sink, 1, cpus_per_worker=1)  # follows the cluster
    th, box = _sweep(tiny_cells, run_sink, backend)
    try:
        wait_for("a worker", lambda: len(backend.live) == 1, 180, 0.1)
        assert len(backend.handles) == 1 and requested() in (None, [])  # asks for nothing
        empty_head.add_node(**NODE)  # joins mid-sweep (a cell is held): it gets a worker
        wait_for("a worker on the new node", lambda: len(backend.live) == 2, 180, 0.1)
        open_gate(gate)
        th.join(timeout=300)
        assert not th.is_alive()
    finally:
        th.join(timeout=300)
        backend.shutdown()
    summary = box["summary"]
    _check(summary, run_sink, tiny_cells)
    assert len({w[0] for w in summary.workers.values()}) == 2, summary.workers
