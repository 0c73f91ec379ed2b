"""The results schema: column names, types and the schema version, in one place (STYLE 6).

Writers build tables through ``metrics_table``/``examples_table`` (which validate); readers
(analysis/) import the same names. Imports neither torch nor ray.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from adv_core.results import FINISHED as FINISHED  # re-exported: readers import this module
from adv_core.results import ROW_RECORDS, ExampleRow, Status

SCHEMA_VERSION = 1
STATUSES = tuple(Status)  # re-exported for readers (analysis/ imports this module only)

# The on-disk column order of the metrics table (never reorder: written files keep it). Each
# column's type and nullability come from its field in adv_core.results (Provenance, CellColumns,
# MetricsRow); ``_metrics_fields`` checks that the two name the same columns.
METRICS_ORDER = (
    "schema_version", "sweep", "run_id", "cell_hash", "train_hash", "dataset", "d", "n_train",
    "n_eval", "model", "train_method", "train_norm", "train_eps", "ensemble_size", "seed",
    "member", "source_member", "attack", "norm", "eps", "clean_acc", "robust_acc",
    "robust_acc_lo", "robust_acc_hi", "theory_robust_acc", "flags", "status", "error", "wall_s",
    "device", "node", "code_version", "created_at", "config",
    # Extensions beyond the DESIGN.md contract (additive only).
    "n_clean_correct", "n_robust", "bayes_robust_acc", "any_learner_robust_acc",
    "dataset_config", "model_config", "training_config", "model_reused", "attempt",
    "n_forward", "n_backward", "components", "component_robust_acc",
)  # fmt: skip

_ARROW_TYPES: dict[Any, pa.DataType] = {
    int: pa.int64(),
    float: pa.float64(),
    str: pa.string(),
    bool: pa.bool_(),
    Status: pa.string(),
    list[str]: pa.list_(pa.string()),
    list[float]: pa.list_(pa.float64()),
    dt.datetime: pa.timestamp("us", tz="UTC"),
}
_TYPE_OVERRIDES = {"schema_version": pa.int32()}


def record_fields(record: type[Any]) -> list[pa.Field]:
    """Arrow fields of a dataclass record: ``X | None`` is a nullable X, anything else required."""
    hints = typing.get_type_hints(record)
    out = []
    for f in dataclasses.fields(record):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = isinstance(hint, types.UnionType) and len(args) < len(typing.get_args(hint))
        base = args[0] if nullable else hint
        arrow = _TYPE_OVERRIDES.get(f.name) or _ARROW_TYPES[base]
        out.append(pa.field(f.name, arrow, nullable=nullable))
    return out


def _metrics_fields() -> list[pa.Field]:
    by_name = {f.name: f for rec in ROW_RECORDS for f in record_fields(rec)}
    if set(by_name) != set(METRICS_ORDER) or len(METRICS_ORDER) != len(set(METRICS_ORDER)):
        raise RuntimeError(
            f"METRICS_ORDER and adv_core.results disagree: {set(by_name) ^ set(METRICS_ORDER)}"
        )
    return [by_name[name] for name in METRICS_ORDER]


METRICS_FIELDS: list[pa.Field] = _metrics_fields()
METRICS_SCHEMA = pa.schema(METRICS_FIELDS, metadata={"schema_version": str(SCHEMA_VERSION)})
METRICS_COLUMNS = tuple(f.name for f in METRICS_FIELDS)

EXAMPLES_FIELDS: list[pa.Field] = [
    *METRICS_FIELDS[:4],  # schema_version, sweep, run_id, cell_hash
    *record_fields(ExampleRow),  # adv_core's own columns, in ExampleRow's field order
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
    if row["status"] == Status.OK and row["robust_acc"] is None:
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
