"""Read the results store with polars. Explicit hive schemas: partition values such as run ids
stay strings (a run called 20240101 must never become an integer)."""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sweeps import layout
from sweeps.index import scan_partition
from sweeps.layout import PARTITION_KEYS
from sweeps.schema import EXAMPLES_SCHEMA, METRICS_SCHEMA


def _polars_type(t: pa.DataType) -> Any:
    """The polars dtype of an arrow type of the results schema. Mapped by hand: building an
    arrow table (even an empty one) makes pyarrow import pandas, ~1.2 s of a first
    ``load()``; a type the schema gains later fails here loudly."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pl.List(_polars_type(t.value_type))
    if pa.types.is_timestamp(t):
        return pl.Datetime(t.unit, t.tz)
    simple = {
        pa.string(): pl.String, pa.large_string(): pl.String, pa.bool_(): pl.Boolean,
        pa.int32(): pl.Int32, pa.int64(): pl.Int64, pa.float64(): pl.Float64,
        pa.float32(): pl.Float32,
    }  # fmt: skip
    if t not in simple:
        raise TypeError(f"results schema type {t} has no polars mapping in analysis.load")
    return simple[t]


def _polars_schema(arrow_schema: pa.Schema) -> dict[str, Any]:
    return {f.name: _polars_type(f.type) for f in arrow_schema}


def table_files(
    results_dir: str,
    table: str,
    sweep: str | None = None,
    run: str | None = None,
    *,
    check: bool = True,
) -> list[str]:
    """Live Parquet files of ``table``, filtered by sweep/run, resolved per partition by
    ``sweeps.index`` (parts from the index, see ``layout.live_files``); unreadable files are
    skipped with a warning that names the path. ``check`` also opens the loose per-cell files'
    footers (few: the driver compacts as it runs)."""
    fs, base = layout.resolve(results_dir)
    top = "/".join(
        [base, table]
        + ([f"sweep={sweep}"] if sweep else [])
        + ([f"run={run}"] if sweep and run else [])
    )
    by_partition: dict[str, list[Any]] = defaultdict(list)
    for info in layout.list_infos(fs, top, recursive=True):
        where = layout.partition_of(info.path)
        if where is None or (run and where[1] != run):
            continue
        by_partition[info.path.rsplit("/", 1)[0]].append(info)
    out: list[str] = []
    for directory, infos in sorted(by_partition.items()):
        part = scan_partition(fs, directory, infos)
        for b in part.bad:
            warnings.warn(f"skipping unreadable results file {b}", stacklevel=2)
        out += part.parts
        for f in part.loose:
            if check:
                try:
                    pq.read_metadata(f, filesystem=fs)
                except Exception as exc:  # a truncated or corrupt file must not hide the rest
                    warnings.warn(f"skipping unreadable results file {f}: {exc}", stacklevel=2)
                    continue
            out.append(f)
    return sorted(out)


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
        missing_columns="insert",  # files written before an additive column read it as null
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
