"""What the command modules of the ``sweeps`` CLI share: the consoles, the options that several
commands take (each defined once here), and the input checks that exit 2.

Kept light: nothing here imports torch, Ray or the runner (commands import those inside their
functions), so ``sweeps --help`` and ``sweeps validate`` start fast."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from sweeps.exit_codes import EXIT_INVALID

if TYPE_CHECKING:  # the spec models (pydantic) load only for commands that read a spec
    from sweeps.spec import SweepSpec

out = Console()
err = Console(stderr=True)

SpecArg = Annotated[Path, typer.Argument(help="Sweep spec (YAML).", show_default=False)]
ResultsOpt = Annotated[
    str,
    typer.Option(
        "--results", help="Results root: a folder or a pyarrow URI such as s3://bucket/prefix."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
RunIdOpt = Annotated[str | None, typer.Option("--run-id")]
SweepOpt = Annotated[str | None, typer.Option("--sweep")]
MaxCellsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-cells",
        min=1,
        help="Confirm a grid of up to this many cells (overrides the spec's max_cells).",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Worker actors (default: one per GPU, or per CPU slot); 0 runs inline without Ray.",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Ray auth token (default: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).",
    ),
]
# `--address` of the commands that run cells (run, nightly, schedule): the Ray cluster to join.
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Existing Ray cluster (else RAY_ADDRESS, else an embedded local cluster).",
    ),
]
# `--address` of the commands that talk to the Ray Jobs API (submit, logs).
JobsAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", help="Ray Jobs API address, e.g. http://HEAD:8265 (else RAY_ADDRESS)."
    ),
]


def fail_invalid(errors: list[tuple[str, str]]) -> NoReturn:
    """Print one message per error naming the field or option, then exit 2."""
    for path, msg in errors:
        err.print(
            f"[red]error[/red] {escape(path)}: {escape(msg)}", highlight=False, soft_wrap=True
        )
    raise typer.Exit(EXIT_INVALID)


def read_spec(path: Path, max_cells: int | None = None) -> SweepSpec:
    from sweeps.spec import SpecError, load_spec

    try:
        return load_spec(path, max_cells)
    except SpecError as exc:
        fail_invalid(exc.errors)


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
    from sweeps.spec import RUN_ID_PATTERN

    if run_id is not None and not re.fullmatch(RUN_ID_PATTERN, run_id):
        fail_invalid([("--run-id", f"{run_id!r} must match {RUN_ID_PATTERN}")])


def check_unit(name: str, value: float) -> None:
    """A probability-like option in [0, 1)."""
    if not 0.0 <= value < 1.0:
        fail_invalid([(name, f"must be in [0, 1), got {value}")])
