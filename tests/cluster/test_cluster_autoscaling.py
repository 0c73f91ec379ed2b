"""A pool that follows the cluster (issue 17), on real multi-node Ray clusters.

1. Ray's own autoscaler, with its fake multi-node provider (the one behind
   ``ray.cluster_utils.AutoscalingCluster``): the pool's pending actors and ``request_resources``
   make the autoscaler launch worker nodes (raylets started by the head's monitor process), a
   node added mid-sweep (the node type's limit raised while a cell runs) gets a worker, and once
   the work is done the idle nodes are removed by the autoscaler itself. ``AutoscalingCluster``
   itself is not used: its ``start`` runs ``ray stop --force`` (which stops every Ray cluster of
   the user on the machine, this test session's included) and reads an ``example.yaml`` the wheel
   lacks. The same head is started here as a ``ray.cluster_utils.Cluster`` head with
   ``autoscaling_config`` (its monitor runs the autoscaler) and the fake provider's config
   written here, so shutting it down stops only its own processes.
2. Nodes the test adds and removes the way an autoscaler would (``ray.cluster_utils.Cluster``):
   with a fixed size (``max_workers``) the pool holds pending actors and asks for the bundles
   through ``request_resources`` (read back here from the key the v1 autoscaler reads); without
   one it follows the cluster: a node added mid-sweep gets a worker.

In each, actors waiting for their node are never killed as stuck (``revive_timeout_s`` is far
below the wait), and when the work runs out the pool retires its workers and drops its request,
so the nodes go idle and can be removed.
"""

from __future__ import annotations

import contextlib
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
from tests.cluster.helpers import free_ports, wait_for
from tests.fault.inject import HOOK_ENV, hook, open_gate, started

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
        # both nodes idle, so removable: a killed actor frees its CPU once its process has
        # exited, shortly after ray.kill returns (CI once read 0 free CPUs right after the run)
        assert ray.cluster_resources().get("CPU") == 2
        wait_for("both nodes idle", lambda: ray.available_resources().get("CPU", 0) == 2, 60, 0.1)
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


def fake_autoscaler_config(gcs_port: int, max_nodes: int) -> dict[str, Any]:
    """An autoscaling config for Ray's fake multi-node provider (the fields of its
    ``example.yaml``): a head without CPUs, 1-CPU worker nodes (at most ``max_nodes``) that
    join the head's GCS on 127.0.0.1, removed after 3 s idle."""
    worker = {"CPU": 1, "object_store_memory": 80 * MB}
    return {
        "cluster_name": "fake_multinode", "max_workers": max_nodes,
        "provider": {
            "type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
            "disable_launch_config_check": True, "gcs_address": f"127.0.0.1:{gcs_port}",
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "ray.worker.cpu": {
                "resources": worker, "node_config": {}, "min_workers": 0, "max_workers": max_nodes,
            },
        },
        "head_node_type": "ray.head.default", "upscaling_speed": 1.0, "idle_timeout_minutes": 0.05,
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }  # fmt: skip


@pytest.fixture
def fake_autoscaler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Path]]:
    """A head without CPUs whose monitor runs Ray's autoscaler with the fake multi-node provider
    (at most one worker node to start with); yields (cluster, the config file it re-reads)."""
    import psutil
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # the session cluster; conftest restarts it when asked for
        ray.shutdown()
    monkeypatch.setenv("RAY_FAKE_CLUSTER", "1")  # the provider refuses to run without it
    monkeypatch.setenv("AUTOSCALER_UPDATE_INTERVAL_S", "1")
    port = free_ports(1)[0]
    config = tmp_path / "autoscaling.yaml"
    config.write_text(json.dumps(fake_autoscaler_config(port, max_nodes=1)))
    head = {
        "num_cpus": 0, "gcs_server_port": port, "autoscaling_config": str(config),
        "include_dashboard": False, "object_store_memory": 80 * MB,
    }  # fmt: skip
    cluster = Cluster(initialize_head=True, head_node_args=head)
    monitor = cluster.head_node.all_processes[ray_constants.PROCESS_TYPE_MONITOR][0].process
    ray.init(address=cluster.address)
    try:
        yield cluster, config
    finally:
        ray.shutdown()
        nodes: list[psutil.Process] = []  # the provider's raylets are the monitor's children
        with contextlib.suppress(psutil.NoSuchProcess):
            nodes = psutil.Process(monitor.pid).children(recursive=True)
        cluster.shutdown()
        for p in nodes:  # only when a failed test left nodes behind
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def worker_nodes() -> int:
    """Alive nodes with CPUs (the head has none)."""
    import ray

    return sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0)


def test_fake_autoscaler_adds_nodes_for_the_pool_and_removes_them_when_idle(
    fake_autoscaler: tuple[Any, Path],
    run_sink: Any,
    tiny_cells: list[Cell],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Ray's autoscaler (fake multi-node provider) launches a node for the pool's pending
    actors; the limit is raised while a cell runs on it and a second node joins and gets a
    worker; at the end the pool lets go and the autoscaler removes both idle nodes. Every cell
    ran exactly once; no actor waiting for its node was killed as stuck."""
    _, config = fake_autoscaler
    gate = tmp_path / "gate"  # cells wait at it: the second node joins while they run
    monkeypatch.setenv(HOOK_ENV, hook(f"gate:0:{gate}"))
    backend = RayBackend(run_sink, 1, cpus_per_worker=1, revive_timeout_s=0.5, max_workers=2)
    th, box = _sweep(tiny_cells, run_sink, backend)
    try:
        wait_for("the request", lambda: requested() == [{"CPU": 1.0}] * 2, 60, 0.1)
        wait_for("a worker on a launched node", lambda: len(backend.live) == 1, 240, 0.2)
        assert worker_nodes() == 1 and backend.replaced == 0  # waited for its node, not killed
        wait_for("a cell running on it", lambda: started(gate) >= 1, 120, 0.1)
        port = int(json.loads(config.read_text())["provider"]["gcs_address"].rsplit(":", 1)[1])
        config.write_text(json.dumps(fake_autoscaler_config(port, max_nodes=2)))  # re-read
        wait_for("a worker on the node added mid-sweep", lambda: len(backend.live) == 2, 240, 0.2)
        assert worker_nodes() == 2
        open_gate(gate)
        th.join(timeout=300)
        assert not th.is_alive()
        assert backend.handles == {}  # the work is done: the pool let its workers go ...
        wait_for("the request to be dropped", lambda: requested() == [], 30, 0.1)
        wait_for("the idle nodes to be removed", lambda: worker_nodes() == 0, 120, 0.5)
    finally:
        open_gate(gate)
        th.join(timeout=300)
        backend.shutdown()
    summary = box["summary"]
    _check(summary, run_sink, tiny_cells)
    assert backend.lost == 0 and backend.replaced == 0 and backend.retired == 2
    assert len({w[0] for w in summary.workers.values()}) == 2, summary.workers
