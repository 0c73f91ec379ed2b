"""Shared by tests/store: a small spec, a run id that looks like a number, and ``fill``."""

from __future__ import annotations

from adv_core.config import Cell
from sweeps.rows import RunInfo
from sweeps.store import ResultStore
from tests.specs import tiny_spec

SPEC = tiny_spec(
    name="st",
    datasets=[{"name": "gaussian", "d": 8}],
    n_train=[8, 16],
    n_eval=60,
    training=[{"method": "standard", "epochs": 2}],
    attacks=[{"name": "fgsm", "eps": [0.0, 0.1]}],
    resources={"max_retries": 0},
)
RUN = RunInfo("st", "20240101", "test")  # a run id that looks like a number on purpose


def fill(store: ResultStore, cells: list[Cell], results_of: dict[str, object]) -> None:
    """Write cells 0..n-2 ok and the last one as a permanent failure."""
    for c in cells[:-1]:
        res = results_of[c.cell_hash]
        store.write_cell(RUN, c, res.rows, res.examples)  # type: ignore[attr-defined]
    from adv_core.results import Status
    from adv_core.run import failure_rows

    store.write_cell(RUN, cells[-1], failure_rows(cells[-1], Status.FAILED, "boom"), None)
