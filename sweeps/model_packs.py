"""Checkpoint packs: the model store's files grow with runs, not with trainings (issue 17).

A worker saves each trained ensemble as one loose file (``models/<h[:2]>/<h>.safetensors``,
renamed into place whole). A compaction pass (the run's background compactor, or
``sweeps compact``) gathers loose checkpoints into one pack:

    ROOT/models/packs/pack-<stamp>-<id>.bin         the checkpoints, byte for byte, back to back
    ROOT/models/packs/pack-<stamp>-<id>.index.json  {train_hash: [offset, length]}: the commit

The pack is written first and its index second, both through a temporary name and a rename;
only then are the packed loose files deleted. So at every moment each checkpoint is readable
from its loose file or from a pack whose index is visible:

- killed before the index: the pack is an orphan nobody reads (removed once it is an hour
  old, when no writer can still be between its two renames); the loose files are still there;
- killed after the index, before the deletes: both copies exist (identical bytes); the next
  pass deletes the loose copies whose hash a pack index already lists.

Two passes on one shared model store (two runs at once) may pack the same checkpoint twice;
both copies hold the same bytes, and readers take either. A pack is never rewritten.

Readers (``ResultStore.load_model``) try the loose file, then the pack indexes, listing the
packs folder again when a hash is not found (a pass may have packed and deleted it since the
last listing: the index is visible before the loose file goes). Imports neither torch nor ray.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import time
import uuid
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from sweeps import layout
from sweeps.index import atomic_write

PACKS = "packs"
PACK_SUFFIX = ".bin"
PACK_INDEX_SUFFIX = ".index.json"
PACK_VERSION = 1
MIN_MODELS = 64  # a pass packs loose checkpoints once there are this many (or when forced)
ORPHAN_AGE_S = 3600.0  # a pack without an index this old has no live writer


def packs_dir(base: str) -> str:
    return posixpath.join(base, layout.MODELS, PACKS)


def is_pack_index(path: str) -> bool:
    name = layout.name_of(path)
    return name.startswith("pack-") and name.endswith(PACK_INDEX_SUFFIX)


def is_pack(path: str) -> bool:
    name = layout.name_of(path)
    return name.startswith("pack-") and name.endswith(PACK_SUFFIX)


def loose_hash(path: str) -> str | None:
    """The train hash of a loose one-file checkpoint ``models/<h[:2]>/<h>.safetensors``."""
    name = layout.name_of(path)
    parent = layout.name_of(posixpath.dirname(path))
    if layout.is_hidden(path) or not name.endswith(layout.MODEL_SUFFIX):
        return None
    h = name.removesuffix(layout.MODEL_SUFFIX)
    return h if len(parent) == 2 and h.startswith(parent) else None


@dataclass
class PackIndex:
    """Where each packed checkpoint is: {train_hash: (pack path, offset, length)}, from the
    pack indexes listed so far (each index is read once: packs are immutable)."""

    fs: pafs.FileSystem
    base: str
    entries: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def refresh(self) -> None:
        for info in layout.list_infos(self.fs, packs_dir(self.base)):
            if not is_pack_index(info.path) or info.path in self.seen:
                continue
            try:
                with self.fs.open_input_stream(info.path) as f:
                    doc = json.loads(f.read())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            pack = posixpath.join(posixpath.dirname(info.path), doc["pack"])
            for h, (offset, length) in doc["entries"].items():
                self.entries.setdefault(h, (pack, int(offset), int(length)))
            self.seen.add(info.path)

    def read(self, train_hash: str) -> bytes | None:
        """The packed checkpoint's bytes, listing the packs again once if it is not known."""
        if train_hash not in self.entries:
            self.refresh()
        where = self.entries.get(train_hash)
        if where is None:
            return None
        pack, offset, length = where
        with self.fs.open_input_file(pack) as f:
            data: bytes = f.read_at(length, offset)
        if len(data) != length:
            raise OSError(f"checkpoint pack {pack} is shorter than its index says")
        return data


@dataclass(frozen=True)
class PackResult:
    packed: int  # loose checkpoints written into the new pack
    deleted: int  # loose files deleted (packed now, or already packed earlier)
    orphans: int  # packs without an index, removed
    pack: str | None  # the new pack's path


def _read(fs: pafs.FileSystem, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as f:
            data: bytes = f.read()
            return data
    except FileNotFoundError:
        return None


def _delete(fs: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        fs.delete_file(path)


def pack_models(
    fs: pafs.FileSystem, base: str, *, min_models: int = MIN_MODELS, max_bytes: int = 1 << 30
) -> PackResult:
    """Pack the model store's loose one-file checkpoints (at least ``min_models`` of them, up to
    ``max_bytes`` per pack) and delete the loose copies; remove orphan packs. One listing of
    the model store."""
    infos = layout.list_infos(fs, posixpath.join(base, layout.MODELS), recursive=True)
    loose = {h: i for i in infos if (h := loose_hash(i.path)) is not None}
    index = PackIndex(fs, base)
    index.refresh()
    deleted = 0
    for h in [h for h in loose if h in index.entries]:  # packed by an interrupted pass
        _delete(fs, loose.pop(h).path)
        deleted += 1
    listed_indexes = {
        i.path.removesuffix(PACK_INDEX_SUFFIX) for i in infos if is_pack_index(i.path)
    }
    now = time.time()
    orphans = [
        i.path
        for i in infos
        if is_pack(i.path)
        and i.path.removesuffix(PACK_SUFFIX) not in listed_indexes
        and i.mtime is not None
        and now - i.mtime.timestamp() > ORPHAN_AGE_S
    ]
    for p in orphans:
        _delete(fs, p)
    if len(loose) < max(1, min_models):
        return PackResult(0, deleted, len(orphans), None)
    chunks: list[bytes] = []
    entries: dict[str, list[int]] = {}
    offset = 0
    for h in sorted(loose):
        data = _read(fs, loose[h].path)
        if data is None:  # packed and deleted by a concurrent pass
            continue
        entries[h] = [offset, len(data)]
        chunks.append(data)
        offset += len(data)
        if offset >= max_bytes:
            break
    if not entries:
        return PackResult(0, deleted, len(orphans), None)
    stem = f"pack-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}"
    pack = posixpath.join(packs_dir(base), stem + PACK_SUFFIX)
    atomic_write(fs, pack, b"".join(chunks))
    doc = {"version": PACK_VERSION, "pack": stem + PACK_SUFFIX, "entries": entries}
    atomic_write(fs, pack.removesuffix(PACK_SUFFIX) + PACK_INDEX_SUFFIX, json.dumps(doc).encode())
    for h in entries:  # the index is visible: the loose copies can go
        _delete(fs, loose[h].path)
    return PackResult(len(entries), deleted + len(entries), len(orphans), pack)
