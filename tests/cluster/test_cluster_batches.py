"""Cells in batches (cluster/pool.py, issue 17): tiny cells travel several to one actor call,
and a worker lost, or a cell timed out, in the middle of a batch settles each cell of that batch
as if it had travelled alone: the cell that was running is the lost (or timed-out) attempt, the
cells the worker finished before it are done, and the cells behind it are re-queued without
counting an attempt. Real Ray (the session cluster, 2 CPUs), real results store.

``BATCH_S`` is raised in these tests so that batching does not depend on how fast the machine
runs the cells; the recording backend keeps every batch it sent, so each test checks that the
cell it faulted had neighbours in its batch (a test that ran one cell per call would fail)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import cluster.pool as pool
from adv_core.config import Cell
from adv_core.results import Status
from cluster.scheduler import CellState, run_cells
from sweeps.plan import plan
from sweeps.rows import RunInfo
from sweeps.sink import RunSink
from sweeps.spec import SweepSpec, load_spec
from sweeps.store import ResultStore
from tests.fault.harness import assert_complete, audit, file_mtime, record
from tests.fault.inject import hook
from tests.specs import FGSM

pytestmark = pytest.mark.slow


class Recording(pool.RayBackend):
    """The real backend, keeping the cell hashes of every call (batch) it sends, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[list[str]] = []
        super().__init__(*args, **kwargs)

    def _flush(self) -> None:
        before = {i: len(calls) for i, calls in self.calls.items()}
        super()._flush()
        for i, calls in self.calls.items():  # the calls this flush sent, in order
            self.sent += [[s.cell.cell_hash for s in c.slots] for c in list(calls)[before[i] :]]


@pytest.fixture
def batch_spec(make_spec: Callable[..., Path]) -> SweepSpec:
    """The tiny spec with 12 seeds, one member, fgsm: 48 cells of ~10-30 ms each."""
    return load_spec(
        make_spec(name="batches", seeds=list(range(12)), attacks=[FGSM], ensemble_size=1)
    )


@pytest.fixture
def many_cells(batch_spec: SweepSpec) -> list[Cell]:
    return plan(batch_spec)


@pytest.fixture
def run_sink(tmp_path: Path, batch_spec: SweepSpec) -> RunSink:
    """A real results store under tmp_path, bound to run ``t`` of the spec's sweep."""
    return RunSink(ResultStore(str(tmp_path / "results")), RunInfo(batch_spec.name, "t", "test"))


def _recovered(run_sink: Any, spec: SweepSpec, victim: str, marker: Path) -> float:
    """Seconds from the fault (its marker written) to the victim's rows in place."""
    results = Path(run_sink.store.root)
    return file_mtime(results, spec, run_sink.run.run_id, victim) - marker.stat().st_mtime


@pytest.fixture(autouse=True)
def _large_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "BATCH_S", 30.0)


def _attempt_rows(sink: Any) -> dict[str, list[int]]:
    store, run = sink.store, sink.run
    part = Path(store.partition("metrics", run.sweep, run.run_id))
    return {
        p.stem: sorted(set(pq.read_table(p).column("attempt").to_pylist()))
        for p in part.glob("*.parquet")
    }


def _faulted(run_sink: Any, cells: list[Cell], fault: str, **kwargs: Any) -> tuple[Recording, Any]:
    """Run ``cells`` on 2 actors with the worker fault ``fault`` (tests/fault/inject.py)."""
    backend = Recording(run_sink, 2, cpus_per_worker=1, hook=hook(fault))
    try:
        return backend, run_cells(cells, run_sink, backend, **kwargs)
    finally:
        backend.shutdown()


def _inside(sent: list[list[str]], victim: str) -> tuple[list[str], int, list[str]]:
    """The first batch that carried ``victim`` (the one whose attempt failed), the victim's
    position in it and the cells behind it; the victim must have neighbours on both sides."""
    batch = next(b for b in sent if victim in b)
    k = batch.index(victim)
    assert k >= 1 and batch[k + 1 :], f"the victim should sit inside a batch: {batch} at {k}"
    return batch, k, batch[k + 1 :]


def test_tiny_cells_travel_in_batches_and_each_runs_once(
    ray_cluster: Any, run_sink: Any, many_cells: list[Cell]
) -> None:
    backend = Recording(run_sink, 2, cpus_per_worker=1)
    try:
        summary = run_cells(many_cells, run_sink, backend, max_retries=0)
    finally:
        backend.shutdown()
    assert summary.count(CellState.DONE) == len(many_cells) and summary.failed == 0
    assert all(n == 1 for n in summary.attempts.values())
    sent = [h for b in backend.sent for h in b]
    assert sorted(sent) == sorted(c.cell_hash for c in many_cells)  # each cell sent once
    assert backend.calls_made == len(backend.sent) < len(many_cells) // 2  # 13 when measured
    assert max(len(b) for b in backend.sent) <= pool.MAX_BATCH
    assert len(backend.sent[-1]) < max(len(b) for b in backend.sent)  # the tail spreads
    assert _attempt_rows(run_sink) == {c.cell_hash: [1] for c in many_cells}


def test_worker_lost_mid_batch_counts_one_attempt_for_the_running_cell(
    ray_cluster: Any, run_sink: Any, batch_spec: SweepSpec, many_cells: list[Cell], tmp_path: Path
) -> None:
    """The first worker to begin its 6th cell dies there (its 2nd batch, after 2 done cells)."""
    marker = tmp_path / "killed-pid"
    backend, summary = _faulted(run_sink, many_cells, f"exitnth:6:{marker}", max_retries=1)
    assert marker.exists() and backend.lost == 1
    assert summary.count(CellState.DONE) == len(many_cells) and summary.failed == 0
    retried = [h for h, n in summary.attempts.items() if n > 1]
    assert len(retried) == 1, "exactly one cell was running when its worker died"
    victim = retried[0]
    assert summary.workers[victim][0] == "lost" and summary.attempts[victim] == 2
    batch, k, behind = _inside(backend.sent, victim)
    for h in behind:  # never began: re-queued, not counted, run once elsewhere
        assert summary.attempts[h] == 1 and summary.workers[h] != ["lost"]
    for h in batch[:k]:  # finished before the worker died: done, whether or not it answered
        assert summary.attempts[h] == 1 and summary.states[h] == CellState.DONE
    rows = _attempt_rows(run_sink)
    assert rows.pop(victim) == [2]
    assert rows == {c.cell_hash: [1] for c in many_cells if c.cell_hash != victim}
    a = audit(Path(run_sink.store.root), batch_spec, run_sink.run.run_id, many_cells)
    assert_complete(a, batch_spec, ok_cells=len(many_cells))
    record(
        "worker dies mid-batch",
        f"the running cell (position {k} of a {len(batch)}-cell batch) was the one lost attempt "
        f"and re-ran (rows: attempt 2); the {len(behind)} cells behind it were re-queued "
        "uncounted; the ones before it were found done in the store",
        a,
        _recovered(run_sink, batch_spec, victim, marker),
    )


def test_cell_timing_out_mid_batch_requeues_the_cells_behind_it(
    ray_cluster: Any, run_sink: Any, batch_spec: SweepSpec, many_cells: list[Cell], tmp_path: Path
) -> None:
    """The first worker to begin its 6th cell hangs there; the 3 s timeout kills the worker."""
    marker = tmp_path / "hung-pid"
    backend, summary = _faulted(
        run_sink, many_cells, f"hangnth:6:{marker}", max_retries=0, timeout_s=3.0
    )
    assert marker.exists()
    failed = [h for h, s in summary.states.items() if s == CellState.FAILED]
    assert len(failed) == 1 and "timed out after 3.0 s" in summary.errors[failed[0]]
    victim = failed[0]
    batch, k, behind = _inside(backend.sent, victim)
    assert summary.count(CellState.DONE) == len(many_cells) - 1
    assert all(summary.attempts[h] == 1 for h in summary.attempts)  # max_retries 0 held
    rows = _attempt_rows(run_sink)
    assert set(rows) == {c.cell_hash for c in many_cells}  # the victim has its failure rows
    a = audit(Path(run_sink.store.root), batch_spec, run_sink.run.run_id, many_cells)
    assert_complete(a, batch_spec, ok_cells=len(many_cells) - 1)
    assert a.status[victim] == "failed" and "timed out after 3.0 s" in a.errors[victim]
    record(
        "cell hangs mid-batch",
        f"killed 3 s after it began (position {k} of a {len(batch)}-cell batch): a failed row "
        f"'timed out after 3.0 s'; the {len(behind)} cells behind it re-queued uncounted, all "
        "others ok",
        a,
        _recovered(run_sink, batch_spec, victim, marker),
    )


def test_an_earlier_runs_failure_rows_are_not_taken_for_a_finished_cell(
    ray_cluster: Any, run_sink: Any, many_cells: list[Cell], tmp_path: Path
) -> None:
    """A resumed run whose every cell still holds an earlier run's failure rows: when a cell
    hangs mid-batch and its worker is killed, the stored files of the cells behind it are that
    earlier failure, not work the killed worker finished, so they are re-queued uncounted and
    run (with ``max_retries`` 0, taking them for lost attempts would fail them all)."""
    for c in many_cells:
        run_sink.write_failure(c, Status.FAILED, "an earlier run's failure", attempt=1)
    marker = tmp_path / "hung-pid"
    backend, summary = _faulted(
        run_sink, many_cells, f"hangnth:6:{marker}", max_retries=0, timeout_s=3.0,
        previously_failed={c.cell_hash for c in many_cells},
    )  # fmt: skip
    failed = [h for h, s in summary.states.items() if s == CellState.FAILED]
    assert len(failed) == 1 and "timed out after 3.0 s" in summary.errors[failed[0]]
    _, _, behind = _inside(backend.sent, failed[0])
    assert all(summary.states[h] == CellState.DONE for h in behind)
    assert summary.count(CellState.DONE) == len(many_cells) - 1
    assert all(n == 1 for n in summary.attempts.values())
