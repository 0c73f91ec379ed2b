"""Compaction: merge a run's per-cell Parquet files into ``part-*.parquet`` files without losing
or duplicating a row. The driver of ``sweeps run`` does it by itself, in the background while
the sweep runs (``BackgroundCompactor``: one part per table every ``batch_cells`` finished cells
or ``interval_s`` seconds) and once more at the end; ``sweeps compact`` does the same by hand
(and also merges a run's parts into one).

Design (why a crash at any point is harmless):

1. Only finished cells (status ok or diverged, which resume never re-runs) are merged; failed
   cells keep their per-cell file, so a later run can replace it.
2. The merged file is written atomically (temporary name, then rename) and names, in its
   Parquet metadata, the cells it holds, their non-ok statuses and the older parts it replaces.
   Its footer is read back and checked (row count, cell set) before anything is deleted.
   Examples are merged before metrics (the metrics rows are the done-markers).
3. The partition's index (sweeps/index.py) is rewritten to name the new part.
4. Then the merged per-cell files, the replaced parts and any leftovers are deleted.

A crash between 2 and 4 leaves both copies (and maybe an index that lags). Every reader resolves
a partition through ``layout.live_files``, which ignores a per-cell file whose cell a live part
holds and a part that a newer one replaces, so each cell's rows are read exactly once and
resume still sees the cell as done; the next pass deletes the leftovers. Temporary files of
writers killed mid-write (``.tmp-*``) are deleted by passes that run while no worker writes
(the start and end of a run, ``sweeps compact``). The run lock keeps ``sweeps compact`` and
``sweeps run`` off the same run; the background compactor runs inside the lock holder.

Every pass also packs the shared model store's loose checkpoints into one pack once there are
``model_packs.MIN_MODELS`` of them (``sweeps compact``: all of them); the crash rules of packs are
in sweeps/model_packs.py.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adv_core.results import FINISHED
from sweeps import layout
from sweeps.index import PartInfo, Partition, read_file, worst_status, write_index
from sweeps.layout import COMPACTED_PREFIX, EXAMPLES, METRICS, name_of
from sweeps.model_packs import PackResult, pack_models
from sweeps.schema import EXAMPLES_SCHEMA, METRICS_SCHEMA
from sweeps.store import ResultStore

PART_ROWS = 2_000_000  # parts merged at the end of a run stop growing at about this many rows
BATCH_CELLS = 1000  # a background pass as soon as this many finished cells are loose
MIN_CELLS = 64  # ... or this many, once INTERVAL_S passed since the last pass
INTERVAL_S = 30.0
MODEL_TMP_AGE_S = 3600.0  # a checkpoint temporary this old has no live writer
POLL_S = 2.0  # how often the background thread lists the partition (one request)


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


def _read_all(store: ResultStore, files: list[str], schema: pa.Schema) -> dict[str, pa.Table]:
    """Read files in parallel (object stores answer slowly, one request each); unreadable files
    are left out (readers name them)."""

    def one(f: str) -> pa.Table | None:
        try:
            return read_file(store.fs, f, schema)
        except (pa.ArrowInvalid, OSError):
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        tables = list(pool.map(one, files))
    return {f: t for f, t in zip(files, tables, strict=True) if t is not None}


def _merge(tables: list[pa.Table], schema: pa.Schema) -> tuple[pa.Table, list[str]]:
    """Concatenate, taking each cell's rows from the first table that holds it. Linear in
    the rows and cells: a table is filtered only when an earlier one holds some of its cells
    (a pass merges up to 1000 one-cell files, where filtering each against every cell taken
    so far cost a quadratic 11% of the driver's CPU)."""
    owner: dict[str, int] = {}
    cells_of = []
    for i, t in enumerate(tables):
        cells_of.append(t["cell_hash"].unique().to_pylist())
        for h in cells_of[-1]:
            owner.setdefault(h, i)
    parts = []
    for i, (t, cells) in enumerate(zip(tables, cells_of, strict=True)):
        taken = [h for h in cells if owner[h] != i]
        if taken:
            t = t.filter(pc.invert(pc.is_in(t["cell_hash"], pa.array(taken, pa.string()))))
        parts.append(t)
    return (pa.concat_tables(parts) if parts else schema.empty_table()), sorted(owner)


def _write_part(
    store: ResultStore,
    directory: str,
    tables: list[pa.Table],
    schema: pa.Schema,
    supersedes: list[str],
) -> tuple[str, PartInfo]:
    merged, cells = _merge(tables, schema)
    statuses = worst_status(merged) if "status" in merged.column_names else {}
    meta = {
        **(schema.metadata or {}),
        **layout.compacted_metadata(cells, supersedes, statuses),
    }
    buf = io.BytesIO()
    pq.write_table(merged.replace_schema_metadata(meta), buf, compression="zstd")
    data = buf.getvalue()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = f"{directory}/{COMPACTED_PREFIX}{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    store.write_bytes(path, data)
    back = pq.read_metadata(path, filesystem=store.fs)
    info = PartInfo.from_metadata(len(data), back.metadata, rows=back.num_rows)
    if back.num_rows != merged.num_rows or set(info.cells) != set(cells):
        store.delete(path)
        raise CompactionError(f"{path} did not read back as written; nothing deleted")
    return path, info


def _groups(part: Partition, limit: int) -> list[list[str]]:
    """Live parts under ``limit`` rows, in name (time) order, grouped up to ``limit`` rows."""
    out: list[list[str]] = [[]]
    rows = 0
    for p in sorted(part.parts):
        n = part.parts[p].rows
        if n is None or n >= limit:
            continue
        if out[-1] and rows + n > limit:
            out.append([])
            rows = 0
        out[-1].append(p)
        rows += n
    return [g for g in out if g]


def _jobs(part: Partition, loose: bool, merge_parts: int) -> list[tuple[list[str], bool]]:
    """The parts to write: (parts merged into it, whether the loose cells go in too)."""
    jobs = [(g, False) for g in (_groups(part, merge_parts) if merge_parts else [])]
    if loose:
        jobs = [*jobs[:-1], (jobs[-1][0], True)] if jobs else [([], True)]
    return [(g, with_loose) for g, with_loose in jobs if with_loose or len(g) > 1]


def _compact_table(
    store: ResultStore,
    table: str,
    part: Partition,
    loose: dict[str, pa.Table],
    merge_parts: int,
    clean_tmp: bool,
) -> TableCompaction:
    """Write the loose tables (and, with ``merge_parts``, groups of small parts) as parts."""
    schema = METRICS_SCHEMA if table == METRICS else EXAMPLES_SCHEMA
    before = len(part.parts) + len(part.loose) + len(part.leftovers)
    index = dict(part.parts)
    merged, rows, dead = None, 0, list(part.leftovers)
    for group, with_loose in _jobs(part, bool(loose), merge_parts):
        srcs = _read_all(store, group, schema)
        if len(srcs) != len(group):
            raise CompactionError(f"a part of {part.directory} became unreadable; nothing deleted")
        tables = [srcs[p] for p in group] + (list(loose.values()) if with_loose else [])
        supersedes = [name_of(p) for p in group]
        merged, info = _write_part(store, part.directory, tables, schema, supersedes)
        for p in group:
            index.pop(p)
        index[merged] = info
        rows += info.rows or 0
        dead += group + (list(loose) if with_loose else [])
    if merged is not None:
        write_index(store.fs, part.directory, index)
    for f in dead:
        store.delete(f)
    if clean_tmp:
        for t in part.temporaries:
            store.delete(t.path)
    after = len(store.list_files(part.directory)) if merged or dead else before
    return TableCompaction(table, before, after, rows, merged)


def compact_locked(
    store: ResultStore,
    sweep: str,
    run_id: str,
    *,
    merge_parts: int = 0,
    clean_tmp: bool = False,
    min_cells: int = 1,
) -> RunCompaction:
    """One pass over a run whose lock this process holds: merge its finished loose cells (when
    at least ``min_cells``) into one new part per table; with ``merge_parts`` (a row limit),
    also merge small parts; with ``clean_tmp``, delete temporaries (no writer may be running)."""
    out = RunCompaction(sweep, run_id)
    metrics = store.scan(METRICS, sweep, run_id)
    files = metrics.loose if len(metrics.loose) >= min_cells else []
    tables = _read_all(store, files, METRICS_SCHEMA)
    done = {f: t for f, t in tables.items() if set(worst_status(t).values()) <= set(FINISHED)}
    cells = {layout.cell_of(f) for f in done}
    examples = store.scan(EXAMPLES, sweep, run_id)
    ex_files = [f for f in examples.loose if layout.cell_of(f) in cells]
    ex_tables = _read_all(store, ex_files, EXAMPLES_SCHEMA)
    if len(ex_tables) != len(ex_files):  # an unreadable examples file: leave those cells loose
        lost = {layout.cell_of(f) for f in ex_files if f not in ex_tables}
        done = {f: t for f, t in done.items() if layout.cell_of(f) not in lost}
    out.tables.append(_compact_table(store, EXAMPLES, examples, ex_tables, merge_parts, clean_tmp))
    out.tables.append(_compact_table(store, METRICS, metrics, done, merge_parts, clean_tmp))
    return out


def compact_run(store: ResultStore, sweep: str, run_id: str) -> RunCompaction:
    """Compact both tables of one run, under the run lock (skipped while a run holds it)."""
    lock = store.run_lock(sweep, run_id)
    if not lock.try_acquire():
        return RunCompaction(sweep, run_id, skipped=f"locked by {lock.holder()}")
    try:
        return compact_locked(store, sweep, run_id, merge_parts=PART_ROWS, clean_tmp=True)
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
    if sweep is None:
        clean_model_temporaries(store)
        pack_models(store.fs, store.base, min_models=1)
    return out


def clean_model_temporaries(store: ResultStore, older_than_s: float = MODEL_TMP_AGE_S) -> int:
    """Delete checkpoint temporaries (``models/**/.tmp-*``) older than ``older_than_s``: the
    model store is shared by every run, so a younger one may belong to a writer still running
    (a writer refreshes its temporary's mtime as it writes and renames it within seconds).
    One listing of the model store; a run's start pass and ``sweeps compact`` do it."""
    now = time.time()
    old = [
        i.path
        for i in layout.list_infos(store.fs, store.path(layout.MODELS), recursive=True)
        if layout.is_temporary(i.path)
        and i.mtime is not None
        and now - i.mtime.timestamp() > older_than_s
    ]
    for p in old:
        store.delete(p)
    return len(old)


class BackgroundCompactor:
    """Keeps a running sweep's layout compact, with no user command: used as a context manager
    around the cells by the driver, which holds the run lock.

    - on entry: one pass that merges cells a killed run left loose and deletes its temporaries
      (and the model store's checkpoint temporaries older than ``MODEL_TMP_AGE_S``);
    - while the sweep runs, a daemon thread lists the metrics partition every ``poll_s`` seconds
      (one request) and merges the finished loose cells into one part per table when there are
      ``batch_cells`` of them, or ``min_cells`` and ``interval_s`` passed since the last pass;
    - at ``finish()`` (the driver calls it once its cells are done) or on a normal exit: the
      final pass (loose cells, small parts merged, temporaries deleted).

    A run therefore leaves fewer than ``min_cells`` loose files (plus failed cells, kept loose so
    a re-run can replace them) and about one part per ``batch_cells`` cells or ``interval_s``
    seconds, merged at the end into parts of up to ``PART_ROWS`` rows."""

    def __init__(
        self,
        store: ResultStore,
        sweep: str,
        run_id: str,
        *,
        batch_cells: int | None = None,
        min_cells: int | None = None,
        interval_s: float | None = None,
        poll_s: float | None = None,
    ) -> None:
        self.store, self.sweep, self.run_id = store, sweep, run_id
        self.batch_cells = BATCH_CELLS if batch_cells is None else batch_cells
        self.min_cells = MIN_CELLS if min_cells is None else min_cells
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self.poll_s = POLL_S if poll_s is None else poll_s
        self.passes: list[RunCompaction] = []
        self.model_passes: list[PackResult] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._loop, name="sweeps-compactor", daemon=True)

    def _pass(self, **kwargs: Any) -> None:
        self.passes.append(compact_locked(self.store, self.sweep, self.run_id, **kwargs))
        # the shared model store: loose checkpoints into packs once there are MIN_MODELS
        self.model_passes.append(pack_models(self.store.fs, self.store.base))

    def __enter__(self) -> BackgroundCompactor:
        clean_model_temporaries(self.store)  # checkpoint temporaries of killed runs, by age
        self._pass(clean_tmp=True, min_cells=self.min_cells)
        self._thread.start()
        return self

    def _loop(self) -> None:
        last = time.monotonic()
        directory = self.store.partition(METRICS, self.sweep, self.run_id)
        while not self._stop.wait(self.poll_s):
            try:
                loose = sum(
                    1
                    for i in layout.list_infos(self.store.fs, directory)
                    if layout.is_result_file(i.path) and not layout.is_compacted(i.path)
                )
                due = time.monotonic() - last >= self.interval_s and loose >= self.min_cells
                if loose >= self.batch_cells or due:
                    self._pass(min_cells=min(self.min_cells, self.batch_cells))
                    last = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - never stop the sweep; the end pass retries
                self.error = exc

    def finish(self) -> None:
        """Stop the background thread and run the end pass, once: the driver calls it when
        its cells are done, before it reads the run's final state (which then comes from the
        parts' index, not from every loose file); ``__exit__`` calls it if nobody did."""
        if self._finished:
            return
        self._finished = True
        self._stop_thread()
        self._pass(merge_parts=PART_ROWS, clean_tmp=True, min_cells=self.min_cells)

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()
        else:
            self._stop_thread()
