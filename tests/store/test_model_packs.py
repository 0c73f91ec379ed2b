"""Checkpoint packs (sweeps/model_packs.py): loose one-file checkpoints gathered into one pack
plus its index, the loose copies deleted; every checkpoint reads back byte for byte, whichever
step a pass stopped at; readers with an old view of the packs still find what was packed since.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pyarrow.fs as pafs
import torch

from adv_core.config.models import LinearModel
from adv_core.models import ensemble_from_bytes, ensemble_to_bytes, new_ensemble
from sweeps import layout, model_packs
from sweeps.compact import BackgroundCompactor, compact
from sweeps.model_packs import pack_models
from sweeps.store import ResultStore


def _hash(i: int) -> str:
    return f"{i:02x}" + f"{i:x}" * 62 if i < 16 else f"{i:02x}" + "e" * 62


def _save(store: ResultStore, n: int) -> dict[str, tuple[bytes, str]]:
    saved = {}
    for i in range(n):
        ens = new_ensemble(LinearModel(), (4 + i % 3,), 2, 2, i)
        weights, config = ensemble_to_bytes(ens)
        h = _hash(i)
        store.save_model(h, weights, config)
        saved[h] = store.load_model(h) or (b"", "")
    return saved


def _loose(root: Path) -> list[Path]:
    return [p for p in (root / "models").rglob("*.safetensors") if not p.name.startswith(".")]


def test_pack_reads_back_every_checkpoint_and_leaves_one_pack(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "res"))
    saved = _save(store, 10)
    assert len(_loose(tmp_path / "res")) == 10
    assert pack_models(store.fs, store.base, min_models=11).packed == 0  # below the threshold
    res = pack_models(store.fs, store.base, min_models=10)
    assert (res.packed, res.deleted) == (10, 10)
    assert _loose(tmp_path / "res") == []
    packs = sorted(p.name for p in (tmp_path / "res" / "models" / "packs").iterdir())
    assert len(packs) == 2 and packs[0].endswith(".bin") and packs[1].endswith(".index.json")
    fresh = ResultStore(str(tmp_path / "res"))  # a new reader: only the packs
    for h, (weights, config) in saved.items():
        assert fresh.load_model(h) == (weights, config)
    got_w, got_c = fresh.load_model(_hash(3)) or (b"", "")
    ens = ensemble_from_bytes(got_w, got_c)
    ref = new_ensemble(LinearModel(), (4,), 2, 2, 3)
    x = torch.randn(5, 4)
    assert torch.equal(ens(x), ref(x))
    assert fresh.load_model("ff" * 32) is None
    index = json.loads(
        next((tmp_path / "res" / "models" / "packs").glob("pack-*.json")).read_text()
    )
    offsets = sorted(index["entries"].values())  # back to back, no overlap, no gap
    assert offsets[0][0] == 0
    assert all(a[0] + a[1] == b[0] for a, b in zip(offsets, offsets[1:], strict=False))


def test_a_reader_with_an_old_view_finds_checkpoints_packed_since(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "res"))
    saved = _save(store, 4)
    reader = ResultStore(str(tmp_path / "res"))
    first = _hash(0)
    assert reader.load_model(first) == saved[first]  # from the loose file; packs listed: none
    reader._pack_index().refresh()  # the reader's cache now holds an empty view of the packs
    pack_models(store.fs, store.base, min_models=1)
    for h, want in saved.items():
        assert reader.load_model(h) == want


def test_second_pass_deletes_loose_copies_an_interrupted_pass_packed(tmp_path: Path) -> None:
    """Killed after the index and before the deletes: both copies readable, then cleaned."""
    store = ResultStore(str(tmp_path / "res"))
    saved = _save(store, 5)
    keep = {p: p.read_bytes() for p in _loose(tmp_path / "res")}
    pack_models(store.fs, store.base, min_models=1)
    for p, data in keep.items():  # the state of a pass killed before its first delete
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    fresh = ResultStore(str(tmp_path / "res"))
    assert all(fresh.load_model(h) == want for h, want in saved.items())
    res = pack_models(store.fs, store.base, min_models=1)
    assert (res.packed, res.deleted, res.pack) == (0, 5, None)  # nothing packed twice
    assert _loose(tmp_path / "res") == []
    assert all(ResultStore(str(tmp_path / "res")).load_model(h) == w for h, w in saved.items())


def test_orphan_pack_without_index_is_never_read_and_removed_when_old(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "res"))
    saved = _save(store, 3)
    packs = tmp_path / "res" / "models" / "packs"
    packs.mkdir(parents=True)
    orphan = packs / "pack-20260101T000000-000000000000.bin"
    orphan.write_bytes(b"garbage that is not a checkpoint")
    young = packs / "pack-20260101T000000-111111111111.bin"  # a writer between its renames
    young.write_bytes(b"being committed")
    old = orphan.stat().st_mtime - 2 * model_packs.ORPHAN_AGE_S
    os.utime(orphan, (old, old))
    res = pack_models(store.fs, store.base, min_models=1)
    assert res.orphans == 1 and not orphan.exists() and young.exists()
    assert all(ResultStore(str(tmp_path / "res")).load_model(h) == w for h, w in saved.items())


def test_pass_killed_at_every_file_operation_loses_no_checkpoint(tmp_path: Path) -> None:
    """A packing pass SIGKILLed at each of its mutating file operations in turn (mid-write,
    before a rename, before a delete): every checkpoint still reads back byte for byte from a
    fresh reader, and the next pass finishes the job with one pack and no loose file."""
    from tests.fault.compact_child import KillingFS

    def run(root: Path, kill_at: int) -> int:
        pid = os.fork()
        if pid == 0:
            handler = KillingFS(kill_at)
            fs = pafs.PyFileSystem(handler)
            try:
                pack_models(fs, str(root), min_models=1)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        return status

    base = tmp_path / "base"
    saved = _save(ResultStore(str(base)), 6)
    ops = 4 + len(saved)  # pack write + rename, index write + rename, one delete per loose file
    for k in range(1, ops + 1):
        root = tmp_path / f"k{k}"
        os.system(f"cp -r {base} {root}")
        status = run(root, k)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, k
        fresh = ResultStore(str(root))
        assert all(fresh.load_model(h) == want for h, want in saved.items()), k
        pack_models(fresh.fs, fresh.base, min_models=1)
        assert _loose(root) == [], k
        indexes = list((root / "models" / "packs").glob("pack-*.index.json"))
        assert len(indexes) == 1, k
        again = ResultStore(str(root))
        assert all(again.load_model(h) == want for h, want in saved.items()), k


def test_background_compactor_and_sweeps_compact_pack_models(tmp_path: Path) -> None:
    root = tmp_path / "res"
    store = ResultStore(str(root))
    _save(store, model_packs.MIN_MODELS + 2)
    with BackgroundCompactor(store, "s", "r", poll_s=60.0):  # its start pass packs them
        pass
    assert _loose(root) == []
    extra = _save(ResultStore(str(root / "x")), 1)  # one more loose checkpoint, below the bar
    (weights, config), h = next(iter(extra.values())), "dd" * 32  # a hash not packed yet
    ResultStore(str(root)).save_model(h, weights, config)
    with BackgroundCompactor(ResultStore(str(root)), "s", "r", poll_s=60.0):
        pass
    assert len(_loose(root)) == 1  # a run leaves fewer than MIN_MODELS loose
    compact(str(root))  # by hand: everything
    assert _loose(root) == []
    assert ResultStore(str(root)).load_model(h) == (weights, config)
    assert layout.MODELS == "models"
