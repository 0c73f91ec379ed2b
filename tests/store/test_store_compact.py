"""Compaction: every row kept exactly once, resume still sees compacted cells, and a crash
between writing the merged file and deleting the per-cell files duplicates nothing."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from store_helpers import RUN, fill

from analysis import load
from analysis.load import load_examples
from sweeps.compact import compact_run
from sweeps.store import EXAMPLES, METRICS, ResultStore

KEY = ["cell_hash", "member", "attack", "eps"]
EX_KEY = ["cell_hash", "member", "attack", "example"]


def snapshot(store: ResultStore) -> tuple[pl.DataFrame, pl.DataFrame]:
    m = load(store.root).collect().sort(KEY)
    e = load_examples(store.root).collect().sort(EX_KEY)
    return m, e


def files(store: ResultStore, table: str) -> list[str]:
    return [Path(f).name for f in store.list_files(store.partition(table, RUN.sweep, RUN.run_id))]


def test_compaction_keeps_every_row_once(filled: ResultStore, cells: list) -> None:
    before_m, before_e = snapshot(filled)
    pending_before = filled.pending(RUN, cells)
    res = compact_run(filled, RUN.sweep, RUN.run_id)
    after_m, after_e = snapshot(filled)
    assert_frame_equal(before_m, after_m)
    assert_frame_equal(before_e, after_e)
    assert before_m.select(KEY).is_duplicated().sum() == 0
    # 3 ok cells merged into one part; the failed cell keeps its own file so it can be re-run
    m_files = files(filled, METRICS)
    assert len(m_files) == 2 and sum(f.startswith("part-") for f in m_files) == 1
    assert f"{cells[-1].cell_hash}.parquet" in m_files
    assert len(files(filled, EXAMPLES)) == 1
    by_table = {t.table: t for t in res.tables}
    rows_ok = before_m.filter(pl.col("status") == "ok").height
    assert by_table[METRICS].rows == rows_ok and by_table[EXAMPLES].rows == before_e.height
    assert (
        [c.cell_hash for c in filled.pending(RUN, cells)]
        == [c.cell_hash for c in pending_before]
        == [cells[-1].cell_hash]
    )


def test_crash_between_merge_and_delete_duplicates_nothing(
    filled: ResultStore, cells: list, results_of: dict
) -> None:
    before_m, before_e = snapshot(filled)
    part_dir = Path(filled.partition(METRICS, RUN.sweep, RUN.run_id))
    ex_dir = Path(filled.partition(EXAMPLES, RUN.sweep, RUN.run_id))
    saved = {p: p.read_bytes() for d in (part_dir, ex_dir) for p in d.glob("*.parquet")}
    compact_run(filled, RUN.sweep, RUN.run_id)
    for p, data in saved.items():  # the state a crash right after the merged write leaves
        p.write_bytes(data)
    assert len(files(filled, METRICS)) == 5
    after_m, after_e = snapshot(filled)
    assert_frame_equal(before_m, after_m)
    assert_frame_equal(before_e, after_e)
    assert filled.read_table(METRICS, RUN.sweep, RUN.run_id).num_rows == before_m.height
    assert [c.cell_hash for c in filled.pending(RUN, cells)] == [cells[-1].cell_hash]
    compact_run(filled, RUN.sweep, RUN.run_id)  # the next compaction removes the leftovers
    assert len(files(filled, METRICS)) == 2
    assert_frame_equal(before_m, snapshot(filled)[0])


def test_recompaction_supersedes_and_rerun_failed_cell(
    filled: ResultStore, cells: list, results_of: dict
) -> None:
    compact_run(filled, RUN.sweep, RUN.run_id)
    first_part = next(Path(filled.partition(METRICS, RUN.sweep, RUN.run_id)).glob("part-*"))
    old = first_part.read_bytes()
    res = results_of[cells[-1].cell_hash]  # the failed cell is re-run and now succeeds
    filled.write_cell(RUN, cells[-1], res.rows, res.examples)
    want_m, want_e = snapshot(filled)
    assert want_m.filter(pl.col("status") == "failed").height == 0
    compact_run(filled, RUN.sweep, RUN.run_id)
    assert files(filled, METRICS)[0].startswith("part-") and len(files(filled, METRICS)) == 1
    first_part.write_bytes(old)  # a crash before the superseded part was deleted
    got_m, got_e = snapshot(filled)
    assert_frame_equal(want_m, got_m)
    assert_frame_equal(want_e, got_e)
    assert filled.pending(RUN, cells) == []


def test_corrupt_compacted_file_is_named_skipped_and_rerun(
    filled: ResultStore, cells: list
) -> None:
    from typer.testing import CliRunner

    from sweeps.cli import app

    compact_run(filled, RUN.sweep, RUN.run_id)
    part = next(Path(filled.partition(METRICS, RUN.sweep, RUN.run_id)).glob("part-*"))
    part.write_bytes(part.read_bytes()[:200])
    status = CliRunner().invoke(app, ["status", "--results", filled.root, "--json"])
    assert status.exit_code == 0 and part.name in status.output
    with pytest.warns(UserWarning, match=part.name):
        left = load(filled.root).collect()
    assert left["cell_hash"].unique().to_list() == [cells[-1].cell_hash]
    assert set(left["status"]) == {"failed"}
    assert {c.cell_hash for c in filled.pending(RUN, cells)} == {c.cell_hash for c in cells}


def test_compact_cli_skips_a_locked_run(filled: ResultStore) -> None:
    from typer.testing import CliRunner

    from sweeps.cli import app

    lock = filled.run_lock(RUN.sweep, RUN.run_id)
    lock.acquire(wait=False)
    try:
        res = CliRunner().invoke(app, ["compact", "--results", filled.root])
        assert res.exit_code == 0 and "skipped" in res.output
        assert len(files(filled, METRICS)) == 4
    finally:
        lock.release()
    res = CliRunner().invoke(app, ["compact", "--results", filled.root])
    assert res.exit_code == 0 and len(files(filled, METRICS)) == 2


def test_fill_is_deterministic_enough_for_round_trips(
    tmp_path: Path, cells: list, results_of: dict
) -> None:
    """Two stores filled from the same results read back equal (modulo provenance)."""
    a, b = ResultStore(str(tmp_path / "a")), ResultStore(str(tmp_path / "b"))
    fill(a, cells, results_of)
    fill(b, cells, results_of)
    drop = ["created_at", "wall_s", "node"]
    assert_frame_equal(snapshot(a)[0].drop(drop), snapshot(b)[0].drop(drop))


def test_a_part_hides_only_its_own_runs_copies(
    filled: ResultStore, cells: list, results_of: dict
) -> None:
    """Runs share cell hashes (every nightly has the same cells): compacting one run must not
    hide the other run's per-cell files."""
    from sweeps.rows import RunInfo

    other = RunInfo(RUN.sweep, "20240102", "test")
    for c in cells[:-1]:
        res = results_of[c.cell_hash]
        filled.write_cell(other, c, res.rows, res.examples)
    compact_run(filled, RUN.sweep, RUN.run_id)
    df = load(filled.root).collect()
    per_run = dict(df.group_by("run").len().iter_rows())
    assert per_run == {RUN.run_id: 3 * 6 + 2, other.run_id: 3 * 6}
    assert load_examples(filled.root).collect()["run"].unique().sort().to_list() == [
        RUN.run_id,
        other.run_id,
    ]


def test_merge_takes_each_cell_from_the_first_table_that_holds_it() -> None:
    """compact._merge (the rule that makes a pass idempotent after a crash between writing a
    part and deleting its sources): later copies of a cell are dropped, whole."""
    import pyarrow as pa

    from sweeps.compact import _merge

    schema = pa.schema([("cell_hash", pa.string()), ("v", pa.int64())])

    def t(*rows: tuple[str, int]) -> pa.Table:
        return pa.table({"cell_hash": [h for h, _ in rows], "v": [v for _, v in rows]}, schema)

    tables = [t(("a", 1), ("a", 2), ("b", 3)), t(("b", 30), ("c", 4)), t(("a", 10)), t(("d", 5))]
    merged, cells = _merge(tables, schema)
    assert cells == ["a", "b", "c", "d"]
    assert sorted(zip(merged["cell_hash"].to_pylist(), merged["v"].to_pylist(), strict=True)) == [
        ("a", 1), ("a", 2), ("b", 3), ("c", 4), ("d", 5),
    ]  # fmt: skip
    empty, none = _merge([], schema)
    assert empty.num_rows == 0 and none == []
