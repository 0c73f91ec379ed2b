"""Placement and dynamic scheduling on the session's real local Ray cluster (2 CPUs and 2
declared GPUs: Ray hands out GPU ids, torch sees no CUDA, so workers fall back to the CPU)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from adv_core.config import Cell
from cluster.pool import RayBackend, WorkerStartError, default_workers
from cluster.scheduler import CellState, run_cells
from sweeps.cli import app
from sweeps.runner import run_sweep
from sweeps.spec import load_spec
from tests.fault.inject import HOOK_ENV, hook, open_gate, started
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def test_gpu_actors_get_distinct_gpus_and_fractions_pack(ray_cluster: dict, run_sink: Any) -> None:
    """One whole-GPU actor and two half-GPU actors on 2 declared GPUs: the whole one owns a GPU,
    both halves must share the other one."""
    assert default_workers(cpus_per_worker=1, gpus_per_worker=1) == 2
    assert default_workers(cpus_per_worker=0.5, gpus_per_worker=0.5) == 4
    assert default_workers(cpus_per_worker=1, gpus_per_worker=0.5) == 2  # CPUs bind first
    whole = RayBackend(run_sink, 1, cpus_per_worker=0.5, gpus_per_worker=1)
    try:
        (w,) = whole.worker_info(timeout_s=120)  # placed first: it owns one GPU
        halves = RayBackend(run_sink, 2, cpus_per_worker=0.5, gpus_per_worker=0.5)
        h = halves.worker_info(timeout_s=120)
        halves.shutdown()
    finally:
        whole.shutdown()
    assert len(h) == 2 and len({w["pid"], *(i["pid"] for i in h)}) == 3
    assert all(len(i["gpu_ids"]) == 1 for i in [w, *h])
    assert {w["gpu_ids"][0], h[0]["gpu_ids"][0]} == {"0", "1"}  # distinct GPUs
    assert h[0]["gpu_ids"] == h[1]["gpu_ids"]  # packed onto one GPU
    assert all(i["cuda_visible"] == i["gpu_ids"][0] for i in [w, *h])
    expected = "cuda" if torch.cuda.is_available() else "cpu"  # declared GPUs, no CUDA: CPU
    assert all(i["device"].startswith(expected) and i["threads"] == 1 for i in [w, *h])


def test_status_while_a_sweep_runs(
    ray_cluster: dict, cluster_spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dynamic scheduling on 2 actors runs each cell once; ``sweeps status`` reads the manifest
    and the done-markers while the driver works."""
    gate = tmp_path / "gate"
    monkeypatch.setenv(HOOK_ENV, hook(f"gate:4:{gate}"))  # cells 5-8 wait until we have looked
    results = str(tmp_path / "results")
    outcome: list[Any] = []
    worker = threading.Thread(
        target=lambda: outcome.append(run_sweep(load_spec(cluster_spec), results, "s", workers=2))
    )
    worker.start()
    seen: list[tuple[str, int]] = []

    def mid_sweep() -> bool:
        res = CliRunner().invoke(app, ["status", "--results", results, "--json"])
        assert res.exit_code == 0, res.output
        runs = json.loads(res.output)["runs"]
        if runs:
            seen.append((runs[0]["state"], runs[0]["done"]))
        mid = any(st == "running" and 0 < d < 8 for st, d in seen)
        # 6 slots taken: cells 1-4 passed and each actor is held at the gate by its own cell
        # (an actor runs one cell at a time), so both actors are up while the gate is shut
        return not worker.is_alive() or (mid and started(gate) >= 6)

    try:
        wait_until(mid_sweep, 180, "both actors held at the gate, status mid-sweep", interval_s=0.2)
    finally:
        open_gate(gate)
    worker.join(timeout=300)
    assert outcome and outcome[0].exit_code == 0
    summary = outcome[0].summary
    # While both actors were held, the 4 cells left were all in flight: each actor's running
    # cell and one queued behind it (an actor takes at least 2; more before the gate when the
    # measured cells are fast enough for larger batches, so 4 is a floor).
    assert summary.count(CellState.DONE) == 8 and summary.max_in_flight >= 4
    assert all(n == 1 for n in summary.attempts.values()) and len(summary.attempts) == 8
    assert len({w[0] for w in summary.workers.values()}) == 2  # both actors took cells
    assert any(state == "running" and 0 < done < 8 for state, done in seen), seen
    final = CliRunner().invoke(app, ["status", "--results", results, "--json"])
    assert '"state": "complete"' in final.output and '"done": 8' in final.output


def test_worker_that_cannot_start_stops_the_sweep(
    ray_cluster: dict, run_sink: Any, tiny_cells: list[Cell]
) -> None:
    """A constructor failure (say, the project missing on a node) is reported, not waited on."""
    backend = RayBackend(run_sink, 1, cpus_per_worker=1, hook=hook("init"))
    try:
        with pytest.raises(WorkerStartError, match="injected failure while starting"):
            run_cells(tiny_cells[:2], run_sink, backend)
    finally:
        backend.shutdown()
    assert not run_sink.store.cell_status(run_sink.run.sweep, run_sink.run.run_id)[0]
