"""Fixtures for the cluster tests: the tiny spec's cells, an in-memory sink for driving the
scheduler without Ray, and a real results store for runs on Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adv_core.config import Cell
from sweeps.plan import plan
from sweeps.rows import RunInfo
from sweeps.sink import RunSink
from sweeps.spec import load_spec
from sweeps.store import ResultStore

# 8 quick cells (2 seeds x 2 d x 2 n_train); one white-box attack keeps them fast.
CLUSTER_SPEC = """
name: tiny
seeds: [0, 1]
datasets:
  - {name: gaussian, d: [8, 32], sigma_c: 1.0}
n_train: [4, 16]
n_eval: 200
models:
  - {name: linear}
training:
  - {method: standard, epochs: 5, batch_size: 16}
ensemble_size: 2
attacks:
  - {name: fgsm, norm: linf, eps: [0.0, 0.1, 0.3]}
resources: {cpus_per_worker: 1, max_retries: 1}
"""


@pytest.fixture
def cluster_spec(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(CLUSTER_SPEC)
    return p


@pytest.fixture
def tiny_cells(cluster_spec: Path) -> list[Cell]:
    """The 8 cells of the cluster tests' spec."""
    return plan(load_spec(cluster_spec))


@dataclass
class MemorySink:
    """A ResultSink that keeps results in memory; ``preexisting`` are files from earlier runs."""

    written: list[str] = field(default_factory=list)
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    preexisting: set[str] = field(default_factory=set)

    def write_result(
        self, cell: Cell, rows: Any, examples: Any, *, attempt: int, model_reused: Any
    ) -> str:
        self.written.append(cell.cell_hash)
        return cell.cell_hash

    def write_failure(self, cell: Cell, status: str, error: str, *, attempt: int) -> str:
        self.failures.append((cell.cell_hash, error, attempt))
        return cell.cell_hash

    def is_done(self, cell_hash: str) -> bool:
        return (
            cell_hash in self.written
            or cell_hash in self.preexisting
            or any(f[0] == cell_hash for f in self.failures)
        )

    def load_model(self, train_hash: str) -> None:
        return None

    def save_model(self, train_hash: str, weights: bytes, config: str) -> None:
        return None


@pytest.fixture
def memory_sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def run_sink(tmp_path: Path) -> RunSink:
    """A real results store under tmp_path, bound to run ``t`` of sweep ``tiny``."""
    return RunSink(ResultStore(str(tmp_path / "results")), RunInfo("tiny", "t", "test"))
