"""The results schema: column names, types and the schema version, in one place (STYLE 6).

Writers build tables through ``metrics_table``/``examples_table`` (which validate); readers
(analysis/) import the same names. Imports neither torch nor ray.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "diverged")

# Hive partition keys of both tables: ROOT/<table>/sweep=<name>/run=<run_id>/<file>.parquet.
PARTITION_KEYS = ("sweep", "run")

METRICS_FIELDS: list[pa.Field] = [
    pa.field("schema_version", pa.int32(), nullable=False),
    pa.field("sweep", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("cell_hash", pa.string(), nullable=False),
    pa.field("train_hash", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("d", pa.int64(), nullable=False),
    pa.field("n_train", pa.int64(), nullable=False),
    pa.field("n_eval", pa.int64(), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("train_method", pa.string(), nullable=False),
    pa.field("train_norm", pa.string()),
    pa.field("train_eps", pa.float64()),
    pa.field("ensemble_size", pa.int64(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("member", pa.int64(), nullable=False),
    pa.field("source_member", pa.int64()),
    pa.field("attack", pa.string(), nullable=False),
    pa.field("norm", pa.string(), nullable=False),
    pa.field("eps", pa.float64(), nullable=False),
    pa.field("clean_acc", pa.float64()),
    pa.field("robust_acc", pa.float64()),
    pa.field("robust_acc_lo", pa.float64()),
    pa.field("robust_acc_hi", pa.float64()),
    pa.field("theory_robust_acc", pa.float64()),
    pa.field("flags", pa.list_(pa.string()), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("wall_s", pa.float64()),
    pa.field("device", pa.string()),
    pa.field("node", pa.string()),
    pa.field("code_version", pa.string(), nullable=False),
    pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("config", pa.string(), nullable=False),
    # Extensions beyond the DESIGN.md contract (additive only).
    pa.field("n_clean_correct", pa.int64()),
    pa.field("n_robust", pa.int64()),
    pa.field("bayes_robust_acc", pa.float64()),
    pa.field("any_learner_robust_acc", pa.float64()),
    pa.field("dataset_config", pa.string(), nullable=False),
    pa.field("model_config", pa.string(), nullable=False),
    pa.field("training_config", pa.string(), nullable=False),
    pa.field("model_reused", pa.bool_()),
    pa.field("attempt", pa.int64()),
]
METRICS_SCHEMA = pa.schema(METRICS_FIELDS, metadata={"schema_version": str(SCHEMA_VERSION)})
METRICS_COLUMNS = tuple(f.name for f in METRICS_FIELDS)

EXAMPLES_FIELDS: list[pa.Field] = [
    pa.field("schema_version", pa.int32(), nullable=False),
    pa.field("sweep", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("cell_hash", pa.string(), nullable=False),
    pa.field("member", pa.int64(), nullable=False),
    pa.field("example", pa.int64(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
    pa.field("clean_correct", pa.bool_(), nullable=False),
    pa.field("margin", pa.float64(), nullable=False),
    pa.field("attack", pa.string(), nullable=False),
    pa.field("norm", pa.string(), nullable=False),
    pa.field("broken_eps", pa.float64(), nullable=False),
    pa.field("min_distance", pa.float64()),
    pa.field("clean_pred", pa.int64()),  # the predicted class on the clean input
]
EXAMPLES_SCHEMA = pa.schema(EXAMPLES_FIELDS, metadata={"schema_version": str(SCHEMA_VERSION)})
EXAMPLES_COLUMNS = tuple(f.name for f in EXAMPLES_FIELDS)

_UNIT_COLUMNS = (
    "clean_acc",
    "robust_acc",
    "robust_acc_lo",
    "robust_acc_hi",
    "theory_robust_acc",
    "bayes_robust_acc",
    "any_learner_robust_acc",
)


class SchemaError(ValueError):
    """A row that does not fit the results schema."""


def _check_row(i: int, row: Mapping[str, Any]) -> None:
    missing = [c for c in METRICS_COLUMNS if c not in row]
    extra = [c for c in row if c not in METRICS_COLUMNS]
    if missing or extra:
        raise SchemaError(f"row {i}: missing columns {missing}, unknown columns {extra}")
    if row["status"] not in STATUSES:
        raise SchemaError(f"row {i}: status {row['status']!r} not in {STATUSES}")
    if not (isinstance(row["eps"], (int, float)) and row["eps"] >= 0 and math.isfinite(row["eps"])):
        raise SchemaError(f"row {i}: eps must be a finite number >= 0, got {row['eps']!r}")
    for c in _UNIT_COLUMNS:
        v = row[c]
        if v is not None and not (0.0 <= v <= 1.0):
            raise SchemaError(f"row {i}: {c} = {v} is outside [0, 1]")
    if row["status"] == "ok" and row["robust_acc"] is None:
        raise SchemaError(f"row {i}: an ok row needs robust_acc")


def metrics_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Validate rows against the schema and build the Arrow table (raises SchemaError)."""
    for i, row in enumerate(rows):
        _check_row(i, row)
    try:
        return pa.Table.from_pylist([dict(r) for r in rows], schema=METRICS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(str(exc)) from exc


def examples_table(columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    missing = [c for c in EXAMPLES_COLUMNS if c not in columns]
    if missing:
        raise SchemaError(f"examples table is missing columns {missing}")
    try:
        return pa.Table.from_pydict(
            {c: columns[c] for c in EXAMPLES_COLUMNS}, schema=EXAMPLES_SCHEMA
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(str(exc)) from exc


def polars_hive_schema() -> dict[str, Any]:
    """Partition columns are strings: run ids like 20240101 must never become integers."""
    import polars as pl

    return {k: pl.String for k in PARTITION_KEYS}


# -- compacted files (additive; see sweeps/compact.py) --------------------------------------------
# A per-cell file is named ``<cell_hash>.parquet``; a compacted file ``part-<stamp>-<id>.parquet``
# carries in its Parquet key-value metadata the JSON lists of the cells it holds and of the
# compacted files it replaces. ``live_files`` turns a partition's listing into the files to
# read so that no row is read twice, whatever step of a compaction was interrupted.
COMPACTED_PREFIX = "part-"
META_CELLS = b"sweeps.cells"
META_SUPERSEDES = b"sweeps.supersedes"


def is_compacted(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith(COMPACTED_PREFIX)


def compacted_metadata(cells: Sequence[str], supersedes: Sequence[str]) -> dict[bytes, bytes]:
    import json

    return {
        META_CELLS: json.dumps(sorted(cells)).encode(),
        META_SUPERSEDES: json.dumps(sorted(supersedes)).encode(),
    }


def live_files(files: Mapping[str, Mapping[bytes, bytes] | None]) -> list[str]:
    """The files of one partition to read, given each readable file's key-value metadata.

    A compacted file listed in another one's ``supersedes`` is skipped (the newer holds its
    rows), and so is a per-cell file whose cell a live compacted file holds (compaction only
    merges finished cells, so that per-cell file is a leftover copy of the same rows).
    """
    import json

    def meta(path: str, key: bytes) -> list[str]:
        raw = (files[path] or {}).get(key)
        return list(json.loads(raw)) if raw else []

    parts = [p for p in files if is_compacted(p)]
    dead = {s for p in parts for s in meta(p, META_SUPERSEDES)}
    live_parts = [p for p in parts if p.rsplit("/", 1)[-1] not in dead]
    covered = {c for p in live_parts for c in meta(p, META_CELLS)}
    singles = [
        p
        for p in files
        if not is_compacted(p) and p.rsplit("/", 1)[-1].removesuffix(".parquet") not in covered
    ]
    return sorted(live_parts + singles)
