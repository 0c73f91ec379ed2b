"""The driver keeps the layout compact by itself: while a sweep runs, finished cells move into
parts in the background; at its end the run holds a part per table and an index, resume and
status read the index, and every row is there exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis import load
from analysis.load import load_examples
from cluster.scheduler import CellState, Summary
from sweeps import compact, layout
from sweeps.plan import plan
from sweeps.rows import RunInfo
from sweeps.runner import run_sweep
from sweeps.spec import loads_spec
from sweeps.store import EXAMPLES, METRICS, ResultStore

SPEC = """
name: bg
seeds: [0, 1, 2, 3]
datasets: [{name: gaussian, d: [4, 8]}]
n_train: [4, 8]
n_eval: 20
models: [{name: linear}]
training: [{method: standard, epochs: 1}]
attacks: [{name: fgsm, eps: [0.0, 0.1, 0.2]}]
resources: {max_retries: 0}
"""


def names(store: ResultStore, table: str) -> list[str]:
    return [Path(f).name for f in store.list_files(store.partition(table, "bg", "r1"))]


def test_a_sweep_compacts_itself_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compact, "BATCH_CELLS", 4)
    # MIN_CELLS 1: the end pass then leaves no loose file (with more, it leaves fewer than
    # MIN_CELLS of them by design, and how many depends on when the last background pass ran)
    monkeypatch.setattr(compact, "MIN_CELLS", 1)
    monkeypatch.setattr(compact, "POLL_S", 0.05)
    spec = loads_spec(SPEC)
    cells = plan(spec)
    store = ResultStore(str(tmp_path / "res"))
    seen_parts: list[str] = []

    def progress(summary: Summary) -> None:
        if seen_parts or summary.count(CellState.DONE) < 8:
            return
        deadline = time.monotonic() + 60  # the background pass runs while cells still run
        while not seen_parts and time.monotonic() < deadline:
            seen_parts.extend(n for n in names(store, METRICS) if n.startswith("part-"))
            time.sleep(0.02)

    out = run_sweep(spec, store.root, "r1", inline=True, progress=progress)
    assert out.exit_code == 0 and out.summary.count(CellState.DONE) == 16
    assert seen_parts, "no part was written while the sweep ran"
    for table in (METRICS, EXAMPLES):  # one part per table at the end, no per-cell file
        [part] = names(store, table)
        assert part.startswith("part-") and part not in seen_parts  # the small parts merged
    directory = Path(store.partition(METRICS, "bg", "r1"))
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [*names(store, METRICS), "_index.json"]
    )
    df = load(store.root).collect()
    assert df.height == 16 * 3 and df.select("cell_hash", "eps").is_duplicated().sum() == 0
    assert set(df["cell_hash"]) == {c.cell_hash for c in cells}
    assert load_examples(store.root).collect().height == 16 * 20  # one row per example and attack
    real = pq.read_metadata
    opened: list[str] = []
    monkeypatch.setattr(pq, "read_metadata", lambda p, **k: opened.append(p) or real(p, **k))
    done, bad = store.cell_status("bg", "r1")
    assert set(done) == {c.cell_hash for c in cells} and set(done.values()) == {"ok"}
    assert bad == [] and opened == []  # from the index alone
    assert store.pending(RunInfo("bg", "r1", "t"), cells) == []
    assert store.read_manifest("r1")["cells_done"] == 16
    again = run_sweep(spec, store.root, "r1", inline=True)
    assert again.skipped == 16 and again.summary.total == 0


def test_a_run_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    """Temporaries of a writer killed mid-write are deleted by the next run (never read);
    cells it left loose are merged."""
    spec = loads_spec(SPEC.replace("seeds: [0, 1, 2, 3]", "seeds: [0]"))
    store = ResultStore(str(tmp_path / "res"))
    assert run_sweep(spec, store.root, "r1", inline=True).exit_code == 0
    assert len(names(store, METRICS)) == 4  # fewer than MIN_CELLS: left loose
    stale = [
        layout.tmp_name(store.cell_file(t, "bg", "r1", "0" * 16), "dead")
        for t in (METRICS, EXAMPLES)
    ]
    for p in stale:
        Path(p).write_bytes(b"PAR1 half a file")
    assert load(store.root).collect().height == 4 * 3  # never read as results
    before = compact.MIN_CELLS
    try:
        compact.MIN_CELLS = 2
        assert run_sweep(spec, store.root, "r1", inline=True).skipped == 4
    finally:
        compact.MIN_CELLS = before
    assert not any(Path(p).exists() for p in stale)
    assert [n[:5] for n in names(store, METRICS)] == ["part-"]
    assert load(store.root).collect().height == 4 * 3


def test_the_run_reads_its_final_state_after_the_end_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no background pass during the run (BATCH_CELLS above the cell count, a long
    interval), every cell is loose when the cells finish; the driver's end pass merges them
    before it reads the run's final state for the manifest, so that state comes from the
    parts' index, not from opening every loose file (issue 17: at 10,000 cells that tail
    took 14 s)."""
    monkeypatch.setattr(compact, "BATCH_CELLS", 10_000)
    monkeypatch.setattr(compact, "MIN_CELLS", 1)
    monkeypatch.setattr(compact, "INTERVAL_S", 3600.0)
    store = ResultStore(str(tmp_path / "res"))
    loose_seen: list[int] = []
    real = ResultStore.cell_status

    def cell_status(self: ResultStore, sweep: str, run_id: str) -> tuple[dict, list]:
        loose_seen.append(len(self.scan(METRICS, sweep, run_id).loose))
        return real(self, sweep, run_id)

    monkeypatch.setattr(ResultStore, "cell_status", cell_status)
    spec = loads_spec(SPEC)
    out = run_sweep(spec, store.root, "r1", inline=True)
    assert out.exit_code == 0 and out.summary.count(CellState.DONE) == 16
    assert loose_seen[0] == 0  # the start: nothing there yet
    assert loose_seen[-1] == 0, f"the final status read {loose_seen[-1]} loose files"
    manifest = store.read_manifest("r1")
    assert manifest["cells_done"] == 16 and manifest["status"] == "complete"
    assert manifest["models_trained"] == 16
