"""The results store: schema-validated, atomic, hive-partitioned Parquet that round-trips."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from adv_core import run_cell
from analysis import load
from sweeps.plan import plan
from sweeps.rows import RunInfo
from sweeps.schema import METRICS_COLUMNS, SchemaError, metrics_table
from sweeps.spec import loads_spec
from sweeps.store import ResultStore
from tests.specs import tiny_spec

SPEC = tiny_spec(
    name="store",
    seeds=[0],
    datasets=[{"name": "gaussian", "d": 8}],
    n_train=[8, 16],
    n_eval=50,
    training=[{"method": "standard", "epochs": 2}],
    attacks=[{"name": "fgsm", "eps": [0.0, 0.1]}],
    resources=None,
)


@pytest.fixture
def written(tmp_path: Path) -> tuple[ResultStore, RunInfo, list]:
    cells = plan(loads_spec(SPEC))
    store = ResultStore(str(tmp_path / "r"))
    run = RunInfo("store", "20240101", "test")
    for c in cells[:1]:
        res = run_cell(c)
        store.write_cell(run, c, res.rows, res.examples)
    return store, run, cells


def test_round_trip_with_string_run_ids(written: tuple) -> None:
    store, run, cells = written
    df = load(store.root).collect()
    assert df.schema["run"] == pl.String and df["run"].unique().to_list() == ["20240101"]
    assert set(METRICS_COLUMNS) <= set(df.columns)
    res = run_cell(cells[0])
    from sweeps.rows import complete_rows

    expected = pl.from_arrow(metrics_table(complete_rows(run, cells[0], res.rows)))
    cols = [c for c in METRICS_COLUMNS if c not in ("created_at", "wall_s", "node")]
    assert_frame_equal(
        df.select(cols).sort("member", "eps"), expected.select(cols).sort("member", "eps")
    )


def test_pending_skips_done_cells_and_no_temp_files_remain(written: tuple) -> None:
    store, run, cells = written
    assert [c.cell_hash for c in store.pending(run, cells)] == [cells[1].cell_hash]
    leftovers = [p for p in Path(store.base).rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_corrupt_file_is_reported_and_rerun(written: tuple) -> None:
    store, run, cells = written
    path = Path(store.cell_file("metrics", run.sweep, run.run_id, cells[0].cell_hash))
    path.write_bytes(path.read_bytes()[:100])  # truncated
    done, bad = store.cell_status(run.sweep, run.run_id)
    assert cells[0].cell_hash not in done and len(bad) == 1 and str(path) in bad[0]
    assert len(store.pending(run, cells)) == 2
    with pytest.warns(UserWarning, match=str(path)):
        assert load(store.root).collect().height == 0


def test_schema_rejects_bad_rows(written: tuple) -> None:
    store, run, cells = written
    res = run_cell(cells[0])
    from sweeps.rows import complete_rows

    rows = complete_rows(run, cells[0], res.rows)
    for mutate in ({"status": "weird"}, {"robust_acc": 1.5}, {"eps": -1.0}):
        with pytest.raises(SchemaError):
            metrics_table([{**rows[0], **mutate}])
    with pytest.raises(SchemaError):
        metrics_table([{k: v for k, v in rows[0].items() if k != "flags"}])


def test_examples_table_carries_clean_predictions(written: tuple) -> None:
    store, run, cells = written
    from analysis import load_examples

    ex = load_examples(store.root).collect()
    assert ex.height > 0 and ex["clean_pred"].null_count() == 0
    assert (ex["clean_correct"] == (ex["clean_pred"] == ex["label"])).all()
    # the ensemble (member -1) and both members, every example once per attack
    assert sorted(ex["member"].unique().to_list()) == [-1, 0, 1]
    assert ex.select("member", "attack", "example").is_duplicated().sum() == 0
