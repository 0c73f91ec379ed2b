"""adv_core.results: one status vocabulary and the typed records the schema derives from."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest

from adv_core.results import (
    FINISHED,
    ROW_RECORDS,
    CellColumns,
    MetricsRow,
    Provenance,
    Status,
)
from sweeps.rows import full_row
from sweeps.schema import METRICS_COLUMNS, METRICS_SCHEMA, STATUSES, SchemaError, metrics_table


def test_statuses_are_the_stored_strings() -> None:
    assert [s.value for s in Status] == ["ok", "failed", "diverged"] == list(STATUSES)
    assert {"ok", "diverged"} == FINISHED and "failed" not in FINISHED
    assert Status("diverged") is Status.DIVERGED and Status.OK == "ok"


def test_schema_columns_are_the_record_fields() -> None:
    names = [f.name for rec in ROW_RECORDS for f in dataclasses.fields(rec)]
    assert len(names) == len(set(names)) == len(METRICS_COLUMNS)
    assert set(names) == set(METRICS_COLUMNS)
    # nullability follows ``X | None`` on the record
    assert not METRICS_SCHEMA.field("member").nullable
    assert METRICS_SCHEMA.field("source_member").nullable
    assert METRICS_SCHEMA.field("flags").type == pa.list_(pa.string())
    assert METRICS_SCHEMA.field("schema_version").type == pa.int32()
    assert METRICS_SCHEMA.field("created_at").type == pa.timestamp("us", tz="UTC")


def _row(metrics: MetricsRow) -> dict[str, object]:
    prov = Provenance(1, "s", "r", "test", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    cell = CellColumns(
        "c", "t", "gaussian", 4, 8, 10, "linear", "standard", None, None, 1, 0, "{}", "{}",
        "{}", "{}",
    )  # fmt: skip
    return full_row(prov, cell, metrics)


def test_measured_row_round_trips_with_plain_status_strings() -> None:
    m = MetricsRow.measured(-1, "pgd", "linf", 0.1, n_clean=9, n_robust=4, n=10, flags=["b", "a"])
    assert (m.clean_acc, m.robust_acc, m.flags, m.status) == (0.9, 0.4, ["a", "b"], Status.OK)
    assert m.robust_acc_lo is not None and m.robust_acc_hi is not None
    assert m.robust_acc_lo < 0.4 < m.robust_acc_hi
    table = metrics_table([_row(m)])
    assert table.column("status").to_pylist() == ["ok"]
    assert table.column("robust_acc").to_pylist() == [0.4]


def test_failure_row_has_no_numbers_and_an_ok_row_needs_them() -> None:
    f = MetricsRow.failure("pgd", "linf", 0.1, Status.FAILED, "boom")
    assert metrics_table([_row(f)]).column("status").to_pylist() == ["failed"]
    broken = dataclasses.replace(f, status=Status.OK)
    with pytest.raises(SchemaError, match="ok row needs robust_acc"):
        metrics_table([_row(broken)])
