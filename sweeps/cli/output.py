"""How the CLI prints: tables that never cut a value, plain text when piped, JSON on request,
and quiet logs unless ``--verbose``.

On a terminal a table is drawn with rich, folding long cells onto more lines instead of cutting
them; when stdout is not a terminal (a pipe, a file) it is tab-separated values with a header
row, one record per line, every id and path whole, so ``cut``, ``awk`` and spreadsheets read it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

VERBOSE_ENV = "SWEEPS_VERBOSE"  # read by cluster.connect (Ray's log level) and child processes
QUIET_LOGGERS = ("ray", "traitlets", "nbclient", "filelock")


def is_terminal() -> bool:
    return sys.stdout.isatty()


def set_verbosity(verbose: bool) -> None:
    """Quiet by default: only warnings of our own and errors; ``verbose`` shows Ray's and
    Jupyter's INFO logs and warnings too (also in child processes, through SWEEPS_VERBOSE)."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
        logging.basicConfig(level=logging.INFO)
        return
    os.environ.pop(VERBOSE_ENV, None)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def cell(value: Any) -> str:
    """A value as table text: None empty, floats short, everything else as is (never cut)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def tsv_field(value: Any) -> str:
    return cell(value).replace("\t", " ").replace("\n", " ")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """A table on stdout: rich (folded, nothing cut) on a terminal, TSV otherwise."""
    if not is_terminal():
        lines = ["\t".join(columns)] + ["\t".join(tsv_field(v) for v in r) for r in rows]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*(cell(v) for v in r))
    Console().print(table)


def print_line(text: str) -> None:
    """One line of plain text, never wrapped or highlighted (paths stay whole when piped)."""
    sys.stdout.write(text + "\n")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
