"""Item 8: a large sweep of tiny cells (gaussian, linear, one FGSM: the engine benchmark's
cells) through the real CLI on the local cluster, then the commands that read the results,
with no manual command in between (issue 17):

- ``sweeps run`` as a subprocess: wall, cells/s, the driver's CPU per cell (the manifest's
  ``driver_cpu_s``: all threads of the driver process, Ray's included), files on disk after it;
- ``sweeps status --json`` and ``sweeps plan`` (the resume check: which cells are done) as
  fresh subprocesses (interpreter start included), against budgets of 2 s and 3 s;
- ``analysis.load(root).collect()`` of every row, in this process, against 1 s.

Sizes: ``FULL.scale_cells`` (100,000), ``--scale-cells N`` to choose (10,000: the quick variant
of the issue), ``QUICK.scale_cells`` for the smoke test.

The two phases also run on their own, into a folder that is kept (the 100,000-cell sweep takes
most of two hours on 2 cores; its root can then be read again by a later checkout):

    python -m benchmarks.scale_bench --cells 100000 --dir DIR --phase sweep   # DIR/sweep.json
    python -m benchmarks.scale_bench --dir DIR --phase read                   # DIR/read.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.core import Measurement, Scale
from benchmarks.demo_bench import ROOT, sweeps_cmd
from benchmarks.engine_bench import SPEC

BUDGETS_S = {"status": 2.0, "resume check": 3.0, "analysis.load": 1.0}


def spec_text(n: int) -> str:
    """The engine benchmark's spec with enough seeds for ``n`` cells (4 per seed)."""
    k = max(1, -(-n // 4))
    return SPEC.format(seeds=json.dumps(list(range(k)))) + f"max_cells: {4 * k}\n"


def _timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall, proc.stdout


def files_under(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def sweep_phase(n: int, tmp: Path) -> dict[str, Any]:
    """``sweeps run`` of ``n`` cells into ``tmp/results``; the run's own figures."""
    spec = tmp / "scale.yaml"
    spec.write_text(spec_text(n))
    results = str(tmp / "results")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run_s, _ = _timed(
        [*sweeps_cmd(), "run", str(spec), "--results", results, "--run-id", "big", "--quiet"], env
    )
    manifest = _manifest(Path(results))
    return {
        "cells": int(manifest["cells"]), "run_s": run_s, "sweep_wall_s": manifest["wall_s"],
        "cell_s": manifest["cell_s"], "driver_cpu_s": manifest.get("driver_cpu_s"),
        "files": files_under(Path(results)),
    }  # fmt: skip


def read_phase(tmp: Path) -> dict[str, Any]:
    """The commands that read what the sweep in ``tmp`` left: status, the resume check, load."""
    spec, results = tmp / "scale.yaml", str(tmp / "results")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = sweeps_cmd()
    status_s, status_out = _timed([*cmd, "status", "--results", results, "--json"], env)
    plan_s, plan_out = _timed(
        [*cmd, "plan", str(spec), "--results", results, "--run-id", "big", "--json"], env
    )
    pending = json.loads(plan_out)["pending"]
    from analysis import load  # imported before the clock starts: the read is what is timed

    t0 = time.perf_counter()
    rows = load(results).collect().height
    load_s = time.perf_counter() - t0
    if pending:
        raise RuntimeError(f"scale benchmark: {pending} cells still pending after the run")
    return {
        "status_s": status_s, "resume_check_s": plan_s, "load_s": load_s, "rows": rows,
        "status_runs": len(json.loads(status_out)["runs"]),
    }  # fmt: skip


def measure(n: int, tmp: Path) -> dict[str, Any]:
    return {**sweep_phase(n, tmp), **read_phase(tmp)}


def _manifest(results: Path) -> dict[str, Any]:
    from sweeps.store import ResultStore

    doc = ResultStore(str(results)).read_manifest("big")
    if doc is None:
        raise RuntimeError(f"no manifest for run big under {results}")
    return doc


def run(scale: Scale) -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        m = measure(scale.scale_cells, Path(tmp))
    n, label = m["cells"], f"{m['cells']:,} cells"
    driver_ms = 1e3 * m["driver_cpu_s"] / n if m["driver_cpu_s"] is not None else None
    details = {**m, "cells_per_s": n / m["sweep_wall_s"], "driver_cpu_ms_per_cell": driver_ms}
    rows = [
        Measurement(
            "8 large sweep",
            f"{label}: sweeps run ({n / m['sweep_wall_s']:.1f} cells/s, {m['files']:,} files)",
            (m["cell_s"] / scale.workers) / m["sweep_wall_s"],
            0.9,
            higher_is_better=True,
            ours_s=m["sweep_wall_s"],
            reference_s=m["cell_s"] / scale.workers,
            reference="ideal",
            details=details,
        )
    ]
    for what, key in (("status", "status_s"), ("resume check", "resume_check_s"), ("analysis.load", "load_s")):  # fmt: skip
        rows.append(
            Measurement(
                "8 large sweep",
                f"{label}: {what} (time / {BUDGETS_S[what]:g} s)",
                m[key] / BUDGETS_S[what],
                1.0,
                ours_s=m[key],
                reference_s=BUDGETS_S[what],
                reference="budget",
                details={"rows": m["rows"]} if what == "analysis.load" else {},
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale_bench", description=__doc__)
    p.add_argument("--dir", required=True, type=Path, help="kept folder: spec, results, JSON")
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--phase", choices=["sweep", "read", "both"], default="both")
    args = p.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.phase in ("sweep", "both"):
        _save(args.dir / "sweep.json", sweep_phase(args.cells, args.dir))
    if args.phase in ("read", "both"):
        _save(args.dir / "read.json", read_phase(args.dir))


def _save(path: Path, got: dict[str, Any]) -> None:
    path.write_text(json.dumps(got, indent=1))
    print(json.dumps(got, indent=1), flush=True)


if __name__ == "__main__":
    main()
