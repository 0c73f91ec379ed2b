"""``sweeps submit`` and ``sweeps logs``: a sweep as a Ray job on a running cluster."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sweeps.cli.common import (
    JobsAddressOpt,
    ResultsOpt,
    RunIdOpt,
    SpecArg,
    TokenOpt,
    WorkersOpt,
    err,
    fail_invalid,
    read_spec,
)
from sweeps.exit_codes import EXIT_INVALID


def _jobs_address(address: str | None) -> str:
    from sweeps.submit import jobs_address

    addr = jobs_address(address)
    if addr is None:
        fail_invalid([("--address", "need the Jobs API address http://HEAD:8265 (or RAY_ADDRESS)")])
    return str(addr)


def submit(
    spec: SpecArg,
    address: JobsAddressOpt = None,
    results: ResultsOpt = "results",
    run_id: RunIdOpt = None,
    workers: WorkersOpt = None,
    token: TokenOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Stream the job's output; exit with its exit code.")
    ] = False,
    python: Annotated[
        str, typer.Option("--python", help="The cluster's Python that runs the job.")
    ] = "python",
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="First check (a small job) that the cluster's Python has the dependencies.",
        ),
    ] = True,
) -> None:
    """Submit the sweep to a running Ray cluster as a Ray job; prints the job id. A small
    preflight job first checks that the cluster's Python can import the project's
    dependencies, and says in one line what is missing and how to fix it (exit 2)."""
    from sweeps import submit as jobs

    read_spec(spec)  # invalid specs stop here (exit 2), before anything is uploaded
    addr = _jobs_address(address)
    if preflight:
        from sweeps.preflight import check

        msg = check(jobs.client(addr, token), python)
        if msg:
            err.print(msg, highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_INVALID)
    req = jobs.JobRequest(spec, results, run_id, workers, python)
    job_id = jobs.submit(req, addr, token)
    sys.stdout.write(job_id + "\n")
    sys.stdout.flush()
    if follow:
        raise typer.Exit(jobs.follow(jobs.client(addr, token), job_id, sys.stdout.write))


def logs(
    job_id: Annotated[str, typer.Argument(help="Job id printed by `sweeps submit`.")],
    address: JobsAddressOpt = None,
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
