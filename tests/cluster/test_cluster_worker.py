"""CellRunner without Ray: device choice, CPU share, dataset cache, fault injection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from adv_core.config import Cell
from cluster.worker import CellRunner, pick_device, torch_threads
from tests.fault.inject import hook


@pytest.mark.parametrize(
    ("gpu_ids", "expected"),
    [([], "cpu"), (["0"], "cuda" if torch.cuda.is_available() else "cpu")],
    ids=["no-gpu-assigned", "gpu-assigned"],
)
def test_pick_device_falls_back_to_cpu(gpu_ids: list[str], expected: str) -> None:
    assert pick_device(gpu_ids).type == expected


@pytest.mark.parametrize(
    ("cpus", "threads"), [(0.25, 1), (0.5, 1), (1.0, 1), (2.0, 2), (3.999999999999, 4)]
)
def test_torch_threads_is_the_cpu_share(cpus: float, threads: int) -> None:
    assert torch_threads(cpus) == threads


def test_runner_writes_result_and_caches_data(tiny_cells: list[Cell], run_sink: Any) -> None:
    threads = torch.get_num_threads()
    try:
        runner = CellRunner(run_sink, cpus=1.0, hook="")
        assert runner.info()["threads"] == 1 and runner.info()["device"] == "cpu"
        assert runner.info()["malloc_tuned"] is True  # glibc here: cluster.allocator
        first = runner.run(tiny_cells[0])
        again = runner.run(tiny_cells[0], attempt=2)
    finally:
        torch.set_num_threads(threads)
    assert first.ok and again.ok and first.status == "ok"
    assert runner.cache_hits == 1
    assert again.receipt.model_reused is True  # the checkpoint saved by the first attempt
    assert run_sink.is_done(tiny_cells[0].cell_hash)


def test_injected_exception_is_an_outcome_not_a_crash(
    tiny_cells: list[Cell], run_sink: Any, tmp_path: Path
) -> None:
    target = tiny_cells[2].cell_hash
    runner = CellRunner(run_sink, hook=hook(f"sleep::0.01;raise:{target[:12]}"))
    out = runner.run(tiny_cells[2])
    assert not out.ok and out.cell_hash == target
    assert "injected failure" in (out.error or "")
    assert not run_sink.is_done(target)
    assert runner.run(tiny_cells[0]).ok  # other cells are unaffected
