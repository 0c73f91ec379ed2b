"""Read the results store with polars. Explicit hive schemas: partition values such as run ids
stay strings (a run called 20240101 must never become an integer)."""

from __future__ import annotations

import posixpath
import warnings
from typing import Any

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweeps.schema import (
    EXAMPLES_SCHEMA,
    METRICS_SCHEMA,
    PARTITION_KEYS,
    is_compacted,
    live_files,
)


def _polars_schema(arrow_schema: Any) -> dict[str, Any]:
    empty = pl.from_arrow(arrow_schema.empty_table())
    assert isinstance(empty, pl.DataFrame)  # a table, never a single column
    return dict(empty.schema)


def _resolve(root: str) -> tuple[pafs.FileSystem, str]:
    if "://" in root:
        fs, path = pafs.FileSystem.from_uri(root)
        return fs, path.rstrip("/")
    import os

    return pafs.LocalFileSystem(), os.path.abspath(root)


def table_files(
    results_dir: str,
    table: str,
    sweep: str | None = None,
    run: str | None = None,
    *,
    check: bool = True,
) -> list[str]:
    """Readable Parquet files of ``table``, filtered by sweep/run; unreadable ones are skipped
    with a warning that names the path."""
    fs, base = _resolve(results_dir)
    parts = (
        [base, table]
        + ([f"sweep={sweep}"] if sweep else [])
        + ([f"run={run}"] if sweep and run else [])
    )
    sel = pafs.FileSelector(posixpath.join(*parts), allow_not_found=True, recursive=True)
    by_partition: dict[str, dict[str, Any]] = {}  # compacted files: see schema.live_files
    for info in fs.get_file_info(sel):
        name = posixpath.basename(info.path)
        if info.type != pafs.FileType.File or not name.endswith(".parquet") or name.startswith("."):
            continue
        if run and f"/run={run}/" not in info.path:
            continue
        meta = None
        if check or is_compacted(info.path):
            try:
                meta = pq.read_metadata(info.path, filesystem=fs).metadata
            except Exception as exc:  # a truncated or corrupt file must not hide the rest
                warnings.warn(f"skipping unreadable results file {info.path}: {exc}", stacklevel=2)
                continue
        by_partition.setdefault(posixpath.dirname(info.path), {})[info.path] = meta
    return sorted(f for group in by_partition.values() for f in live_files(group))


def _scan(
    results_dir: str,
    table: str,
    schema: Any,
    sweep: str | None,
    run: str | None,
    storage_options: dict[str, Any] | None,
) -> pl.LazyFrame:
    files = table_files(results_dir, table, sweep, run)
    pschema = _polars_schema(schema)
    hive = dict.fromkeys(PARTITION_KEYS, pl.String)
    if not files:
        return pl.LazyFrame(schema={**pschema, **hive})
    scheme = results_dir.split("://", 1)[0] + "://" if "://" in results_dir else ""
    sources = [scheme + f for f in files]
    return pl.scan_parquet(
        sources,
        hive_partitioning=True,
        hive_schema=hive,
        schema=pschema,
        storage_options=storage_options,
    )


def load(
    results_dir: str,
    sweep: str | None = None,
    run: str | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
) -> pl.LazyFrame:
    """The metrics table as a LazyFrame (one row per cell, member, attack and eps)."""
    return _scan(results_dir, "metrics", METRICS_SCHEMA, sweep, run, storage_options)


def load_examples(
    results_dir: str,
    sweep: str | None = None,
    run: str | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
) -> pl.LazyFrame:
    """The per-example table (margins, the smallest eps that broke each example)."""
    return _scan(results_dir, "examples", EXAMPLES_SCHEMA, sweep, run, storage_options)


# Dataset parameters the closed forms need, read from the canonical ``dataset_config`` JSON.
_PARAMS: dict[str, Any] = {
    "theta": pl.String,
    "sigma": pl.Float64,
    "sigma_c": pl.Float64,
    "r": pl.Float64,
    "tau": pl.Float64,
    "p": pl.Float64,
    "eta": pl.Float64,
    "resolution": pl.Int64,
    "d": pl.Int64,
    "n_unlabeled": pl.Int64,
}


def with_dataset_params(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add the dataset parameters (``theta``, ``sigma_c``, ``r``, ``tau``, ``p``, ``eta``,
    ``resolution``; null where a dataset has no such field), ``n_unlabeled`` from the training
    config, and ``noise_sigma`` (sigma_c d^(1/4) when sigma_c is set, else sigma) as columns."""
    cols = []
    for name, dtype in _PARAMS.items():
        src = "training_config" if name == "n_unlabeled" else "dataset_config"
        cols.append(pl.col(src).str.json_path_match(f"$.{name}").cast(dtype).alias(f"ds_{name}"))
    noise = (
        pl.when(pl.col("ds_sigma_c").is_not_null())
        .then(pl.col("ds_sigma_c") * pl.col("d").cast(pl.Float64).pow(0.25))
        .otherwise(pl.col("ds_sigma"))
        .alias("noise_sigma")
    )
    return frame.with_columns(cols).with_columns(noise)
