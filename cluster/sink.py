"""The protocol the cluster layer needs from its caller's result store (DESIGN.md: the store
lives in sweeps/ and is passed in, so imports stay one-way)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from adv_core.config import Cell
from adv_core.results import Status


@runtime_checkable
class ResultSink(Protocol):
    """Where workers put results. Must be picklable (it travels to Ray actors)."""

    def write_result(
        self,
        cell: Cell,
        rows: list[dict[str, Any]],
        examples: dict[str, list[Any]] | None,
        *,
        attempt: int,
        model_reused: bool | None,
    ) -> Any:
        """Atomically persist one cell's rows; returns a small receipt with ``status``."""

    def write_failure(self, cell: Cell, status: Status, error: str, *, attempt: int) -> Any:
        """Persist rows saying why a cell failed permanently."""

    def is_done(self, cell_hash: str) -> bool:
        """Whether a finished result for the cell exists."""

    def load_model(self, train_hash: str) -> tuple[bytes, str] | None:
        """(safetensors weights, JSON config) of a trained ensemble, if saved."""

    def save_model(self, train_hash: str, weights: bytes, config: str) -> None:
        """Save a trained ensemble under its train_hash."""
