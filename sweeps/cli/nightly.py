"""``sweeps nightly`` and ``sweeps schedule``: the nightly regression run, once or on cron."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from sweeps.cli.common import (
    AddressOpt,
    ResultsOpt,
    SpecArg,
    WorkersOpt,
    check_results_root,
    check_unit,
    fail_invalid,
    out,
    read_spec,
)

ThresholdOpt = Annotated[
    float,
    typer.Option("--threshold", help="Smallest robust-accuracy drop (0-1) that can regress."),
]
AlphaOpt = Annotated[
    float, typer.Option("--alpha", help="Family-wise error rate of the comparison intervals.")
]
RetrainOpt = Annotated[
    bool, typer.Option("--retrain", help="Train every ensemble again instead of reusing it.")
]
HtmlOpt = Annotated[
    bool, typer.Option("--html/--no-html", help="Also execute analysis/notebooks/nightly.ipynb.")
]


def _parse_date(value: str | None) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail_invalid([("--date", f"{value!r} is not a date YYYY-MM-DD")])


def nightly(
    spec: SpecArg,
    results: ResultsOpt = "results",
    date: Annotated[
        str | None, typer.Option("--date", help="YYYY-MM-DD (default today, UTC).")
    ] = None,
    threshold: ThresholdOpt = 0.05,
    alpha: AlphaOpt = 0.05,
    retrain: RetrainOpt = False,
    html: HtmlOpt = True,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="Do not run cells (they ran elsewhere, e.g. `sweeps submit --run-id "
            "nightly-YYYYMMDD`); only compare and write the report.",
        ),
    ] = False,
) -> None:
    """Run SPEC as nightly-YYYYMMDD, compare with the previous nightly, write
    reports/<run_id>.{md,json[,html]}; exit 3 on regression."""
    from sweeps.nightly import run_nightly

    s = read_spec(spec)
    check_results_root(results)
    day = _parse_date(date)
    check_unit("--threshold", threshold)
    check_unit("--alpha", alpha)
    res = run_nightly(
        s, results, day, threshold=threshold, alpha=alpha, retrain=retrain, html=html,
        workers=workers, address=address, report_only=report_only,
    )  # fmt: skip
    rep = res.report
    out.print(
        f"{res.run_id}: compared with {rep['previous_run_id']}; {rep['groups_compared']} groups, "
        f"{len(rep['regressions'])} regressed; models reused {len(rep['models']['reused'])}, "
        f"trained {len(rep['models']['trained'])}"
    )
    for g in rep["regressions"]:
        out.print(f"[red]regression[/red] {g['label']}: {g['diff']:+.3f}", highlight=False)
    for g in rep["drift_regressions"]:
        out.print(
            f"[red]drift[/red] {g['label']}: {g['diff']:+.3f} since {g['began']} "
            f"(over {len(rep['nights'])} nightly runs)",
            highlight=False,
        )
    for p in res.paths:
        out.print(f"report: {p}")
    raise typer.Exit(res.exit_code)


def schedule(
    spec: SpecArg,
    cron: Annotated[str, typer.Option("--cron", help="Cron expression, UTC.")] = "0 2 * * *",
    results: ResultsOpt = "results",
    threshold: ThresholdOpt = 0.05,
    alpha: AlphaOpt = 0.05,
    retrain: RetrainOpt = False,
    html: HtmlOpt = True,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    max_runs: Annotated[
        int | None, typer.Option("--max-runs", help="Stop after this many firings.")
    ] = None,
) -> None:
    """Run the nightly in the foreground on a cron schedule (see sweeps/schedule.py for the
    overlap and missed-run policy)."""
    from sweeps.lock import LeaseLock, lock_path
    from sweeps.nightly import run_nightly
    from sweeps.schedule import overall_exit, run_schedule, validate_cron
    from sweeps.store import ResultStore

    s = read_spec(spec)
    check_results_root(results)
    if problem := validate_cron(cron):
        fail_invalid([("--cron", problem)])
    store = ResultStore(results)
    lock = LeaseLock(store.fs, lock_path(store.base, "schedule", f"sweep={s.name}"))

    def job(fire: dt.datetime) -> int:
        return run_nightly(
            s, results, fire.date(), threshold=threshold, alpha=alpha, retrain=retrain,
            html=html, workers=workers, address=address,
        ).exit_code  # fmt: skip

    firings = run_schedule(job, cron, lock=lock, max_runs=max_runs, log=out.print)
    raise typer.Exit(overall_exit(firings))
