"""The ``sweeps`` command line (typer). Exit codes (sweeps/exit_codes.py): 0 ok; 1 some cells
failed permanently; 2 invalid input; 3 regression.

One module per command group; the options several commands share, the consoles and the input
checks live in ``sweeps.cli.common``. The command modules import nothing back from here: this
module only assembles them into the app. Heavy imports (torch, Ray, the runner) happen inside
the command functions."""

from __future__ import annotations

import os
from typing import Any

import typer

from sweeps.cli import compact, jobs, nightly, results, sweep

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Reproducible adversarial-robustness sweeps on Ray.",
)


@app.callback()
def _options(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show Ray's and Jupyter's logs (quiet by default)."
    ),
) -> None:
    """Reproducible adversarial-robustness sweeps on Ray."""
    from sweeps.cli.output import set_verbosity

    set_verbosity(verbose)


for _command in (
    sweep.validate,
    sweep.plan,
    sweep.run,
    results.status,
    results.report,
    jobs.submit,
    jobs.logs,
    nightly.nightly,
    nightly.schedule,
    compact.compact,
):
    app.command()(_command)


def main() -> Any:  # pragma: no cover - console entry
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # No pydantic plugins here: looking for them reads every installed package's entry points
    # (~0.05 s of each command's start-up); typer already turns them off for its own parsing.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    return app()
