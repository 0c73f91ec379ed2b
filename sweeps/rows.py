"""Assemble full metrics rows: a cell's own columns + adv_core's per-(member, attack, eps) rows
+ the run's provenance. Pure functions, no I/O, no torch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adv_core.config import Cell, canonical_json
from adv_core.results import CellColumns, MetricsRow, Provenance
from sweeps.schema import SCHEMA_VERSION


@dataclass(frozen=True)
class RunInfo:
    """Provenance shared by every row of one run (never part of a hash)."""

    sweep: str
    run_id: str
    code_version: str


def model_column(model: Any) -> str:
    """The ``model_config`` column, which nightly comparisons group on: an external model's
    weights file is what a nightly run tests, so its path and hash stay out of it (the cell's
    ``config`` and hashes keep the hash; a new checkpoint is compared with the last one)."""
    if model.name == "external":
        return canonical_json(model.model_dump(mode="json", exclude={"weights", "weights_sha256"}))
    return canonical_json(model)


def cell_columns(cell: Cell) -> CellColumns:
    t = cell.training
    return CellColumns(
        cell_hash=cell.cell_hash,
        train_hash=cell.train_hash,
        dataset=cell.dataset.name,
        d=int(cell.dataset.input_dim),
        n_train=cell.n_train,
        n_eval=cell.n_eval,
        model=cell.model.name,
        train_method=t.method,
        train_norm=t.threat_norm,
        train_eps=t.threat_eps,
        ensemble_size=cell.ensemble_size,
        seed=cell.seed,
        config=cell.to_json(),
        dataset_config=canonical_json(cell.dataset),
        model_config=model_column(cell.model),
        training_config=canonical_json(cell.training),
    )


def full_row(
    prov: Provenance, cell: CellColumns, metrics: MetricsRow | Mapping[str, Any]
) -> dict[str, Any]:
    """One complete metrics row (column name -> value) from its three records."""
    return _with(_columns(prov, cell), metrics)


def _columns(prov: Provenance, cell: CellColumns) -> dict[str, Any]:
    """The provenance and cell columns every row of a cell shares."""
    return {**dataclasses.asdict(prov), **dataclasses.asdict(cell)}


def _with(shared: dict[str, Any], metrics: MetricsRow | Mapping[str, Any]) -> dict[str, Any]:
    measured = metrics.as_dict() if isinstance(metrics, MetricsRow) else dict(metrics)
    return {**shared, **measured}


def complete_rows(
    run: RunInfo,
    cell: Cell,
    rows: Sequence[MetricsRow | Mapping[str, Any]],
    *,
    attempt: int = 1,
    model_reused: bool | None = None,
    node: str | None = None,
) -> list[dict[str, Any]]:
    """Add cell and provenance columns to adv_core's rows."""
    prov = Provenance(
        schema_version=SCHEMA_VERSION,
        sweep=run.sweep,
        run_id=run.run_id,
        code_version=run.code_version,
        created_at=dt.datetime.now(dt.UTC),
        node=node or socket.gethostname(),
        model_reused=model_reused,
        attempt=attempt,
    )
    shared = _columns(prov, cell_columns(cell))  # once per cell, not per row
    return [_with(shared, r) for r in rows]


def complete_examples(
    run: RunInfo, cell: Cell, examples: dict[str, list[Any]]
) -> dict[str, list[Any]]:
    n = len(examples.get("example", []))
    return {
        "schema_version": [SCHEMA_VERSION] * n,
        "sweep": [run.sweep] * n,
        "run_id": [run.run_id] * n,
        "cell_hash": [cell.cell_hash] * n,
        **examples,
    }
