"""``sweeps validate``, ``sweeps plan`` and ``sweeps run``: check, price and run a spec."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sweeps.cli.common import (
    AddressOpt,
    JsonOpt,
    MaxCellsOpt,
    ResultsOpt,
    RunIdOpt,
    SpecArg,
    TokenOpt,
    WorkersOpt,
    check_results_root,
    check_run_id,
    err,
    out,
    read_spec,
)
from sweeps.cli.output import print_json, print_line
from sweeps.exit_codes import EXIT_FAILED, EXIT_INVALID, EXIT_STORAGE

# Storage failures of the results root that end a run (the cells finished so far are kept).
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES}


def is_storage_error(exc: OSError, results: str) -> bool:
    """Whether an OSError that ended a run is the results storage failing: a local errno of
    the list above, or, on a remote root (s3://), an error of the object store's client
    (pyarrow raises those without an errno; cells' own errors become failed rows, never this)."""
    return exc.errno in STORAGE_ERRNOS or (exc.errno is None and "://" in results)


def root_name(results: str) -> str:
    """The results root as shown in messages: a URI without its query (which may hold keys)."""
    return results.split("?", 1)[0]


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An error's message on one line (pyarrow's S3 messages span several), cut at ``limit``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate(spec: SpecArg, max_cells: MaxCellsOpt = None, as_json: JsonOpt = False) -> None:
    """Validate a spec: exit 0, or exit 2 with one message per error naming the field path."""
    if as_json:
        from sweeps.spec import SpecError, load_spec

        try:
            v = load_spec(spec, max_cells)
        except SpecError as exc:
            print_json({"ok": False, "errors": [{"field": f, "message": m} for f, m in exc.errors]})
            raise typer.Exit(EXIT_INVALID) from None
        print_json({"ok": True, "sweep": v.name, "cells": v.grid_size()})
        return
    s = read_spec(spec, max_cells)
    print_line(f"ok: sweep {s.name!r}, {s.grid_size()} cells")


def plan(
    spec: SpecArg,
    results: ResultsOpt = "results",
    run_id: RunIdOpt = None,
    as_json: JsonOpt = False,
    max_cells: MaxCellsOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Workers to spread the cells over (default: "
            "this machine's CPUs / cpus_per_worker).",
        ),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Time a few of the plan's cells here first (writes "
            "nothing) instead of using earlier runs' timings.",
        ),
    ] = False,
) -> None:
    """Dry run: the cells, how many are done, and the wall time they need (seconds on the
    target, CPU-hours, GPU-hours, with an interval), calibrated on earlier runs' cell timings
    in the results root or on a short probe (--calibrate). Writes nothing."""
    from sweeps.estimate import estimate, from_results, probe
    from sweeps.plan import plan as make_plan
    from sweeps.plan import summarize
    from sweeps.runner import default_run_id
    from sweeps.schema import Status
    from sweeps.store import ResultStore

    s = read_spec(spec, max_cells)
    check_results_root(results)
    check_run_id(run_id)
    rid = run_id or default_run_id(s)
    cells = make_plan(s)
    done: dict[str, str] = {}
    exists = "://" in results or Path(results).is_dir()
    if exists:
        done, _ = ResultStore(results).cell_status(s.name, rid)
    finished = {h for h, st in done.items() if st != Status.FAILED}
    summary = summarize(s, cells, finished)
    pending = [c for c in cells if c.cell_hash not in finished]
    cal = probe(pending or cells) if calibrate else None
    if cal is None and exists:
        cal = from_results(ResultStore(results), s.name)
    res = s.resources
    n_workers = workers or max(1, int((os.cpu_count() or 1) / max(res.cpus_per_worker, 1e-9)))
    est = (
        estimate(pending, cal, n_workers, res.cpus_per_worker, res.gpus_per_worker) if cal else None
    )
    if as_json:
        print_json({"run_id": rid, **summary.__dict__, "time": est.__dict__ if est else None})
        return
    print_line(
        f"sweep {s.name!r} run {rid}: {summary.cells} cells ({summary.unique_trainings} distinct "
        f"trainings), {summary.done} done, {summary.pending} pending, ~{summary.rows_per_cell} "
        "rows per cell"
    )
    if est is not None:
        print_line(est.describe())
    elif pending:
        print_line(
            "no cell timings in the results root yet: `sweeps plan --calibrate` times a few "
            "cells here (writes nothing) to estimate the wall time"
        )


def run(
    spec: SpecArg,
    results: ResultsOpt = "results",
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id", help="Run id; the default is derived from the spec, so re-running resumes."
        ),
    ] = None,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    token: TokenOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
    max_cells: MaxCellsOpt = None,
) -> None:
    """Run or resume a sweep."""
    s = read_spec(spec, max_cells)
    check_results_root(results)
    check_run_id(run_id)
    from cluster.pool import WorkerStartError
    from cluster.scheduler import CellState
    from sweeps.progress import SweepProgress
    from sweeps.runner import run_sweep

    if workers != 0:  # join (or start) Ray first, so the dashboard address shows up front
        from cluster.connect import connect

        ray_info = connect(address, token=token)
        if ray_info.get("dashboard") and not quiet:
            out.print(f"Ray dashboard: {ray_info['dashboard']}")
    try:
        with SweepProgress(out, enabled=not quiet) as prog:
            outcome = run_sweep(
                s,
                results,
                run_id,
                address=address,
                workers=workers,
                token=token,
                progress=prog.update,
                on_start=prog.start,
            )
    except OSError as exc:  # the results storage failed: finished cells are kept
        if not is_storage_error(exc, results):
            raise
        err.print(
            f"[red]error[/red] --results: cannot write to {escape(root_name(results))}: "
            f"{escape(one_line(exc))}; finished cells are kept, fix the storage and run again "
            "to resume",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_STORAGE) from None
    except WorkerStartError as exc:  # e.g. the project is not importable on a node
        err.print(f"[red]error[/red] workers: {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    sm = outcome.summary
    out.print(
        f"run {outcome.run_id}: {outcome.planned} cells, {outcome.skipped} already done, {sm.count(CellState.DONE) + sm.count(CellState.DIVERGED)} run now, {sm.failed} failed; wall {sm.wall_s:.1f} s"
    )
    out.print(f"results: {results}  manifest: {outcome.manifest_path}")
    raise typer.Exit(outcome.exit_code)
