"""``sweeps status`` and ``sweeps report``: read a results root."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sweeps.cli.common import (
    JsonOpt,
    ResultsOpt,
    RunIdOpt,
    SweepOpt,
    check_results_root,
    err,
    fail_invalid,
    out,
)
from sweeps.cli.output import is_terminal, print_json, print_line, print_table

STATUS_COLUMNS = ("sweep", "run_id", "planned", "done", "failed", "diverged", "missing", "state")


def status(results: ResultsOpt = "results", as_json: JsonOpt = False) -> None:
    """Runs with their cells done / failed / missing and their state (complete, incomplete,
    failed, running), then any unreadable files. Piped, the table is tab-separated with every
    id and path whole."""
    from sweeps.status import collect_status

    check_results_root(results)
    info = collect_status(results)
    if as_json:
        print_json(info)
        return
    rows = [[r[c] for c in STATUS_COLUMNS] + [len(r["unreadable"]), r["why"]] for r in info["runs"]]
    print_table([*STATUS_COLUMNS, "unreadable", "why"], rows)
    for r in info["runs"]:  # piped: on stderr, so that stdout stays one table
        for f in r["unreadable"]:
            text = f"unreadable: {r['sweep']} {r['run_id']} {f}"
            print_line(text) if is_terminal() else err.print(text, highlight=False, soft_wrap=True)


def report(
    results: ResultsOpt = "results",
    out_path: Annotated[
        Path, typer.Option("--out", help="HTML file to write (Markdown beside it, .md).")
    ] = Path("report.html"),
    sweep: SweepOpt = None,
    run_id: RunIdOpt = None,
    notebook: Annotated[
        list[str] | None,
        typer.Option(
            "--notebook",
            help="Also execute these notebooks of analysis/notebooks and append their output "
            "(code hidden).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the report of a results folder: a standalone HTML page that opens with the
    verdicts of the claims, then figures with captions, then tables (and the same as Markdown
    beside it), each figure also as a PNG in <out stem>_figures/. Exit 1 if a notebook asked
    for failed (the page still shows its output up to the error)."""
    from analysis.report import NOTEBOOKS, build_report

    check_results_root(results)
    names = notebook or []
    unknown = [n for n in names if not (NOTEBOOKS / f"{n}.ipynb").is_file()]
    if unknown:
        known = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
        fail_invalid([("--notebook", f"unknown notebook(s) {unknown}; known: {known}")])
    rep = build_report(results, out_path, names, sweep=sweep, run=run_id)
    if as_json:
        print_json(
            {
                "html": str(rep.path), "markdown": str(rep.markdown),
                "figures": [str(f) for f in rep.figures], "absent": rep.absent,
                "failed": rep.failed,
                "verdicts": [
                    {"claim": v.claim, "status": v.status, "theory": v.theory,
                     "measured": v.measured, "why": v.reason}
                    for v in rep.verdicts
                ],
            }
        )  # fmt: skip
        if rep.failed:
            raise typer.Exit(1)
        return
    out.print(f"report: {rep.path}", highlight=False, soft_wrap=True)
    out.print(f"markdown: {rep.markdown}", highlight=False, soft_wrap=True)
    for v in rep.verdicts:
        out.print(f"  {v.status:<12} {v.claim}", highlight=False, soft_wrap=True)
    if rep.figures:
        out.print(f"figures ({len(rep.figures)}): {rep.figures[0].parent}", soft_wrap=True)
        for f in rep.figures:
            out.print(f"  {f.name}", highlight=False)
    for name, msg in rep.failed.items():
        err.print(f"[red]notebook {name} failed[/red]: {msg}", highlight=False, soft_wrap=True)
    if rep.failed:
        raise typer.Exit(1)
