"""Small stores written through ResultStore from real (tiny, linear) cells."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import SPEC, fill

from adv_core import run_cell
from adv_core.config import Cell
from sweeps.plan import plan
from sweeps.spec import loads_spec
from sweeps.store import ResultStore


@pytest.fixture(scope="session")
def cells() -> list[Cell]:
    return plan(loads_spec(SPEC))


@pytest.fixture(scope="session")
def results_of(cells: list[Cell]) -> dict[str, object]:
    """Each cell's CellResult, computed once per session."""
    return {c.cell_hash: run_cell(c) for c in cells}


@pytest.fixture
def filled(tmp_path: Path, cells: list[Cell], results_of: dict[str, object]) -> ResultStore:
    store = ResultStore(str(tmp_path / "res"))
    fill(store, cells, results_of)
    return store
