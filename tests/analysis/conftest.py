"""Session fixture: one synthetic results folder shared by all analysis tests (see
synthetic_results.py for what it holds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from synthetic_results import (
    inevitability_rows,
    nightly_rows,
    sample_complexity_rows,
    spheres_examples,
    transfer_rows,
    write,
)

from sweeps.rows import RunInfo
from sweeps.store import ResultStore


@pytest.fixture(scope="session")
def synthetic_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Results folder with sweeps sample_complexity, inevitability, transfer and nightly."""
    root = tmp_path_factory.mktemp("analysis-results")
    store = ResultStore(str(root))
    rng = np.random.default_rng(7)
    sc = RunInfo("sample_complexity", "r1", "test")
    write(store, sc, sample_complexity_rows(sc, rng))
    inev = RunInfo("inevitability", "r1", "test")
    write(store, inev, inevitability_rows(inev, rng))
    tr = RunInfo("transfer", "r1", "test")
    t_rows = transfer_rows(tr, rng)
    write(store, tr, t_rows, spheres_examples(tr, t_rows, rng))
    for day, drop in (("20260101", 0.0), ("20260102", 0.0), ("20260103", 0.25)):
        nr = RunInfo("nightly", f"nightly-{day}", "test")
        write(store, nr, nightly_rows(nr, rng, drop))
    yield root
