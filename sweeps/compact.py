"""``sweeps compact``: merge a run's per-cell Parquet files into one ``part-*.parquet`` per table
without losing or duplicating a row.

Design (why a crash at any point is harmless):

1. Only finished cells (status ok or diverged, which resume never re-runs) are merged; failed
   cells keep their per-cell file, so a later run can replace it.
2. The merged file is written atomically (temporary name, then rename) and names, in its
   Parquet metadata, the cells it holds and the older compacted files it replaces. It is read
   back and checked (row count, cell set) before anything is deleted.
3. Then the per-cell files and the replaced compacted files are deleted.

A crash between 2 and 3 leaves both copies. Every reader (``ResultStore``, ``analysis.load``)
resolves a partition through ``schema.live_files``, which ignores a per-cell file whose cell a
live compacted file holds and a compacted file that a newer one replaces, so each cell's rows are
read exactly once and ``pending()`` still sees the cell as done; the next ``sweeps compact``
deletes the leftovers. The run lock keeps compaction and ``sweeps run`` off the same run.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import posixpath
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adv_core.results import FINISHED
from sweeps.schema import (
    COMPACTED_PREFIX,
    EXAMPLES_SCHEMA,
    META_CELLS,
    METRICS_SCHEMA,
    compacted_metadata,
    is_compacted,
)
from sweeps.store import EXAMPLES, METRICS, ResultStore


@dataclass
class TableCompaction:
    table: str
    files_before: int
    files_after: int
    rows: int
    merged: str | None = None


@dataclass
class RunCompaction:
    sweep: str
    run_id: str
    skipped: str | None = None
    tables: list[TableCompaction] = field(default_factory=list)


class CompactionError(RuntimeError):
    """The merged file did not read back as expected; nothing was deleted."""


def _cells_of(store: ResultStore, path: str) -> list[str]:
    raw = (pq.read_metadata(path, filesystem=store.fs).metadata or {}).get(META_CELLS)
    return list(json.loads(raw)) if raw else []


def _merge(store: ResultStore, sources: list[str], schema: pa.Schema) -> tuple[pa.Table, set[str]]:
    """Concatenate the sources, taking each cell's rows from the first source that holds it."""
    taken: set[str] = set()
    parts = []
    for f in sources:
        t = pq.read_table(f, filesystem=store.fs, schema=schema)
        if taken:
            t = t.filter(pc.invert(pc.is_in(t["cell_hash"], pa.array(sorted(taken)))))
        taken |= set(t["cell_hash"].to_pylist())
        parts.append(t)
    merged = pa.concat_tables(parts) if parts else schema.empty_table()
    return merged, taken


def compact_table(
    store: ResultStore, table: str, sweep: str, run_id: str, finished: set[str]
) -> TableCompaction:
    schema = METRICS_SCHEMA if table == METRICS else EXAMPLES_SCHEMA
    listed = store.list_files(store.partition(table, sweep, run_id))
    live, bad = store.partition_files(table, sweep, run_id)
    bad_paths = {b.rsplit(" (", 1)[0] for b in bad}
    parts = [f for f in live if is_compacted(f)]
    singles = [
        f
        for f in live
        if not is_compacted(f) and posixpath.basename(f).removesuffix(".parquet") in finished
    ]
    leftovers = [f for f in listed if f not in live and f not in bad_paths]
    if not singles and len(parts) <= 1:
        for f in leftovers:
            store.delete(f)
        return TableCompaction(table, len(listed), len(listed) - len(leftovers), 0)
    merged, cells = _merge(store, parts + singles, schema)
    meta = {
        **(schema.metadata or {}),
        **compacted_metadata(sorted(cells), [posixpath.basename(p) for p in parts]),
    }
    buf = io.BytesIO()
    pq.write_table(merged.replace_schema_metadata(meta), buf, compression="zstd")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    name = f"{COMPACTED_PREFIX}{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    path = posixpath.join(store.partition(table, sweep, run_id), name)
    store.write_bytes(path, buf.getvalue())
    back = pq.read_metadata(path, filesystem=store.fs)
    if back.num_rows != merged.num_rows or set(_cells_of(store, path)) != cells:
        store.delete(path)
        raise CompactionError(f"{path} did not read back as written; nothing deleted")
    for f in parts + singles + leftovers:
        store.delete(f)
    after = len(store.list_files(store.partition(table, sweep, run_id)))
    return TableCompaction(table, len(listed), after, merged.num_rows, path)


def compact_run(store: ResultStore, sweep: str, run_id: str) -> RunCompaction:
    """Compact both tables of one run, under the run lock (skipped while a run holds it)."""
    lock = store.run_lock(sweep, run_id)
    if not lock.try_acquire():
        return RunCompaction(sweep, run_id, skipped=f"locked by {lock.holder()}")
    try:
        done, _ = store.cell_status(sweep, run_id)
        finished = {h for h, s in done.items() if s in FINISHED}
        out = RunCompaction(sweep, run_id)
        for table in (EXAMPLES, METRICS):  # metrics last: they are the done-markers
            out.tables.append(compact_table(store, table, sweep, run_id, finished))
        return out
    finally:
        lock.release()


def compact(
    results: str, sweep: str | None = None, run_id: str | None = None
) -> list[RunCompaction]:
    store = ResultStore(results)
    out = []
    for s in [sweep] if sweep else store.sweeps():
        for r in [run_id] if run_id else store.runs(s):
            out.append(compact_run(store, s, r))
    return out
