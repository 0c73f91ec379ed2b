"""The ``sweeps`` command line (typer). Exit codes: 0 ok; 1 some cells failed permanently;
2 invalid input; 3 regression."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sweeps.runner import EXIT_FAILED, EXIT_INVALID, run_sweep
from sweeps.spec import RUN_ID_PATTERN, SpecError, SweepSpec, load_spec

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Reproducible adversarial-robustness sweeps on Ray.",
)
out = Console()
err = Console(stderr=True)

SpecArg = Annotated[Path, typer.Argument(help="Sweep spec (YAML).", show_default=False)]
ResultsOpt = Annotated[
    str,
    typer.Option(
        "--results", help="Results root: a folder or a pyarrow URI such as s3://bucket/prefix."
    ),
]
MaxCellsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-cells",
        min=1,
        help="Confirm a grid of up to this many cells (overrides the spec's max_cells).",
    ),
]


# Storage failures of the results root that end a run (the cells finished so far are kept).
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES}


def fail_invalid(errors: list[tuple[str, str]]) -> None:
    for path, msg in errors:
        err.print(
            f"[red]error[/red] {escape(path)}: {escape(msg)}", highlight=False, soft_wrap=True
        )
    raise typer.Exit(EXIT_INVALID)


def read_spec(path: Path, max_cells: int | None = None) -> SweepSpec:
    try:
        return load_spec(path, max_cells)
    except SpecError as exc:
        fail_invalid(exc.errors)
        raise  # unreachable


def check_results_root(results: str) -> None:
    """The results root (or, when it does not exist yet, its nearest existing parent) must be
    a folder."""
    if "://" in results:
        return
    p = Path(results).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        fail_invalid([("--results", f"{results}: {p} exists and is not a folder")])


def check_run_id(run_id: str | None) -> None:
    """A run id becomes a folder and a file name under the results root: no separators."""
    import re

    if run_id is not None and not re.fullmatch(RUN_ID_PATTERN, run_id):
        fail_invalid([("--run-id", f"{run_id!r} must match {RUN_ID_PATTERN}")])


@app.command()
def validate(spec: SpecArg, max_cells: MaxCellsOpt = None) -> None:
    """Validate a spec: exit 0, or exit 2 with one message per error naming the field path."""
    s = read_spec(spec, max_cells)
    out.print(f"ok: sweep {s.name!r}, {s.grid_size()} cells")


@app.command()
def plan(
    spec: SpecArg,
    results: ResultsOpt = "results",
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    max_cells: MaxCellsOpt = None,
) -> None:
    """Dry run: the cells, how many are done, the estimated cost. Writes nothing."""
    from sweeps.plan import plan as make_plan
    from sweeps.plan import summarize
    from sweeps.runner import default_run_id
    from sweeps.store import ResultStore

    s = read_spec(spec, max_cells)
    check_results_root(results)
    check_run_id(run_id)
    rid = run_id or default_run_id(s)
    cells = make_plan(s)
    done: dict[str, str] = {}
    if "://" in results or Path(results).is_dir():
        done, _ = ResultStore(results).cell_status(s.name, rid)
    summary = summarize(s, cells, {h for h, st in done.items() if st != "failed"})
    if as_json:
        out.print_json(json.dumps({"run_id": rid, **summary.__dict__}))
        return
    out.print(
        f"sweep {s.name!r} run {rid}: {summary.cells} cells ({summary.unique_trainings} distinct trainings), {summary.done} done, {summary.pending} pending, ~{summary.rows_per_cell} rows per cell, estimated cost {summary.estimated_cost:.3g} units"
    )


@app.command()
def run(
    spec: SpecArg,
    results: ResultsOpt = "results",
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id", help="Run id; the default is derived from the spec, so re-running resumes."
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Existing Ray cluster (else RAY_ADDRESS, else an embedded local cluster).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker actors (default: one per GPU, or per CPU slot); 0 runs inline without Ray.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Ray auth token (default: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).",
        ),
    ] = None,
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
    except OSError as exc:  # the results storage failed (a full disk): finished cells are kept
        if exc.errno not in STORAGE_ERRNOS:
            raise
        err.print(
            f"[red]error[/red] --results: cannot write to {escape(results)}: {escape(str(exc))}; "
            "finished cells are kept, fix the storage and run again to resume",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_FAILED) from None
    except WorkerStartError as exc:  # e.g. the project is not importable on a node
        err.print(f"[red]error[/red] workers: {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    sm = outcome.summary
    out.print(
        f"run {outcome.run_id}: {outcome.planned} cells, {outcome.skipped} already done, {sm.count(CellState.DONE) + sm.count(CellState.DIVERGED)} run now, {sm.failed} failed; wall {sm.wall_s:.1f} s"
    )
    out.print(f"results: {results}  manifest: {outcome.manifest_path}")
    raise typer.Exit(outcome.exit_code)


@app.command()
def status(
    results: ResultsOpt = "results", as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Runs with their cells done / failed / missing, and unreadable files."""
    from sweeps.status import collect_status

    check_results_root(results)
    info = collect_status(results)
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2, default=str) + "\n")
        return
    table = Table(
        "sweep", "run", "planned", "done", "failed", "diverged", "missing", "state", "unreadable"
    )
    for r in info["runs"]:
        table.add_row(
            r["sweep"],
            r["run_id"],
            str(r["planned"]),
            str(r["done"]),
            str(r["failed"]),
            str(r["diverged"]),
            str(r["missing"]),
            r["state"],
            str(len(r["unreadable"])),
        )
    out.print(table)
    for r in info["runs"]:
        for f in r["unreadable"]:
            out.print(f"[yellow]unreadable[/yellow] {f}")


@app.command()
def report(
    results: ResultsOpt = "results",
    out_path: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path(
        "report.html"
    ),
    sweep: Annotated[str | None, typer.Option("--sweep")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    notebook: Annotated[
        list[str] | None,
        typer.Option(
            "--notebook", help="Notebook name(s) under analysis/notebooks (default: all)."
        ),
    ] = None,
) -> None:
    """Execute the analysis notebooks on a results folder and write one HTML report, with
    each figure also saved as a PNG in <out stem>_figures/ next to it. Exit 1 if a notebook
    failed (the report still shows its output up to the error)."""
    from analysis.report import NOTEBOOKS, available, build_report

    check_results_root(results)
    names = notebook or available()
    unknown = [n for n in names if not (NOTEBOOKS / f"{n}.ipynb").is_file()]
    if unknown:
        fail_invalid(
            [
                (
                    "--notebook",
                    f"unknown notebook(s) {unknown}; known: {sorted(p.stem for p in NOTEBOOKS.glob('*.ipynb'))}",
                )
            ]
        )
    rep = build_report(results, out_path, names, sweep=sweep, run=run_id)
    out.print(f"report: {rep.path}")
    if rep.figures:
        out.print(f"figures ({len(rep.figures)}): {rep.figures[0].parent}")
        for f in rep.figures:
            out.print(f"  {f.name}", highlight=False)
    for name, msg in rep.failed.items():
        err.print(f"[red]notebook {name} failed[/red]: {msg}", highlight=False, soft_wrap=True)
    if rep.failed:
        raise typer.Exit(1)


AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", help="Ray Jobs API address, e.g. http://HEAD:8265 (else RAY_ADDRESS)."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Ray auth token (default: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).",
    ),
]


def _jobs_address(address: str | None) -> str:
    from sweeps.submit import jobs_address

    addr = jobs_address(address)
    if addr is None:
        fail_invalid([("--address", "need the Jobs API address http://HEAD:8265 (or RAY_ADDRESS)")])
    return str(addr)


@app.command()
def submit(
    spec: SpecArg,
    address: AddressOpt = None,
    results: ResultsOpt = "results",
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    workers: Annotated[int | None, typer.Option("--workers")] = None,
    token: TokenOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Stream the job's output; exit with its exit code.")
    ] = False,
) -> None:
    """Submit the sweep to a running Ray cluster as a Ray job; prints the job id."""
    from sweeps import submit as jobs

    read_spec(spec)  # invalid specs stop here (exit 2), before anything is uploaded
    addr = _jobs_address(address)
    req = jobs.JobRequest(spec, results, run_id, workers)
    job_id = jobs.submit(req, addr, token)
    sys.stdout.write(job_id + "\n")
    sys.stdout.flush()
    if follow:
        raise typer.Exit(jobs.follow(jobs.client(addr, token), job_id, sys.stdout.write))


@app.command()
def logs(
    job_id: Annotated[str, typer.Argument(help="Job id printed by `sweeps submit`.")],
    address: AddressOpt = None,
    token: TokenOpt = None,
    follow: Annotated[
        bool,
        typer.Option("--follow/--no-follow", help="Stream until the job ends (default)."),
    ] = True,
) -> None:
    """Print a submitted job's output; by default follow it and exit with its exit code."""
    from sweeps import submit as jobs

    client = jobs.client(_jobs_address(address), token)
    if follow:
        raise typer.Exit(jobs.follow(client, job_id, sys.stdout.write))
    sys.stdout.write(client.get_job_logs(job_id))


# `sweeps nightly`, `sweeps schedule`, `sweeps compact` live in sweeps/cli_nightly.py.
from sweeps.cli_nightly import register as _register_nightly  # noqa: E402

_register_nightly(app)


def main() -> Any:  # pragma: no cover - console entry
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return app()
