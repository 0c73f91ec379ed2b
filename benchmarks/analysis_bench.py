"""Item 6: a robustness curve (polars group-by) over many metrics rows stored as
hive-partitioned Parquet, read through analysis.load and analysis.curves.robustness_curve.

Rows follow the real schema (sweeps.schema.METRICS_SCHEMA, whatever columns it has now):
cells of 5 targets x 3 attacks x 8 eps = 120 rows, many cells per file (as after
``sweeps compact``), files spread over 2 sweeps x 2 runs.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.core import Measurement, Scale, best, interleaved
from sweeps.schema import METRICS_SCHEMA

ROWS_PER_CELL = 120  # members -1..3 x attacks x 8 eps
ATTACKS = np.array(["fgsm", "pgd", "exact"])
NORMS = np.array(["linf", "l2", "linf"])
DATASETS = np.array(["gaussian", "digits", "bernoulli"])
MODELS = np.array(["linear", "mlp", "cnn"])
METHODS = np.array(["standard", "pgd_at"])


def _cell_columns(n_cells: int, rng: np.random.Generator, offset: int) -> dict[str, np.ndarray]:
    method = rng.integers(0, 2, n_cells)
    return {
        "cell_hash": np.array([f"{offset + i:016x}" for i in range(n_cells)]),
        "dataset": DATASETS[rng.integers(0, 3, n_cells)],
        "d": 2 ** rng.integers(3, 10, n_cells),
        "n_train": 2 ** rng.integers(2, 10, n_cells),
        "model": MODELS[rng.integers(0, 3, n_cells)],
        "train_method": METHODS[method],
        "train_eps": np.where(method == 1, 0.1, np.nan),
        "seed": rng.integers(0, 10, n_cells),
    }


def _columns(n_rows: int, rng: np.random.Generator, offset: int) -> dict[str, Any]:
    """Realistic values for the columns the analysis uses; the rest are filled by type."""
    n_cells = -(-n_rows // ROWS_PER_CELL)
    cell = np.repeat(np.arange(n_cells), ROWS_PER_CELL)[:n_rows]
    j = np.arange(n_rows) % ROWS_PER_CELL
    per_cell = {k: v[cell] for k, v in _cell_columns(n_cells, rng, offset).items()}
    attack = (j // 8) % 3
    n_eval = np.full(n_rows, 1000)
    clean = rng.integers(500, 1000, n_rows)
    robust = (clean * (1 - (j % 8) / 8)).astype(np.int64)
    return {
        **per_cell,
        "train_eps": pa.array(per_cell["train_eps"], from_pandas=True),
        "train_hash": per_cell["cell_hash"],
        "member": j // 24 - 1,
        "attack": ATTACKS[attack],
        "norm": NORMS[attack],
        "eps": (j % 8) * 0.05,
        "n_eval": n_eval,
        "n_clean_correct": clean,
        "n_robust": robust,
        "clean_acc": clean / n_eval,
        "robust_acc": robust / n_eval,
        "robust_acc_lo": robust / n_eval * 0.95,
        "robust_acc_hi": np.minimum(1.0, robust / n_eval * 1.05),
        "theory_robust_acc": robust / n_eval,
        "bayes_robust_acc": np.minimum(1.0, robust / n_eval + 0.01),
        "status": np.where(rng.random(n_rows) < 0.99, "ok", "failed"),
        "ensemble_size": np.full(n_rows, 4),
    }


def _filler(f: pa.Field, n: int) -> pa.Array:
    """A constant column for a field the analysis does not group on."""
    t = f.type
    if pa.types.is_list(t):
        return pa.array([[]] * n, type=t)
    if pa.types.is_timestamp(t):
        return pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * n, type=t)
    if pa.types.is_string(t):
        return pa.array(["{}"] * n, type=t)
    if pa.types.is_boolean(t):
        return pa.array([False] * n, type=t)
    if f.nullable:
        return pa.nulls(n, type=t)
    return pa.array(np.ones(n), type=pa.float64()).cast(t)


def metrics_table(
    n_rows: int, rng: np.random.Generator, offset: int, sweep: str, run: str
) -> pa.Table:
    cols = _columns(n_rows, rng, offset)
    cols.update({"sweep": np.full(n_rows, sweep), "run_id": np.full(n_rows, run)})
    arrays = [
        pa.array(cols[f.name], type=f.type) if f.name in cols else _filler(f, n_rows)
        for f in METRICS_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=METRICS_SCHEMA)


def write_store(root: Path, n_rows: int, n_files: int, seed: int = 0) -> int:
    """Write ``n_rows`` rows in ``n_files`` files under ROOT/metrics/sweep=*/run=*/."""
    rng = np.random.default_rng(seed)
    per_file = -(-n_rows // n_files)
    written = 0
    for i in range(n_files):
        sweep, run = f"s{i % 2}", f"r{(i // 2) % 2}"
        part = root / "metrics" / f"sweep={sweep}" / f"run={run}"
        part.mkdir(parents=True, exist_ok=True)
        rows = min(per_file, n_rows - written)
        table = metrics_table(rows, rng, offset=written, sweep=sweep, run=run)
        pq.write_table(table, part / f"{i:08x}.parquet")
        written += rows
    return written


def run(scale: Scale) -> list[Measurement]:
    from analysis import load
    from analysis.curves import robustness_curve

    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        n = write_store(Path(tmp), scale.metric_rows, scale.metric_files)
        samples, last = interleaved(
            {"curve": lambda: robustness_curve(load(tmp))}, scale.repeats, warmup=1
        )
    wall = best(samples["curve"])
    return [
        Measurement(
            "6 analysis curve",
            f"{n:,} rows, {scale.metric_files} files (time / 1 s)",
            wall / 1.0,
            1.0,
            ours_s=wall,
            reference_s=1.0,
            reference="budget",
            details={"rows": n, "groups": last["curve"].height, "samples": samples},
        )
    ]
