"""``sweeps compact``: merge each run's per-cell files into one file per table."""

from __future__ import annotations

from sweeps.cli.common import ResultsOpt, RunIdOpt, SweepOpt, check_results_root, out


def compact(
    results: ResultsOpt = "results", sweep: SweepOpt = None, run_id: RunIdOpt = None
) -> None:
    """Merge each run's per-cell files into one file per table, without losing or duplicating
    rows (runs held by a live `sweeps run` are skipped)."""
    from rich.table import Table

    from sweeps.compact import compact as do_compact

    check_results_root(results)
    table = Table("sweep", "run", "table", "files before", "files after", "rows merged", "note")
    for r in do_compact(results, sweep, run_id):
        if r.skipped:
            table.add_row(r.sweep, r.run_id, "-", "-", "-", "-", f"skipped: {r.skipped}")
        for t in r.tables:
            table.add_row(
                r.sweep, r.run_id, t.table, str(t.files_before), str(t.files_after), str(t.rows), ""
            )
    out.print(table)
