"""The store bound to one run: what cluster/ workers write through (cluster.sink.ResultSink)."""

from __future__ import annotations

from typing import Any

from adv_core.config import Cell
from adv_core.results import Status
from sweeps.rows import RunInfo
from sweeps.store import Receipt, ResultStore


class RunSink:
    def __init__(self, store: ResultStore, run: RunInfo, *, reuse_models: bool = True) -> None:
        self.store, self.run, self.reuse_models = store, run, reuse_models

    def write_result(
        self,
        cell: Cell,
        rows: list[dict[str, Any]],
        examples: dict[str, list[Any]] | None,
        *,
        attempt: int,
        model_reused: bool | None,
    ) -> Receipt:
        return self.store.write_cell(
            self.run, cell, rows, examples, attempt=attempt, model_reused=model_reused
        )

    def write_failure(self, cell: Cell, status: Status, error: str, *, attempt: int) -> Receipt:
        from adv_core.run import failure_rows  # torch: only once a cell has failed for good

        return self.store.write_cell(
            self.run, cell, failure_rows(cell, status, error), None, attempt=attempt
        )

    def is_done(self, cell_hash: str) -> bool:
        if self.store.exists(
            self.store.cell_file("metrics", self.run.sweep, self.run.run_id, cell_hash)
        ):
            return True
        done, _ = self.store.cell_status(self.run.sweep, self.run.run_id)  # compacted cells
        return cell_hash in done

    def load_model(self, train_hash: str) -> tuple[bytes, str] | None:
        """The saved ensemble for ``train_hash``; None when absent or when retraining."""
        return self.store.load_model(train_hash) if self.reuse_models else None

    def save_model(self, train_hash: str, weights: bytes, config: str) -> None:
        self.store.save_model(train_hash, weights, config)
