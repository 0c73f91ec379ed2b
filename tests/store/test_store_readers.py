"""Round-trips, four readers that agree, the per-example table and the run manifest."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
from polars.testing import assert_frame_equal
from store_helpers import RUN, SPEC

from analysis import load
from analysis.load import load_examples
from sweeps.compact import compact_run
from sweeps.rows import complete_examples
from sweeps.schema import EXAMPLES_COLUMNS, examples_table
from sweeps.spec import loads_spec
from sweeps.store import METRICS, ResultStore

COLS = ["run", "cell_hash", "member", "attack", "eps", "status", "n_robust", "robust_acc"]


def test_examples_round_trip(filled: ResultStore, cells: list, results_of: dict) -> None:
    want = pl.concat(
        [
            pl.from_arrow(
                examples_table(complete_examples(RUN, c, results_of[c.cell_hash].examples))
            )
            for c in cells[:-1]
        ]
    )
    got = load_examples(filled.root, sweep=RUN.sweep, run=RUN.run_id).collect()
    key = ["cell_hash", "member", "attack", "example"]
    assert_frame_equal(got.select(EXAMPLES_COLUMNS).sort(key), want.sort(key))
    assert got.schema["run"] == pl.String and got["run"].unique().to_list() == [RUN.run_id]
    # every example of every target and attack: labels, clean correctness, margin, broken eps
    per_cell = got.group_by("cell_hash", "member", "attack").len()["len"].unique().to_list()
    assert per_cell == [60]
    assert got.filter(pl.col("clean_correct") != (pl.col("margin") > 0)).height == 0


def test_four_readers_agree_after_partial_compaction(filled: ResultStore) -> None:
    compact_run(filled, RUN.sweep, RUN.run_id)  # one part-*.parquet + the failed cell's file
    root = Path(filled.base) / METRICS
    polars_df = load(filled.root).collect().select(COLS).sort(COLS[1:5])
    hive = ds.partitioning(pa.schema([("sweep", pa.string()), ("run", pa.string())]), flavor="hive")
    arrow_df = pl.from_arrow(
        ds.dataset(root, format="parquet", partitioning=hive).to_table(columns=COLS)
    ).sort(COLS[1:5])
    pandas_df = pl.from_pandas(
        pd.read_parquet(root, columns=COLS, partitioning=hive, dtype_backend="pyarrow")
    ).sort(COLS[1:5])
    duck = duckdb.sql(
        f"SELECT {', '.join(COLS)} FROM read_parquet('{root}/**/*.parquet', "
        "hive_partitioning = true, hive_types = {'sweep': VARCHAR, 'run': VARCHAR})"
    ).pl()
    for other in (arrow_df, pandas_df, duck.sort(COLS[1:5])):
        assert_frame_equal(polars_df, other, check_dtypes=False)
    assert polars_df["run"].dtype == pl.String and duck["run"].dtype == pl.String
    assert polars_df.height == 3 * 6 + 2  # 3 ok cells x (3 targets x 2 eps) + 2 failure rows


def test_manifest_records_provenance(tmp_path: Path) -> None:
    from sweeps.runner import run_sweep

    spec = loads_spec(SPEC.replace("seeds: [0, 1]", "seeds: [0]").replace("[8, 16]", "[8]"))
    out = run_sweep(spec, str(tmp_path / "res"), "m1", inline=True)
    m = ResultStore(str(tmp_path / "res")).read_manifest("m1")
    assert m is not None and out.exit_code == 0
    assert m["spec"]["name"] == "st" and m["cells"] == 1 and m["cells_done"] == 1
    assert {"torch", "pyarrow", "polars"} <= set(m["libraries"])
    assert m["host"] and m["devices"] == ["cpu"] and m["nodes"]
    assert m["started_at"] < m["finished_at"] and m["status"] == "complete"
    assert "git_revision" in m and m["code_version"].startswith(m["package_version"])
    assert m["models_trained"] == 1 and m["models_reused"] == 0


def test_read_file_takes_the_fast_path_only_for_the_current_schema(tmp_path: Path) -> None:
    """``sweeps.index.read_file``: a file with the asked schema reads as ``pq.read_table``
    would; an older file (a column missing, another stored as int32) is read through the
    schema, its missing column null and its types cast; a truncated file raises what
    ``pq.read_table`` raises, so the callers' skipping rules hold."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from sweeps.index import read_file

    fs = pafs.LocalFileSystem()
    schema = pa.schema([("cell_hash", pa.string()), ("n", pa.int64()), ("note", pa.string())])
    now = tmp_path / "now.parquet"
    pq.write_table(pa.table({"cell_hash": ["a", "b"], "n": [1, 2], "note": ["x", None]},
                            schema=schema), now)  # fmt: skip
    old = tmp_path / "old.parquet"
    pq.write_table(pa.table({"cell_hash": ["c"], "n": pa.array([3], pa.int32())}), old)
    fast = read_file(fs, str(now), schema)
    assert fast.equals(pq.read_table(str(now), schema=schema))
    assert read_file(fs, str(now), schema, ["n"]).to_pydict() == {"n": [1, 2]}
    slow = read_file(fs, str(old), schema)
    assert slow.schema.equals(schema) and slow.to_pydict() == {
        "cell_hash": ["c"], "n": [3], "note": [None],
    }  # fmt: skip
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(now.read_bytes()[: now.stat().st_size // 2])
    for path in (cut, tmp_path / "missing.parquet"):
        try:
            read_file(fs, str(path), schema)
        except (pa.ArrowInvalid, OSError):
            continue
        raise AssertionError(f"{path.name} was read")
