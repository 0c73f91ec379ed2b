"""Fixtures for the cluster tests: the tiny spec's cells, an in-memory sink for driving the
scheduler without Ray, and a real results store for runs on Ray."""

from __future__ import annotations

from collections.abc import Callable
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
from tests.specs import FGSM


@pytest.fixture
def cluster_spec(make_spec: Callable[..., Path]) -> Path:
    """The tiny spec with one white-box attack (fgsm), which keeps its 8 cells fast."""
    return make_spec(attacks=[FGSM])


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
