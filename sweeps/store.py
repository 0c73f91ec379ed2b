"""The results store: atomic Parquet files in the hive layout of DESIGN.md, on any pyarrow
filesystem (a local folder, s3://bucket/prefix, a shared mount). The paths and the readers'
rules live in sweeps/layout.py; which cells are done comes from sweeps/index.py.

Every file is written under a temporary name (``.tmp-*``, never matched by readers) and renamed
into place, so a reader never sees half a file. The metrics file is written last: its presence
means the cell is done. During a sweep the driver merges finished cells into ``part-*.parquet``
files in the background (sweeps/compact.py ``BackgroundCompactor``), so a run leaves a few
parts, not a file per cell.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from adv_core.config import Cell
from adv_core.results import FINISHED, Status
from sweeps import layout
from sweeps.index import Partition, atomic_write, cell_statuses, read_file, scan_partition
from sweeps.layout import EXAMPLES, METRICS, MODELS, REPORTS, RUNS
from sweeps.lock import LeaseLock, lock_path
from sweeps.model_packs import PackIndex
from sweeps.rows import RunInfo, complete_examples, complete_rows
from sweeps.schema import EXAMPLES_SCHEMA, METRICS_SCHEMA, examples_table, metrics_table

__all__ = ["EXAMPLES", "METRICS", "MODELS", "REPORTS", "RUNS", "Receipt", "ResultStore"]


LOOSE_PARQUET: dict[str, Any] = {"write_statistics": False, "use_dictionary": False}


@dataclass(frozen=True)
class Receipt:
    """What a worker sends back to the driver: small, never the rows themselves."""

    cell_hash: str
    status: str
    rows: int
    path: str
    wall_s: float | None = None
    model_reused: bool | None = None


class ResultStore:
    """All reads and writes of a results root. Picklable (it re-opens its filesystem)."""

    def __init__(self, root: str, filesystem: pafs.FileSystem | None = None) -> None:
        self.root = root
        if filesystem is not None:
            self.fs, self.base = filesystem, root.split("://", 1)[-1].rstrip("/")
        else:
            self.fs, self.base = layout.resolve(root)
        self._packs: PackIndex | None = None  # the checkpoint packs' indexes read so far

    def __reduce__(self) -> tuple[Any, ...]:
        return (ResultStore, (self.root, self.fs if "://" in self.root else None))

    # -- paths --------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def partition(self, table: str, sweep: str, run_id: str) -> str:
        return layout.partition(self.base, table, sweep, run_id)

    def cell_file(self, table: str, sweep: str, run_id: str, cell_hash: str) -> str:
        return layout.cell_file(self.base, table, sweep, run_id, cell_hash)

    # -- atomic primitives --------------------------------------------------------------------
    def write_bytes(self, path: str, data: bytes) -> None:
        """Write to a temporary sibling, then rename over ``path`` (layout.tmp_name)."""
        atomic_write(self.fs, path, data)

    def write_table(self, path: str, table: pa.Table, *, loose: bool = False) -> None:
        """``loose``: a per-cell file, read whole and soon merged into a part, so written without
        column statistics or dictionaries (a tiny cell's two files took 3x longer with them; the
        compacted parts keep both)."""
        buf = io.BytesIO()
        options = LOOSE_PARQUET if loose else {}
        pq.write_table(table, buf, compression="zstd", **options)
        self.write_bytes(path, buf.getvalue())

    def read_bytes(self, path: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(path) as f:
                data: bytes = f.read()
                return data
        except FileNotFoundError:
            return None

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def _delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.delete_file(path)

    def list_files(self, directory: str, suffix: str = ".parquet") -> list[str]:
        return layout.list_files(self.fs, directory, suffix)

    def list_dirs(self, directory: str) -> list[str]:
        return layout.list_dirs(self.fs, directory)

    # -- cells --------------------------------------------------------------------------------
    def write_cell(
        self,
        run: RunInfo,
        cell: Cell,
        rows: list[dict[str, Any]],
        examples: dict[str, list[Any]] | None = None,
        *,
        attempt: int = 1,
        model_reused: bool | None = None,
    ) -> Receipt:
        """Validate and write one cell's rows (examples first, metrics last = done-marker)."""
        full = complete_rows(run, cell, rows, attempt=attempt, model_reused=model_reused)
        table = metrics_table(full)
        if examples:
            ex = examples_table(complete_examples(run, cell, examples))
            ex_path = self.cell_file(EXAMPLES, run.sweep, run.run_id, cell.cell_hash)
            self.write_table(ex_path, ex, loose=True)
        path = self.cell_file(METRICS, run.sweep, run.run_id, cell.cell_hash)
        self.write_table(path, table, loose=True)
        status = full[0]["status"] if full else Status.OK
        wall = full[0].get("wall_s") if full else None
        return Receipt(cell.cell_hash, status, len(full), path, wall, model_reused)

    def scan(self, table: str, sweep: str, run_id: str) -> Partition:
        """One partition resolved from a listing and its index (sweeps/index.py)."""
        return scan_partition(self.fs, self.partition(table, sweep, run_id))

    def partition_files(self, table: str, sweep: str, run_id: str) -> tuple[list[str], list[str]]:
        """(live files to read, unreadable compacted files named with the error) of one
        partition; ``layout.live_files`` decides which files hold each cell's rows. Only parts
        missing from the index have their metadata read; an unreadable per-cell file shows up
        when it is read (``cell_status``, ``read_table``)."""
        part = self.scan(table, sweep, run_id)
        return part.live, part.bad

    def read_table(
        self, table: str, sweep: str, run_id: str, columns: list[str] | None = None
    ) -> pa.Table:
        """One partition's rows, each cell's exactly once; unreadable files are skipped with a
        warning that names them."""
        files, bad = self.partition_files(table, sweep, run_id)
        for b in bad:
            warnings.warn(f"skipping unreadable results file {b}", stacklevel=2)
        schema = METRICS_SCHEMA if table == METRICS else EXAMPLES_SCHEMA
        parts = []
        for f in files:
            try:
                parts.append(read_file(self.fs, f, schema, columns))
            except (pa.ArrowInvalid, OSError) as exc:
                warnings.warn(f"skipping unreadable results file {f}: {exc}", stacklevel=2)
        if not parts:
            empty = schema.empty_table()
            return empty.select(columns) if columns else empty
        return pa.concat_tables(parts)

    def cell_status(self, sweep: str, run_id: str) -> tuple[dict[str, str], list[str]]:
        """{cell_hash: status} of finished cells, and the paths of unreadable files: from the
        parts' index plus the loose per-cell files, never by opening every file."""
        return cell_statuses(self.fs, self.scan(METRICS, sweep, run_id))

    def run_facts(self, sweep: str, run_id: str) -> dict[str, Any]:
        """Devices, nodes and model reuse of a run's rows, for its manifest."""
        cols = ["train_hash", "device", "node", "model_reused"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unreadable files are listed by cell_status
            t = self.read_table(METRICS, sweep, run_id, columns=cols).to_pylist()
        reused = {r["train_hash"] for r in t if r["model_reused"]}
        trained = {r["train_hash"] for r in t if r["model_reused"] is False}
        return {
            "devices": sorted({r["device"] for r in t if r["device"]}),
            "nodes": sorted({r["node"] for r in t if r["node"]}),
            "models_reused": len(reused),
            "models_trained": len(trained - reused),
        }

    def run_lock(self, sweep: str, run_id: str, **kwargs: Any) -> LeaseLock:
        """The lock that keeps runs and compactions of one run from overlapping."""
        return LeaseLock(self.fs, lock_path(self.base, f"sweep={sweep}", f"run={run_id}"), **kwargs)

    def delete(self, path: str) -> None:
        self._delete(path)

    def pending(self, run: RunInfo, cells: list[Cell], retry_failed: bool = True) -> list[Cell]:
        """Cells with no readable result (and, by default, cells that failed before)."""
        done, _ = self.cell_status(run.sweep, run.run_id)
        keep = FINISHED if retry_failed else set(Status)
        return [c for c in cells if done.get(c.cell_hash) not in keep]

    # -- models -------------------------------------------------------------------------------
    def load_model(self, train_hash: str) -> tuple[bytes, str] | None:
        """(safetensors weights, JSON config) saved for ``train_hash``, in either layout."""
        packed = self.read_bytes(layout.model_file(self.base, train_hash))
        if packed is None:  # packed by a compaction pass (model_packs): the index says where
            packed = self._pack_index().read(train_hash)
        if packed is not None:
            return unpack_model(packed)
        weights_path, config_path = layout.legacy_model_files(self.base, train_hash)
        weights = self.read_bytes(weights_path)
        config = self.read_bytes(config_path)
        if weights is None or config is None:
            return None
        return weights, config.decode()

    def _pack_index(self) -> PackIndex:
        """This store's cache of the checkpoint packs' indexes (packs never change)."""
        if self._packs is None:
            self._packs = PackIndex(self.fs, self.base)
        return self._packs

    def save_model(self, train_hash: str, weights: bytes, config: str) -> None:
        """One file, renamed into place whole: no half checkpoint is ever visible."""
        self.write_bytes(layout.model_file(self.base, train_hash), pack_model(weights, config))

    # -- manifests and reports ----------------------------------------------------------------
    def write_manifest(self, run_id: str, manifest: dict[str, Any]) -> str:
        path = layout.manifest_file(self.base, run_id)
        self.write_bytes(path, json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
        return path

    def read_manifest(self, run_id: str) -> dict[str, Any] | None:
        data = self.read_bytes(layout.manifest_file(self.base, run_id))
        return json.loads(data) if data is not None else None

    def manifests(self) -> list[dict[str, Any]]:
        out = []
        for f in self.list_files(self.path(RUNS), ".json"):
            data = self.read_bytes(f)
            if data is not None:
                try:
                    out.append(json.loads(data))
                except json.JSONDecodeError:
                    continue
        return out

    def write_report(self, run_id: str, ext: str, content: str | bytes) -> str:
        path = layout.report_file(self.base, run_id, ext)
        self.write_bytes(path, content.encode() if isinstance(content, str) else content)
        return path

    def runs(self, sweep: str) -> list[str]:
        return [
            layout.name_of(p).removeprefix("run=")
            for p in self.list_dirs(self.path(METRICS, f"sweep={sweep}"))
        ]

    def sweeps(self) -> list[str]:
        return [
            layout.name_of(p).removeprefix("sweep=") for p in self.list_dirs(self.path(METRICS))
        ]


def pack_model(weights: bytes, config: str) -> bytes:
    """The safetensors bytes with the JSON config added to the header's ``__metadata__``
    (tensor offsets are relative to the data block, so the data is copied unchanged)."""
    (n,) = struct.unpack("<Q", weights[:8])
    header = json.loads(weights[8 : 8 + n])
    header.setdefault("__metadata__", {})[layout.MODEL_CONFIG_KEY] = config
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors aligns the data block to 8 bytes
    return struct.pack("<Q", len(raw)) + raw + weights[8 + n :]


def unpack_model(packed: bytes) -> tuple[bytes, str]:
    """(safetensors bytes, JSON config) of a packed checkpoint; the weights keep the config in
    their metadata, which safetensors loaders ignore. Nothing is unpickled."""
    (n,) = struct.unpack("<Q", packed[:8])
    header = json.loads(packed[8 : 8 + n])
    config = header.get("__metadata__", {}).get(layout.MODEL_CONFIG_KEY)
    if not isinstance(config, str):
        raise ValueError("checkpoint has no sweeps config in its safetensors metadata")
    return packed, config
