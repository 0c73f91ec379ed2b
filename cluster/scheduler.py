"""The driver's controller (STYLE 10): hands cells to free workers, largest estimated cost
first, retries failed attempts a bounded number of times, and records permanent failures.

Ray sits behind the small ``Backend`` seam, so this logic is tested in-process
(``InlineBackend``) and on a real cluster (cluster/pool.py ``RayBackend``).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from adv_core.config import Cell
from adv_core.cost import estimate_cost
from adv_core.run import STATUS_FAILED
from cluster.sink import ResultSink
from cluster.worker import CellRunner, Outcome


class CellState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DIVERGED = "diverged"
    FAILED = "failed"


class Backend(Protocol):
    """Runs cells on workers. ``submit`` returns a handle; ``wait`` returns finished handles
    with their outcome (a lost worker is reported as a failed Outcome)."""

    def capacity(self) -> int: ...

    def submit(self, cell: Cell, attempt: int) -> Any: ...

    def wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, Outcome]]: ...

    def cancel(self, handle: Any) -> None: ...


@dataclass
class Summary:
    total: int
    states: dict[str, CellState] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    cell_s: float = 0.0

    def count(self, state: CellState) -> int:
        return sum(1 for s in self.states.values() if s is state)

    @property
    def failed(self) -> int:
        return self.count(CellState.FAILED)


Progress = Callable[[Summary], None]


def order_cells(cells: Iterable[Cell]) -> list[Cell]:
    """Largest estimated cost first (ties broken by hash for determinism); no duplicates."""
    unique = {c.cell_hash: c for c in cells}
    return sorted(unique.values(), key=lambda c: (-estimate_cost(c), c.cell_hash))


def run_cells(
    cells: list[Cell],
    sink: ResultSink,
    backend: Backend,
    *,
    max_retries: int = 2,
    timeout_s: float | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Run every cell to completion: done, diverged, or failed after 1 + max_retries attempts."""
    t0 = time.perf_counter()
    queue = order_cells(cells)
    summary = Summary(total=len(queue), states={c.cell_hash: CellState.PENDING for c in queue})
    by_hash = {c.cell_hash: c for c in queue}
    running: dict[Any, tuple[str, float]] = {}
    while queue or running:
        while queue and len(running) < backend.capacity():
            cell = queue.pop(0)
            summary.attempts[cell.cell_hash] = summary.attempts.get(cell.cell_hash, 0) + 1
            running[backend.submit(cell, summary.attempts[cell.cell_hash])] = (
                cell.cell_hash,
                time.monotonic(),
            )
            summary.states[cell.cell_hash] = CellState.RUNNING
        for handle, outcome in backend.wait(
            list(running), timeout=_next_deadline(running, timeout_s)
        ):
            h, _ = running.pop(handle)
            summary.cell_s += outcome.wall_s
            _settle(by_hash[h], outcome, sink, summary, queue, max_retries)
        for handle in _expired(running, timeout_s):
            h, _ = running.pop(handle)
            backend.cancel(handle)
            _settle(
                by_hash[h],
                Outcome(h, False, "error", error=f"timed out after {timeout_s} s"),
                sink,
                summary,
                queue,
                max_retries,
            )
        if progress:
            progress(summary)
    summary.wall_s = time.perf_counter() - t0
    return summary


def _settle(
    cell: Cell,
    outcome: Outcome,
    sink: ResultSink,
    summary: Summary,
    queue: list[Cell],
    max_retries: int,
) -> None:
    h = cell.cell_hash
    if outcome.ok:
        summary.states[h] = CellState.DIVERGED if outcome.status == "diverged" else CellState.DONE
        return
    if sink.is_done(h):  # the worker wrote its result, then was lost before answering
        summary.states[h] = CellState.DONE
        return
    summary.errors[h] = outcome.error or "unknown error"
    if summary.attempts[h] <= max_retries:
        summary.states[h] = CellState.PENDING
        queue.insert(0, cell)  # retry next, on whichever worker frees up
        return
    sink.write_failure(cell, STATUS_FAILED, summary.errors[h], attempt=summary.attempts[h])
    summary.states[h] = CellState.FAILED


def _next_deadline(running: dict[Any, tuple[str, float]], timeout_s: float | None) -> float | None:
    if timeout_s is None or not running:
        return None
    oldest = min(t for _, t in running.values())
    return max(0.05, oldest + timeout_s - time.monotonic())


def _expired(running: dict[Any, tuple[str, float]], timeout_s: float | None) -> list[Any]:
    if timeout_s is None:
        return []
    now = time.monotonic()
    return [h for h, (_, t) in running.items() if now - t > timeout_s]


class InlineBackend:
    """Runs each cell synchronously in this process (tests, debugging, ``--workers 0``)."""

    def __init__(self, sink: ResultSink) -> None:
        self.runner = CellRunner(sink)
        self._done: dict[int, Outcome] = {}
        self._next = 0

    def capacity(self) -> int:
        return 1

    def submit(self, cell: Cell, attempt: int) -> Any:
        self._next += 1
        self._done[self._next] = self.runner.run(cell, attempt)
        return self._next

    def wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, Outcome]]:
        return [(h, self._done.pop(h)) for h in handles]

    def cancel(self, handle: Any) -> None:
        self._done.pop(handle, None)
