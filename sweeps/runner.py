"""Run (or resume) a sweep: plan, skip what is done, hand the rest to the cluster layer, and
keep the run manifest up to date. Shared by ``sweeps run``, ``sweeps nightly`` and tests."""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adv_core.config import content_hash
from adv_core.results import Status
from cluster.scheduler import CellState, InlineBackend, Summary, run_cells  # torch-free
from sweeps.compact import BackgroundCompactor
from sweeps.exit_codes import (  # noqa: F401 - re-exported for callers and tests
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REGRESSION,
)
from sweeps.plan import plan
from sweeps.provenance import (
    code_version,
    git_revision,
    host_info,
    library_versions,
    package_version,
)
from sweeps.rows import RunInfo
from sweeps.sink import RunSink
from sweeps.spec import RUN_ID_PATTERN, SweepSpec
from sweeps.store import ResultStore


def default_run_id(spec: SweepSpec) -> str:
    """Same spec (less execution settings) -> same run id, so re-running resumes."""
    fields = {k: getattr(spec, k) for k in type(spec).model_fields if k != "resources"}
    return "r" + content_hash(fields, 10)  # configs hash without their execution settings


@dataclass
class SweepOutcome:
    run_id: str
    planned: int
    skipped: int
    summary: Summary
    manifest_path: str

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.summary.failed else EXIT_OK


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def run_sweep(
    spec: SweepSpec,
    results: str,
    run_id: str | None = None,
    *,
    lock_wait: bool = True,
    **kwargs: Any,
) -> SweepOutcome:
    """Run or resume under the run's lock (sweeps/lock.py): a second process on the same run
    waits (or, with ``lock_wait=False``, raises LockHeld) and then finds the work done."""
    rid = run_id or default_run_id(spec)
    if not re.fullmatch(RUN_ID_PATTERN, rid):  # it names a folder and files under the root
        raise ValueError(f"run id {rid!r} must match {RUN_ID_PATTERN}")
    lock = ResultStore(results).run_lock(spec.name, rid)
    lock.acquire(
        wait=lock_wait,
        on_wait=lambda h: print(f"waiting for {lock.path}, held by {h}", file=sys.stderr),
    )
    try:  # the compactor keeps the run's layout compact while it runs (sweeps/compact.py)
        with BackgroundCompactor(ResultStore(results), spec.name, rid) as compactor:
            return _run_sweep_locked(spec, results, rid, compactor=compactor, **kwargs)
    finally:
        lock.release()


def _run_sweep_locked(
    spec: SweepSpec,
    results: str,
    run_id: str | None = None,
    *,
    address: str | None = None,
    workers: int | None = None,
    inline: bool = False,
    token: str | None = None,
    progress: Callable[[Summary], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    extra_manifest: dict[str, Any] | None = None,
    reuse_models: bool = True,
    compactor: BackgroundCompactor | None = None,
) -> SweepOutcome:
    store = ResultStore(results)
    run = RunInfo(spec.name, run_id or default_run_id(spec), code_version())
    cells = plan(spec)
    todo = store.pending(run, cells)
    # cells whose failure rows from an earlier invocation are still on disk (see run_cells)
    failed_before = {
        h for h, st in store.cell_status(run.sweep, run.run_id)[0].items() if st == Status.FAILED
    }
    if on_start:
        on_start(len(cells), len(cells) - len(todo))
    previous = store.read_manifest(run.run_id) or {}
    manifest: dict[str, Any] = {
        "run_id": run.run_id, "sweep": spec.name, "spec": spec.model_dump(mode="json"),
        "code_version": run.code_version, "libraries": library_versions(), **host_info(),
        "started_at": _now(), "first_started_at": previous.get("first_started_at", _now()),
        "cells": len(cells), "pending_at_start": len(todo), "status": "running",
        "invocations": previous.get("invocations", 0) + 1, **(extra_manifest or {}),
        "git_revision": git_revision(), "package_version": package_version(),
        "reuse_models": reuse_models,
    }  # fmt: skip
    path = store.write_manifest(run.run_id, manifest)
    sink = RunSink(store, run, reuse_models=reuse_models)
    res = spec.resources
    cpu0 = time.process_time()  # the driver's CPU (all its threads, Ray's included)
    if inline or workers == 0:
        summary = run_cells(
            todo, sink, InlineBackend(sink), max_retries=res.max_retries, progress=progress,
            previously_failed=failed_before,
        )  # fmt: skip
    else:
        summary = _run_on_ray(todo, sink, spec, address, workers, token, progress, failed_before)
    driver_cpu_s = time.process_time() - cpu0
    end_error: Exception | None = None
    try:  # the end pass first: the final state then comes from the parts' index
        if compactor is not None:
            compactor.finish()
    except Exception as exc:  # noqa: BLE001 - the manifest is still finished, then it raises
        end_error = exc
    done, bad = store.cell_status(run.sweep, run.run_id)
    manifest.update({
        "finished_at": _now(), "status": "failed" if summary.failed else "complete",
        "cells_done": sum(1 for s in done.values() if s == Status.OK),
        "cells_failed": sum(1 for s in done.values() if s == Status.FAILED),
        "cells_diverged": sum(1 for s in done.values() if s == Status.DIVERGED),
        "cells_run_now": summary.count(CellState.DONE) + summary.count(CellState.DIVERGED),
        "unreadable_files": bad, "wall_s": summary.wall_s, "cell_s": summary.cell_s,
        "driver_cpu_s": driver_cpu_s, **store.run_facts(run.sweep, run.run_id),
    })  # fmt: skip
    store.write_manifest(run.run_id, manifest)
    if end_error is not None:
        raise end_error
    return SweepOutcome(run.run_id, len(cells), len(cells) - len(todo), summary, path)


def _run_on_ray(
    todo: list[Any],
    sink: RunSink,
    spec: SweepSpec,
    address: str | None,
    workers: int | None,
    token: str | None,
    progress: Callable[[Summary], None] | None,
    failed_before: set[str] | None = None,
) -> Summary:
    from cluster.connect import connect
    from cluster.pool import RayBackend, default_workers

    res = spec.resources
    connect(address, token=token)
    # --workers or max_in_flight fix the pool's size (pending actors wait for an autoscaler);
    # without either, the pool follows the cluster as nodes join (cluster/grow.py)
    cap = min(filter(None, (workers, res.max_in_flight)), default=None)
    n = cap or default_workers(res.cpus_per_worker, res.gpus_per_worker)
    n = max(1, min(n, len(todo))) if todo else 1
    backend = RayBackend(sink, n, res.cpus_per_worker, res.gpus_per_worker, max_workers=cap)
    try:
        return run_cells(
            todo,
            sink,
            backend,
            max_retries=res.max_retries,
            timeout_s=res.cell_timeout_s,
            progress=progress,
            previously_failed=failed_before or set(),
        )
    finally:
        backend.shutdown()
