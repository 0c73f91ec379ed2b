"""Shared pieces of the fault-injection suite: a small spec, an audit of a results root after a
fault (cells lost, duplicate rows, visible partial files, why cells failed), the Ray worker
processes of this test session, and the recorder behind RELIABILITY.md's table.

Set ``SWEEPS_RELIABILITY_OUT=<file.jsonl>`` to make each scenario append its measured figures
(``tests/fault/reliability.py`` does this and prints the table).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import pyarrow.parquet as pq
import yaml

from adv_core.config import Cell
from adv_core.results import rows_per_target
from analysis import load
from sweeps.plan import plan
from sweeps.spec import SweepSpec, loads_spec
from tests.specs import tiny_spec

KEY = ["cell_hash", "member", "attack", "norm", "eps"]
RECORD_ENV = "SWEEPS_RELIABILITY_OUT"


# 12 cells of about half a second each on one CPU: long enough to be killed mid-cell.
def fault_spec_text(
    name: str,
    seeds: str = "[0, 1, 2]",
    training: str = "[{method: standard, epochs: 30, batch_size: 16}]",
    resources: str = "{cpus_per_worker: 1, max_retries: 4}",
) -> str:
    """The tiny spec (tests/specs.py) made slower: an MLP on more points (the arguments are
    YAML)."""
    return tiny_spec(
        name=name,
        seeds=yaml.safe_load(seeds),
        datasets=[{"name": "gaussian", "d": [16, 64]}],
        n_train=[64, 128],
        models=[{"name": "mlp", "width": 32, "depth": 1}],
        training=yaml.safe_load(training),
        ensemble_size=None,
        attacks=[{"name": "fgsm", "norm": "linf", "eps": [0.0, 0.1, 0.2]}],
        resources=yaml.safe_load(resources),
    )


def fault_spec(name: str, **kwargs: str) -> SweepSpec:
    return loads_spec(fault_spec_text(name, **kwargs))


def rows_per_cell(spec: SweepSpec) -> int:
    targets = 1 + (spec.ensemble_size if spec.ensemble_size > 1 else 0)
    return targets * rows_per_target(spec.attacks)


@dataclass
class Audit:
    """What a reader sees in a results root after a fault."""

    cells_expected: int
    cells_lost: int  # planned cells with no rows at all
    duplicate_rows: int  # rows whose (cell, member, attack, norm, eps) key repeats
    partial_visible: int  # non-hidden files that do not parse (a reader would trip on them)
    hidden_tmp: int  # leftover .tmp-* files (invisible to readers)
    status: dict[str, str] = field(default_factory=dict)  # cell_hash -> ok | failed | diverged
    errors: dict[str, str] = field(default_factory=dict)  # cell_hash -> why (failed/diverged)
    rows: int = 0


def visible_files(root: Path) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]


def _parses(p: Path) -> bool:
    try:
        if p.suffix == ".parquet":
            pq.read_metadata(p)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        return True
    except Exception:  # noqa: BLE001 - any parse error means a reader would fail on this file
        return False


def audit(results: Path, spec: SweepSpec, run_id: str, cells: list[Cell] | None = None) -> Audit:
    cells = cells if cells is not None else plan(spec)
    partial = sum(1 for p in visible_files(results) if not _parses(p))
    tmp = sum(1 for p in results.rglob(".tmp-*"))
    df = load(str(results), sweep=spec.name, run=run_id).select(*KEY, "status", "error").collect()
    worst = df.group_by("cell_hash").agg(pl.col("status").first(), pl.col("error").first())
    status = dict(zip(worst["cell_hash"], worst["status"], strict=True))
    errors = {h: e for h, e in zip(worst["cell_hash"], worst["error"], strict=True) if e}
    expected = {c.cell_hash for c in cells}
    return Audit(
        cells_expected=len(expected),
        cells_lost=len(expected - set(status)),
        duplicate_rows=int(df.select(KEY).is_duplicated().sum()),
        partial_visible=partial,
        hidden_tmp=tmp,
        status=status,
        errors=errors,
        rows=df.height,
    )


def assert_complete(a: Audit, spec: SweepSpec, ok_cells: int | None = None) -> None:
    """Every planned cell's rows exist exactly once and nothing half-written is visible."""
    assert a.cells_lost == 0, a
    assert a.duplicate_rows == 0, a
    assert a.partial_visible == 0, a
    if ok_cells is not None:
        assert sum(1 for s in a.status.values() if s == "ok") == ok_cells, a.status
        assert a.rows >= ok_cells * rows_per_cell(spec)
    for h, s in a.status.items():
        if s != "ok":
            assert a.errors.get(h), f"cell {h} is {s} but does not say why"


def file_mtime(results: Path, spec: SweepSpec, run_id: str, cell_hash: str) -> float:
    p = results / "metrics" / f"sweep={spec.name}" / f"run={run_id}" / f"{cell_hash}.parquet"
    return p.stat().st_mtime


def cell_runner_pids(running: bool = False) -> list[int]:
    """Ray worker processes hosting CellRunner actors of this test session's cluster(s); with
    ``running``, only those executing cells right now (Ray titles them
    ``...RayCellRunner.run_batch``)."""
    out = []
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            title = " ".join(p.cmdline())
            if "RayCellRunner" in title and (not running or "RayCellRunner.run" in title):
                out.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(out)


def record(
    scenario: str, what: str, a: Audit | None, recovery_s: float | None, **extra: Any
) -> None:
    """Append one scenario's measured figures to $SWEEPS_RELIABILITY_OUT (when set)."""
    path = os.environ.get(RECORD_ENV)
    if not path:
        return
    entry = {
        "scenario": scenario,
        "what_happened": what,
        "cells": a.cells_expected if a else None,
        "cells_lost": a.cells_lost if a else None,
        "duplicate_rows": a.duplicate_rows if a else None,
        "partial_visible": a.partial_visible if a else None,
        "hidden_tmp": a.hidden_tmp if a else None,
        "recovery_s": None if recovery_s is None else round(recovery_s, 2),
        "time": time.time(),
        **extra,
    }
    with open(path, "a") as f:
        f.write(json.dumps(entry, default=str) + "\n")
