"""The scheduler's logic without Ray (STYLE 10): a scripted backend plays workers that answer,
fail, get lost or hang, and the invariants are checked: largest cost first, bounded in-flight
cells, every cell settled exactly once, bounded retries, failures recorded as rows."""

from __future__ import annotations

import time
from typing import Any

import pytest

from adv_core.config import Cell
from adv_core.cost import estimate_cost
from cluster.scheduler import CellState, run_cells
from cluster.worker import Outcome

OK, RAISE, LOST, WRITE_THEN_LOST, HANG = "ok", "raise", "lost", "write_then_lost", "hang"


class ScriptedBackend:
    """Workers whose behaviour for the target cell follows ``script[attempt - 1]``; every other
    cell succeeds. Finished work is returned one cell per ``wait``, oldest first."""

    def __init__(self, sink: Any, capacity: int, target: str = "", script: tuple[str, ...] = ()):
        self.sink, self.cap, self.target, self.script = sink, capacity, target, script
        self.pending: dict[int, tuple[Cell, str]] = {}
        self.submitted: list[str] = []
        self.cancelled = 0
        self.peak = 0

    def capacity(self) -> int:
        return self.cap

    def submit(self, cell: Cell, attempt: int) -> int:
        what = OK
        if cell.cell_hash == self.target and attempt <= len(self.script):
            what = self.script[attempt - 1]
        self.submitted.append(cell.cell_hash)
        handle = len(self.submitted)
        self.pending[handle] = (cell, what)
        self.peak = max(self.peak, len(self.pending))
        return handle

    def wait(self, handles: list[int], timeout: float | None) -> list[tuple[int, Outcome]]:
        ready = [h for h in handles if self.pending[h][1] != HANG]
        if not ready:
            time.sleep(timeout or 0.0)
            return []
        cell, what = self.pending.pop(ready[0])
        return [(ready[0], self._outcome(cell, what))]

    def _outcome(self, cell: Cell, what: str) -> Outcome:
        h = cell.cell_hash
        if what == OK:
            self.sink.write_result(cell, [], None, attempt=1, model_reused=False)
            return Outcome(h, True, "ok", h, None, 0.01, "w1")
        if what == RAISE:
            return Outcome(h, False, "error", None, "RuntimeError: boom", 0.01, "w1")
        if what == WRITE_THEN_LOST:
            self.sink.write_result(cell, [], None, attempt=1, model_reused=False)
        return Outcome("", False, "error", error="worker lost: RayActorError")

    def cancel(self, handle: int) -> None:
        self.pending.pop(handle)
        self.cancelled += 1


def test_largest_cost_first_each_cell_once(tiny_cells: list[Cell], memory_sink: Any) -> None:
    backend = ScriptedBackend(memory_sink, capacity=1)
    summary = run_cells(tiny_cells, memory_sink, backend)
    costs = [
        estimate_cost(next(c for c in tiny_cells if c.cell_hash == h)) for h in backend.submitted
    ]
    assert costs == sorted(costs, reverse=True)
    assert sorted(memory_sink.written) == sorted(c.cell_hash for c in tiny_cells)
    assert summary.count(CellState.DONE) == len(tiny_cells) == summary.total


@pytest.mark.parametrize("capacity", [1, 3, 8, 20], ids=lambda k: f"capacity={k}")
def test_in_flight_bounded_by_capacity(
    tiny_cells: list[Cell], memory_sink: Any, capacity: int
) -> None:
    backend = ScriptedBackend(memory_sink, capacity=capacity)
    summary = run_cells(tiny_cells + tiny_cells, memory_sink, backend)  # duplicates collapse
    assert backend.peak == summary.max_in_flight == min(capacity, len(tiny_cells))
    assert len(memory_sink.written) == len(set(memory_sink.written)) == len(tiny_cells)


CASES = {
    # script of the target cell's attempts -> (final state, attempts, workers seen, failure rows)
    "raises_every_time": ((RAISE, RAISE, RAISE), CellState.FAILED, 3, ["w1"] * 3, 1),
    "raises_once": ((RAISE, OK), CellState.DONE, 2, ["w1", "w1"], 0),
    "worker_lost_then_ok": ((LOST, OK), CellState.DONE, 2, ["lost", "w1"], 0),
    "lost_after_writing_not_rerun": ((WRITE_THEN_LOST,), CellState.DONE, 1, ["lost"], 0),
    "lost_every_time": ((LOST, LOST, LOST), CellState.FAILED, 3, ["lost"] * 3, 1),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_failure_handling(tiny_cells: list[Cell], memory_sink: Any, case: str) -> None:
    script, state, attempts, workers, failure_rows = CASES[case]
    target = tiny_cells[3].cell_hash
    backend = ScriptedBackend(memory_sink, capacity=2, target=target, script=script)
    summary = run_cells(tiny_cells, memory_sink, backend, max_retries=2)
    assert summary.states[target] is state
    assert summary.attempts[target] == attempts
    assert summary.workers[target] == workers
    assert len(memory_sink.failures) == failure_rows
    if failure_rows:
        assert memory_sink.failures[0][0] == target and memory_sink.failures[0][2] == 3
        assert summary.errors[target] in {"RuntimeError: boom", "worker lost: RayActorError"}
    others = [c.cell_hash for c in tiny_cells if c.cell_hash != target]
    assert all(summary.states[h] is CellState.DONE for h in others)
    assert sorted(set(memory_sink.written) - {target}) == sorted(others)


def test_stale_failed_file_is_not_taken_for_this_runs_result(
    tiny_cells: list[Cell], memory_sink: Any
) -> None:
    """A cell that failed in an earlier run still has its failure file: a lost worker (or a
    failing one) must not make the scheduler believe the cell is done."""
    target = tiny_cells[0].cell_hash
    memory_sink.preexisting = {target}
    backend = ScriptedBackend(memory_sink, capacity=2, target=target, script=(LOST, RAISE))
    summary = run_cells(tiny_cells, memory_sink, backend, max_retries=1, previously_failed={target})
    assert summary.states[target] is CellState.FAILED
    assert summary.attempts[target] == 2
    assert [f[0] for f in memory_sink.failures] == [target]


def test_timeout_cancels_and_retries(tiny_cells: list[Cell], memory_sink: Any) -> None:
    target = tiny_cells[1].cell_hash
    backend = ScriptedBackend(memory_sink, capacity=2, target=target, script=(HANG, OK))
    summary = run_cells(tiny_cells, memory_sink, backend, max_retries=1, timeout_s=0.2)
    assert backend.cancelled == 1
    assert summary.states[target] is CellState.DONE
    assert summary.attempts[target] == 2
    assert summary.errors[target] == "timed out after 0.2 s"
    assert memory_sink.written.count(target) == 1
