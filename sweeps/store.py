"""The results store: atomic Parquet files in the hive layout of DESIGN.md, on any pyarrow
filesystem (a local folder, s3://bucket/prefix, a shared mount).

    ROOT/metrics/sweep=<name>/run=<run_id>/<cell_hash>.parquet   the cell's done-marker
    ROOT/examples/sweep=<name>/run=<run_id>/<cell_hash>.parquet
    ROOT/models/<train_hash>/{weights.safetensors,config.json}
    ROOT/runs/<run_id>.json
    ROOT/reports/<run_id>.{md,json,html}
    ROOT/locks/sweep=<name>/run=<run_id>.lock                      see sweeps/lock.py

Every file is written under a temporary name (``.tmp-*``, never matched by ``*.parquet``) and
renamed into place, so a reader never sees half a file. The metrics file is written last: its
presence means the cell is done.

``sweeps compact`` (sweeps/compact.py) merges a partition's per-cell files into
``part-*.parquet`` files that name the cells they hold; every reader here goes through
``partition_files``/``schema.live_files``, so a cell's rows are read exactly once even when a
compaction was interrupted between writing the merged file and deleting the per-cell files.
"""

from __future__ import annotations

import contextlib
import io
import json
import posixpath
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from adv_core.config import Cell
from adv_core.results import FINISHED, Status
from sweeps.lock import LeaseLock, lock_path
from sweeps.rows import RunInfo, complete_examples, complete_rows
from sweeps.schema import (
    EXAMPLES_SCHEMA,
    METRICS_SCHEMA,
    examples_table,
    is_compacted,
    live_files,
    metrics_table,
)

METRICS, EXAMPLES, MODELS, RUNS, REPORTS = "metrics", "examples", "models", "runs", "reports"
WEIGHTS_FILE, CONFIG_FILE = "weights.safetensors", "config.json"


@dataclass(frozen=True)
class Receipt:
    """What a worker sends back to the driver: small, never the rows themselves."""

    cell_hash: str
    status: str
    rows: int
    path: str
    wall_s: float | None = None
    model_reused: bool | None = None


def _resolve(root: str) -> tuple[pafs.FileSystem, str]:
    if "://" in root:
        fs, path = pafs.FileSystem.from_uri(root)
        return fs, path.rstrip("/")
    local = pafs.LocalFileSystem()
    import os

    return local, os.path.abspath(root)


class ResultStore:
    """All reads and writes of a results root. Picklable (it re-opens its filesystem)."""

    def __init__(self, root: str, filesystem: pafs.FileSystem | None = None) -> None:
        self.root = root
        if filesystem is not None:
            self.fs, self.base = filesystem, root.split("://", 1)[-1].rstrip("/")
        else:
            self.fs, self.base = _resolve(root)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ResultStore, (self.root, self.fs if "://" in self.root else None))

    # -- paths --------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return posixpath.join(self.base, *parts)

    def partition(self, table: str, sweep: str, run_id: str) -> str:
        return self.path(table, f"sweep={sweep}", f"run={run_id}")

    def cell_file(self, table: str, sweep: str, run_id: str, cell_hash: str) -> str:
        return posixpath.join(self.partition(table, sweep, run_id), f"{cell_hash}.parquet")

    # -- atomic primitives --------------------------------------------------------------------
    def write_bytes(self, path: str, data: bytes) -> None:
        """Write to a temporary sibling, then rename over ``path``."""
        parent = posixpath.dirname(path)
        self.fs.create_dir(parent, recursive=True)
        tmp = posixpath.join(parent, f".tmp-{uuid.uuid4().hex}-{posixpath.basename(path)}")
        try:  # a failed write (a full disk) or rename leaves no temporary file behind
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, path)
        except BaseException:
            self._delete(tmp)
            raise

    def write_table(self, path: str, table: pa.Table) -> None:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
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
        sel = pafs.FileSelector(directory, allow_not_found=True, recursive=False)
        return sorted(
            i.path
            for i in self.fs.get_file_info(sel)
            if i.type == pafs.FileType.File
            and posixpath.basename(i.path).endswith(suffix)
            and not posixpath.basename(i.path).startswith(".")
        )

    def list_dirs(self, directory: str) -> list[str]:
        sel = pafs.FileSelector(directory, allow_not_found=True, recursive=False)
        return sorted(
            i.path for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.Directory
        )

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
            self.write_table(self.cell_file(EXAMPLES, run.sweep, run.run_id, cell.cell_hash), ex)
        path = self.cell_file(METRICS, run.sweep, run.run_id, cell.cell_hash)
        self.write_table(path, table)
        status = full[0]["status"] if full else Status.OK
        wall = full[0].get("wall_s") if full else None
        return Receipt(cell.cell_hash, status, len(full), path, wall, model_reused)

    def partition_files(self, table: str, sweep: str, run_id: str) -> tuple[list[str], list[str]]:
        """(live files to read, unreadable compacted files named with the error) of one
        partition; ``schema.live_files`` decides which files hold each cell's rows. Only
        compacted files' metadata is read here (one request each); an unreadable per-cell file
        shows up when it is read (``cell_status``, ``read_table``)."""
        meta: dict[str, dict[bytes, bytes] | None] = {}
        bad: list[str] = []
        for f in self.list_files(self.partition(table, sweep, run_id)):
            if not is_compacted(f):
                meta[f] = None
                continue
            try:
                meta[f] = pq.read_metadata(f, filesystem=self.fs).metadata
            except (pa.ArrowInvalid, OSError) as exc:  # truncated or corrupt
                bad.append(f"{f} ({type(exc).__name__})")
        return live_files(meta), bad

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
                parts.append(pq.read_table(f, columns=columns, filesystem=self.fs, schema=schema))
            except (pa.ArrowInvalid, OSError) as exc:
                warnings.warn(f"skipping unreadable results file {f}: {exc}", stacklevel=2)
        if not parts:
            empty = schema.empty_table()
            return empty.select(columns) if columns else empty
        return pa.concat_tables(parts)

    def cell_status(self, sweep: str, run_id: str) -> tuple[dict[str, str], list[str]]:
        """{cell_hash: status} of finished cells, and the paths of unreadable files."""
        done: dict[str, str] = {}
        files, bad = self.partition_files(METRICS, sweep, run_id)
        for f in files:
            try:
                t = pq.read_table(f, columns=["cell_hash", "status"], filesystem=self.fs)
            except (pa.ArrowInvalid, OSError) as exc:  # truncated or corrupt
                bad.append(f"{f} ({type(exc).__name__})")
                continue
            worst: dict[str, str] = {}
            for h, s in zip(
                t.column("cell_hash").to_pylist(), t.column("status").to_pylist(), strict=True
            ):
                worst[h] = s if worst.get(h, Status.OK) == Status.OK else worst[h]
            done.update(worst)
        return done, bad

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
        weights = self.read_bytes(self.path(MODELS, train_hash, WEIGHTS_FILE))
        config = self.read_bytes(self.path(MODELS, train_hash, CONFIG_FILE))
        if weights is None or config is None:
            return None
        return weights, config.decode()

    def save_model(self, train_hash: str, weights: bytes, config: str) -> None:
        """Weights first, config last: the config's presence marks a complete checkpoint."""
        self.write_bytes(self.path(MODELS, train_hash, WEIGHTS_FILE), weights)
        self.write_bytes(self.path(MODELS, train_hash, CONFIG_FILE), config.encode())

    # -- manifests and reports ----------------------------------------------------------------
    def write_manifest(self, run_id: str, manifest: dict[str, Any]) -> str:
        path = self.path(RUNS, f"{run_id}.json")
        self.write_bytes(path, json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
        return path

    def read_manifest(self, run_id: str) -> dict[str, Any] | None:
        data = self.read_bytes(self.path(RUNS, f"{run_id}.json"))
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
        path = self.path(REPORTS, f"{run_id}.{ext}")
        self.write_bytes(path, content.encode() if isinstance(content, str) else content)
        return path

    def runs(self, sweep: str) -> list[str]:
        return [
            posixpath.basename(p).removeprefix("run=")
            for p in self.list_dirs(self.path(METRICS, f"sweep={sweep}"))
        ]

    def sweeps(self) -> list[str]:
        return [
            posixpath.basename(p).removeprefix("sweep=") for p in self.list_dirs(self.path(METRICS))
        ]
