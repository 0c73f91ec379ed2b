"""The head's GCS restarting during a sweep (issue 17), with Ray's GCS fault tolerance: the GCS
keeps its tables in an external Redis (a private ``redis-server`` on a free 127.0.0.1 port;
``make install`` installs it), so a restarted GCS reloads them and the raylets and actors
carry on. The GCS is killed while cells run and started again a few seconds later; the sweep
must finish with every cell exactly once, no cell re-run, no actor lost."""

from __future__ import annotations

import shutil
import subprocess
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
from tests.fault.inject import HOOK_ENV, hook

pytestmark = pytest.mark.slow
MB = 1024 * 1024


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[str]:
    assert shutil.which("redis-server"), "needs redis-server: run `make redis` (apt-get)"
    (port,) = free_ports(1)
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd += ["--appendonly", "no", "--dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("redis-server", lambda: _ping(port), 30, every_s=0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _ping(port: int) -> bool:
    out = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
    return out.stdout.strip() == "PONG"


@pytest.fixture
def ft_cluster(redis: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A 2-CPU head whose GCS stores its tables in ``redis``."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # the session cluster; conftest restarts it when asked for
        ray.shutdown()
    monkeypatch.setenv("RAY_REDIS_ADDRESS", redis)
    head = {"num_cpus": 2, "object_store_memory": 80 * MB, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    ray.init(address=cluster.address)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_gcs_restart_mid_sweep_loses_nothing(
    ft_cluster: Any, run_sink: Any, tiny_cells: list[Cell], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOOK_ENV, hook("sleep::1.0"))
    backend = RayBackend(run_sink, 2, cpus_per_worker=1)
    assert len(backend.worker_info(timeout_s=120)) == 2
    finished: list[int] = []  # cells finished, after each scheduler loop
    loops: list[float] = []  # when each scheduler loop ended
    out: list[Summary] = []

    def progress(s: Summary) -> None:
        finished.append(s.count(CellState.DONE))
        loops.append(time.perf_counter())

    driver = threading.Thread(
        target=lambda: out.append(run_cells(tiny_cells, run_sink, backend, progress=progress))
    )
    driver.start()
    try:
        wait_for("a first cell", lambda: bool(finished) and finished[-1] >= 1, 120, 0.05)
        head = ft_cluster.head_node
        head.kill_gcs_server()
        killed_at, done_at_kill = time.perf_counter(), finished[-1]
        try:
            # the actors and the driver talk directly: cells keep finishing without the GCS
            wait_for("a cell without GCS", lambda: finished[-1] > done_at_kill, 40, 0.05)
        finally:
            down_s, done_at_restart = time.perf_counter() - killed_at, finished[-1]
            head.start_gcs_server()
        restarted_at = time.perf_counter()
        driver.join(timeout=180)
    finally:
        driver.join(timeout=180)
        backend.shutdown()
    assert not driver.is_alive() and out
    summary = out[0]
    during = [t for t in loops if killed_at <= t <= restarted_at]
    gaps = [b - a for a, b in zip([killed_at, *during], [*during, restarted_at], strict=True)]
    print(
        f"\nGCS down {down_s:.1f} s, longest driver stall {max(gaps):.2f} s "
        f"({done_at_restart - done_at_kill} cells finished without it); "
        f"sweep done {summary.wall_s:.1f} s, {time.perf_counter() - restarted_at:.1f} s after "
        "the restart"
    )
    assert summary.count(CellState.DONE) == 8 and summary.failed == 0
    assert all(n == 1 for n in summary.attempts.values())  # nothing re-run
    assert backend.lost == 0
    done, bad = run_sink.store.cell_status(run_sink.run.sweep, run_sink.run.run_id)
    assert sorted(done) == sorted(c.cell_hash for c in tiny_cells) and not bad
