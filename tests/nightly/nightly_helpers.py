"""Shared by tests/nightly: the spec, the CLI, and writing a later night's rows through the
store with counts changed on purpose."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from adv_core.stats import wilson
from sweeps.schema import metrics_table
from sweeps.store import METRICS, ResultStore
from tests.specs import tiny_spec

SPEC = tiny_spec(
    name="nightly",
    datasets=[{"name": "gaussian", "d": 8}],
    n_train=[8, 16],
    training=[{"method": "standard", "epochs": 3}],
    attacks=[{"name": "fgsm", "eps": [0.0, 0.1]}],
    resources={"max_retries": 0},
)
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


GROUP = {
    "dataset": "gaussian", "d": 8, "n_train": 8, "model": "linear", "train_method": "standard",
    "train_norm": None, "train_eps": None, "attack": "fgsm", "norm": "linf", "eps": 0.1,
    "member": -1, "dataset_config": "{}", "model_config": "{}", "training_config": "{}",
}  # fmt: skip


def group_frame(run_id: str, k: int, n: int, **key: Any) -> Any:
    """Metrics rows (one seed) of one group for the pure functions of sweeps.regression."""
    import polars as pl

    row = {**GROUP, **key, "run_id": run_id, "status": "ok", "n_robust": k, "n_eval": n}
    row |= {"cell_hash": f"c{key.get('d', 8)}", "seed": 0, "train_hash": "t0"}
    return pl.DataFrame([row], schema_overrides={"train_norm": pl.String, "train_eps": pl.Float64})


def one_group_frames(k_now: int, n_now: int, k_prev: int, n_prev: int) -> tuple[Any, Any]:
    return group_frame("nightly-2", k_now, n_now), group_frame("nightly-1", k_prev, n_prev)


def example_frame(run_id: str, robust: list[bool], **key: Any) -> Any:
    """Per-example rows for ``group_frame``'s cell: example i robust iff robust[i]."""
    import polars as pl

    n = len(robust)
    return pl.DataFrame(
        {
            "run_id": [run_id] * n, "cell_hash": [f"c{key.get('d', 8)}"] * n, "member": [-1] * n,
            "attack": ["fgsm"] * n, "norm": ["linf"] * n, "example": list(range(n)),
            "label": [i % 2 for i in range(n)], "clean_correct": [True] * n,
            "broken_eps": [float("inf") if r else 0.1 for r in robust],
        }
    )  # fmt: skip
