"""The driver's controller (STYLE 10): hands cells to free workers, largest estimated cost
first, retries failed attempts a bounded number of times, and records permanent failures.

Ray sits behind the small ``Backend`` seam, so this logic is tested in-process
(``InlineBackend``) and on a real cluster (cluster/pool.py ``RayBackend``).

The driver's cost per cell is kept flat (issue 17): each cell is hashed once, the queue is a
deque, the summary keeps its counts as it goes (a progress bar reads them in O(1)), and nothing
here imports torch or Ray (the workers do).
"""

from __future__ import annotations

import enum
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from adv_core.config import Cell
from adv_core.cost import estimate_cost
from adv_core.results import Status
from cluster.outcome import Outcome
from cluster.sink import ResultSink


class CellState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DIVERGED = "diverged"
    FAILED = "failed"


class Backend(Protocol):
    """Runs cells on workers. ``submit`` returns a handle; ``wait`` returns finished handles
    with their outcome (a lost worker is reported as a failed Outcome).

    Optional extras, used when a backend has them: ``started_at(handle)`` is the monotonic time
    a submitted cell began running, or None while it waits in a worker's queue (a cell's
    timeout runs from then); ``set_demand(n)`` tells the backend how many cells are still to
    run (queued + in flight), so a pool can grow towards it or let idle workers go; a
    ``previously_failed`` attribute is set to the cells whose stored result is an earlier
    run's failure (a stored file then does not mean the cell ran now)."""

    def capacity(self) -> int: ...

    def submit(self, cell: Cell, attempt: int) -> Any: ...

    def wait(self, handles: list[Any], timeout: float | None) -> list[tuple[Any, Outcome]]: ...

    def cancel(self, handle: Any) -> None: ...


@dataclass
class Summary:
    """What happened to every cell. ``workers`` lists, per cell, the worker of each attempt
    that answered (a lost attempt shows as ``"lost"``); ``events`` lists every answer as
    (seconds since the start, cell hash, worker or ``"lost"``); ``finished_at`` is when each
    cell settled; ``max_in_flight`` is the most cells that were ever running at once."""

    total: int
    states: dict[str, CellState] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    workers: dict[str, list[str]] = field(default_factory=dict)
    finished_at: dict[str, float] = field(default_factory=dict)
    events: list[tuple[float, str, str]] = field(default_factory=list)
    max_in_flight: int = 0
    wall_s: float = 0.0
    cell_s: float = 0.0
    counts: Counter[CellState] = field(default_factory=Counter, repr=False)

    def __post_init__(self) -> None:
        self.counts = Counter(self.states.values())

    def set_state(self, h: str, state: CellState) -> None:
        old = self.states.get(h)
        if old is not None:
            self.counts[old] -= 1
        self.states[h] = state
        self.counts[state] += 1

    def count(self, state: CellState) -> int:
        return self.counts[state]

    @property
    def failed(self) -> int:
        return self.count(CellState.FAILED)


Progress = Callable[[Summary], None]


def order_cells(cells: Iterable[Cell]) -> list[Cell]:
    """Largest estimated cost first (ties broken by hash for determinism); no duplicates."""
    return [c for _, c in _ordered(cells)]


def _ordered(cells: Iterable[Cell]) -> list[tuple[str, Cell]]:
    """(hash, cell) pairs, largest estimated cost first: each cell hashed exactly once."""
    unique = {c.cell_hash: c for c in cells}
    keyed = sorted((-estimate_cost(c), h) for h, c in unique.items())
    return [(h, unique[h]) for _, h in keyed]


def run_cells(
    cells: list[Cell],
    sink: ResultSink,
    backend: Backend,
    *,
    max_retries: int = 2,
    timeout_s: float | None = None,
    progress: Progress | None = None,
    previously_failed: Collection[str] = (),
) -> Summary:
    """Run every cell to completion: done, diverged, or failed after 1 + max_retries attempts.

    At most ``backend.capacity()`` cells are in flight; the next cell (largest cost first, a
    retry before any new cell) goes to whichever worker frees up. ``previously_failed`` names
    cells whose existing result file holds failure rows from an earlier run, so that file is
    not mistaken for this run's result when a worker is lost.
    """
    t0 = time.perf_counter()
    queue = deque(_ordered(cells))
    summary = Summary(total=len(queue), states={h: CellState.PENDING for h, _ in queue})
    running: dict[Any, tuple[str, Cell, float]] = {}  # handle -> (hash, cell, submitted at)
    settle = _Settler(sink, summary, queue, max_retries, set(previously_failed), t0)
    demand = getattr(backend, "set_demand", None)
    if hasattr(backend, "previously_failed"):  # its own reading of what a lost actor wrote
        backend.previously_failed = settle.previously_failed
    while queue or running:
        if demand:
            demand(len(queue) + len(running))
        while queue and len(running) < backend.capacity():
            h, cell = queue.popleft()
            summary.attempts[h] = summary.attempts.get(h, 0) + 1
            handle = backend.submit(cell, summary.attempts[h])
            running[handle] = (h, cell, time.monotonic())
            summary.set_state(h, CellState.RUNNING)
        summary.max_in_flight = max(summary.max_in_flight, len(running))
        started = _start_times(backend, running)
        for handle, outcome in backend.wait(
            list(running), timeout=_next_deadline(started, timeout_s)
        ):
            h, cell, _ = running.pop(handle)
            summary.cell_s += outcome.wall_s
            settle(h, cell, outcome)
        for handle in _expired(_start_times(backend, running), timeout_s):
            h, cell, _ = running.pop(handle)
            backend.cancel(handle)
            settle(h, cell, Outcome("", False, "error", error=f"timed out after {timeout_s} s"))
        if progress:
            progress(summary)
    if demand:
        demand(0)
    summary.wall_s = time.perf_counter() - t0
    return summary


@dataclass
class _Settler:
    """Decides what an attempt's outcome means: done, retry, or a permanent failure."""

    sink: ResultSink
    summary: Summary
    queue: deque[tuple[str, Cell]]
    max_retries: int
    previously_failed: set[str]
    t0: float

    def __call__(self, h: str, cell: Cell, outcome: Outcome) -> None:
        summary = self.summary
        if not outcome.started:  # queued behind a lost cell: it never ran, so it costs nothing
            summary.attempts[h] -= 1
            summary.set_state(h, CellState.PENDING)
            self.queue.appendleft((h, cell))
            return
        who = outcome.worker or "lost"
        summary.workers.setdefault(h, []).append(who)
        summary.events.append((time.perf_counter() - self.t0, h, who))
        if outcome.ok:
            diverged = outcome.status == Status.DIVERGED
            self._finish(h, CellState.DIVERGED if diverged else CellState.DONE)
            return
        # A worker that answered knows it wrote nothing. A lost (or timed-out) worker may have
        # written its result just before it died: then the file is this attempt's result.
        lost = not outcome.cell_hash
        if lost and h not in self.previously_failed and self.sink.is_done(h):
            self._finish(h, CellState.DONE)
            return
        summary.errors[h] = outcome.error or "unknown error"
        if summary.attempts[h] <= self.max_retries:
            summary.set_state(h, CellState.PENDING)
            self.queue.appendleft((h, cell))  # retry next, on whichever worker frees up
            return
        self.sink.write_failure(cell, Status.FAILED, summary.errors[h], attempt=summary.attempts[h])
        self._finish(h, CellState.FAILED)

    def _finish(self, h: str, state: CellState) -> None:
        self.summary.set_state(h, state)
        self.summary.finished_at[h] = time.perf_counter() - self.t0


def _start_times(backend: Backend, running: dict[Any, tuple[str, Cell, float]]) -> dict[Any, float]:
    """When each running cell began (cells still queued on a worker are left out)."""
    started_at = getattr(backend, "started_at", None)
    if started_at is None:
        return {handle: t for handle, (_, _, t) in running.items()}
    out = {}
    for handle in running:
        t = started_at(handle)
        if t is not None:
            out[handle] = t
    return out


def _next_deadline(started: dict[Any, float], timeout_s: float | None) -> float | None:
    if timeout_s is None or not started:
        return None
    return max(0.05, min(started.values()) + timeout_s - time.monotonic())


def _expired(started: dict[Any, float], timeout_s: float | None) -> list[Any]:
    if timeout_s is None:
        return []
    now = time.monotonic()
    return [h for h, t in started.items() if now - t > timeout_s]


class InlineBackend:
    """Runs each cell synchronously in this process (tests, debugging, ``--workers 0``)."""

    def __init__(self, sink: ResultSink) -> None:
        from cluster.worker import CellRunner  # imports torch: only when cells run here

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
