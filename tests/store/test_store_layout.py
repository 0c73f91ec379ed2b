"""The layout module and the per-run index: checkpoints in one sharded file (older folders still
read), done cells from the index without opening the parts, and an index that lags or lies
never claims a cell whose rows are not on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from store_helpers import RUN

from adv_core.config.models import LinearModel
from adv_core.models import ensemble_from_bytes, ensemble_to_bytes, new_ensemble
from sweeps import layout
from sweeps.compact import compact_run
from sweeps.index import read_index
from sweeps.store import METRICS, ResultStore, pack_model


def test_checkpoint_is_one_sharded_file_and_old_folders_still_load(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "res"))
    ens = new_ensemble(LinearModel(), (4,), 2, 3, 0)
    weights, config = ensemble_to_bytes(ens)
    h = "ab" + "0" * 62
    store.save_model(h, weights, config)
    assert [p.relative_to(tmp_path / "res") for p in (tmp_path / "res").rglob("*")] == [
        Path("models"),
        Path("models/ab"),
        Path(f"models/ab/{h}.safetensors"),
    ]
    got_w, got_c = store.load_model(h) or (b"", "")
    assert got_c == config
    back = ensemble_from_bytes(got_w, got_c)
    x = torch.randn(5, 4)
    assert torch.equal(back(x), ens(x))
    old = "cd" + "1" * 62  # the older layout: models/<hash>/{weights.safetensors,config.json}
    wpath, cpath = layout.legacy_model_files(store.base, old)
    Path(wpath).parent.mkdir(parents=True)
    Path(wpath).write_bytes(weights)
    Path(cpath).write_text(config)
    assert store.load_model(old) == (weights, config)
    assert store.load_model("ef" + "2" * 62) is None
    with pytest.raises(ValueError, match="no sweeps config"):
        from sweeps.store import unpack_model

        unpack_model(weights)
    assert pack_model(weights, config)[8 + 8 :].count(b"sweeps.config") == 1


def test_status_comes_from_the_index_not_the_parts(
    filled: ResultStore, cells: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    want, _ = filled.cell_status(RUN.sweep, RUN.run_id)
    compact_run(filled, RUN.sweep, RUN.run_id)
    directory = filled.partition(METRICS, RUN.sweep, RUN.run_id)
    [part] = [p for p in filled.list_files(directory) if layout.is_compacted(p)]
    assert list(read_index(filled.fs, f"{directory}/{layout.INDEX_FILE}")) == [Path(part).name]
    opened: list[str] = []
    real = pq.read_metadata
    monkeypatch.setattr(pq, "read_metadata", lambda p, **k: opened.append(p) or real(p, **k))
    got, bad = filled.cell_status(RUN.sweep, RUN.run_id)
    assert got == want and bad == [] and opened == []  # the part's footer was not read


def test_a_lagging_or_stale_index_never_claims_missing_rows(
    filled: ResultStore, cells: list
) -> None:
    want, _ = filled.cell_status(RUN.sweep, RUN.run_id)
    compact_run(filled, RUN.sweep, RUN.run_id)
    directory = filled.partition(METRICS, RUN.sweep, RUN.run_id)
    index = Path(directory) / layout.INDEX_FILE
    saved = index.read_bytes()
    index.unlink()  # a crash between the part and the index: the part's footer is read
    assert filled.cell_status(RUN.sweep, RUN.run_id) == (want, [])
    # an index naming a part that is gone (or another size) claims nothing
    body = json.loads(saved)
    [name] = body["parts"]
    body["parts"]["part-gone.parquet"] = body["parts"][name]
    index.write_text(json.dumps(body))
    part_bytes = (Path(directory) / name).read_bytes()
    (Path(directory) / name).unlink()
    done, _ = filled.cell_status(RUN.sweep, RUN.run_id)
    assert done == {cells[-1].cell_hash: "failed"}
    assert {c.cell_hash for c in filled.pending(RUN, cells)} == {c.cell_hash for c in cells}
    index.write_text(saved.decode())  # the part as it was, and an index entry that lies ...
    (Path(directory) / name).write_bytes(part_bytes)
    body = json.loads(saved)
    body["parts"][name]["cells"].append("f" * 16)
    body["parts"][name]["size"] += 1  # ... about a file of another size: its footer is read
    index.write_text(json.dumps(body))
    assert filled.cell_status(RUN.sweep, RUN.run_id)[0] == want
    index.write_text("{not json")  # an unreadable index is ignored with a warning
    with pytest.warns(UserWarning, match="unreadable index"):
        assert filled.cell_status(RUN.sweep, RUN.run_id)[0] == want


def test_compact_removes_old_checkpoint_temporaries_only(tmp_path: Path) -> None:
    """A worker killed while saving a checkpoint leaves a temporary in the shared model store;
    ``sweeps compact`` deletes it once it is old enough to have no live writer."""
    import os
    import time

    from sweeps.compact import MODEL_TMP_AGE_S, compact

    store = ResultStore(str(tmp_path / "res"))
    final = layout.model_file(store.base, "ab" + "0" * 62)
    old, young = (Path(layout.tmp_name(final, u)) for u in ("old", "young"))
    old.parent.mkdir(parents=True)
    for p in (old, young):
        p.write_bytes(b"half a checkpoint")
    stamp = time.time() - MODEL_TMP_AGE_S - 60
    os.utime(old, (stamp, stamp))
    assert store.load_model("ab" + "0" * 62) is None  # never read as a checkpoint
    compact(store.root)
    assert not old.exists() and young.exists()


def test_files_written_before_an_additive_column_still_load(filled: ResultStore) -> None:
    """The schema grows additively (DESIGN.md): an older file lacks the newer nullable columns;
    every reader fills them with nulls instead of failing the whole scan."""
    from analysis import load

    directory = Path(filled.partition(METRICS, RUN.sweep, RUN.run_id))
    first = sorted(directory.glob("*.parquet"))[0]
    t = pq.read_table(first)
    newest = t.schema.field(t.num_columns - 1)
    assert newest.nullable
    pq.write_table(t.drop_columns([newest.name]), first)  # as an older version wrote it
    df = load(filled.root).collect()
    assert df.height == 3 * 6 + 2
    assert df.filter(df["cell_hash"] == first.stem)[newest.name].is_null().all()
    assert filled.read_table(METRICS, RUN.sweep, RUN.run_id).num_rows == 3 * 6 + 2
