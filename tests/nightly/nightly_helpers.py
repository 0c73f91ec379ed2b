"""Shared by tests/nightly: the spec, the CLI, and writing a later night's rows through the
store with counts changed on purpose."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from adv_core.stats import wilson
from sweeps.schema import metrics_table
from sweeps.store import METRICS, ResultStore

SPEC = """
name: nightly
seeds: [0, 1]
datasets: [{name: gaussian, d: 8}]
n_train: [8, 16]
n_eval: 200
models: [{name: linear}]
training: [{method: standard, epochs: 3}]
ensemble_size: 2
attacks: [{name: fgsm, eps: [0.0, 0.1]}]
resources: {max_retries: 0}
"""
FIRST = "2026-11-20"


def invoke(*args: str) -> Any:
    from typer.testing import CliRunner

    from sweeps.cli import app

    return CliRunner().invoke(app, list(args))


Mutate = Callable[[dict[str, Any]], dict[str, Any]]


def with_count(row: dict[str, Any], k: int) -> dict[str, Any]:
    """The row with n_robust = k (and the accuracy and interval that go with it)."""
    n = row["n_eval"]
    lo, hi = wilson(k, n)
    return {**row, "n_robust": k, "robust_acc": k / n, "robust_acc_lo": lo, "robust_acc_hi": hi}


def write_night(store: ResultStore, src: str, dst: str, mutate: Mutate) -> None:
    """Write run ``dst`` as a copy of run ``src`` with every row passed through ``mutate``."""
    cells: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in store.read_table(METRICS, "nightly", src).to_pylist():
        cells[row["cell_hash"]].append(mutate({**row, "run_id": dst}))
    for h, rows in cells.items():
        store.write_table(store.cell_file(METRICS, "nightly", dst, h), metrics_table(rows))
