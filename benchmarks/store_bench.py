"""The results store at scale without running cells: fill a results root the way a sweep's
workers and driver do (``write_cell`` + ``save_model`` per cell, the driver's background
compactor around them where the code has one), then time what reads it:

    python -m benchmarks.store_bench --cells 5000 --root /tmp/store-bench

- files and folders on disk after the "sweep" (no manual command in between);
- ``sweeps status --json`` and ``sweeps plan`` (the resume check) as fresh subprocesses
  (interpreter start included), and the store calls behind them in this process;
- ``analysis.load(root).collect()`` of every row.

The cells are the engine benchmark's (gaussian, linear, one FGSM): one is run for real and its
rows are written for every planned cell (each cell's own columns filled in by the store), so
the files are the size and shape a real sweep writes. Also usable by the scale benchmark to
separate the store's share from the cells'. Works on older checkouts (no compactor: plain
per-cell files), so the same command measures before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
name: bench_engine
seeds: {seeds}
datasets:
  - {{name: gaussian, d: [8, 16], sigma_c: 1.0}}
n_train: [8, 16]
n_eval: 100
models:
  - {{name: linear}}
training:
  - {{method: standard, epochs: 5, batch_size: 16}}
ensemble_size: 1
attacks:
  - {{name: fgsm, norm: linf, eps: [0.0, 0.1, 0.2]}}
resources: {{cpus_per_worker: 1, max_retries: 0}}
max_cells: {max_cells}
"""
RUN_ID = "big"


def spec_text(n: int) -> str:
    k = max(1, -(-n // 4))
    return SPEC.format(seeds=json.dumps(list(range(k))), max_cells=4 * k)


def fill(results: str, spec_file: Path) -> dict[str, float]:
    """Write every planned cell's rows and checkpoint as the workers would."""
    from adv_core import run_cell
    from adv_core.models import ensemble_to_bytes
    from sweeps.plan import plan
    from sweeps.rows import RunInfo
    from sweeps.spec import loads_spec
    from sweeps.store import ResultStore

    try:
        from sweeps.compact import BackgroundCompactor  # type: ignore[attr-defined]
    except ImportError:  # an older checkout: per-cell files only
        BackgroundCompactor = None  # noqa: N806

    spec = loads_spec(spec_file.read_text())
    cells = plan(spec)
    res = run_cell(cells[0])
    weights, config = ensemble_to_bytes(res.ensemble)
    store = ResultStore(results)
    run = RunInfo(spec.name, RUN_ID, "bench")
    compactor: Any = BackgroundCompactor(store, spec.name, RUN_ID) if BackgroundCompactor else None
    t0 = time.perf_counter()
    with compactor if compactor is not None else contextlib.nullcontext():
        for c in cells:
            store.write_cell(run, c, res.rows, res.examples, model_reused=False)
            store.save_model(c.train_hash, weights, config)
    return {"cells": len(cells), "fill_s": time.perf_counter() - t0}


def _timed(args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a subprocess: on a shared machine the CPU time is the steadier."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def measure(results: str, spec_file: Path) -> dict[str, Any]:
    """Files on disk and the time of each reading command (best of two)."""
    from analysis import load
    from sweeps.store import ResultStore

    files = sum(len(f) for _, _, f in os.walk(results))
    dirs = sum(len(d) for _, d, _ in os.walk(results))
    cli = [sys.executable, "-m", "sweeps"]
    out: dict[str, Any] = {"files": files, "dirs": dirs}
    for name, args in {
        "status_s": [*cli, "status", "--results", results, "--json"],
        "plan_s": [*cli, "plan", str(spec_file), "--results", results, "--run-id", RUN_ID],
    }.items():
        wall, cpu = min(_timed(args) for _ in range(2))
        out[name], out[name.replace("_s", "_cpu_s")] = wall, cpu
    store = ResultStore(results)
    t: list[float] = []
    for _ in range(2):
        t0 = time.process_time()
        done, _ = store.cell_status("bench_engine", RUN_ID)
        t.append(time.process_time() - t0)
    out["cell_status_cpu_s"], out["cells_done"] = min(t), len(done)
    t = []
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        df = load(results).collect()
        t.append(time.perf_counter() - t0)
        out["load_cpu_s"] = min(out.get("load_cpu_s", 1e9), time.process_time() - c0)
    out["load_s"], out["rows"] = min(t), df.height
    out["duplicate_rows"] = int(
        df.select("cell_hash", "member", "attack", "eps").is_duplicated().sum()
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.store_bench", description=__doc__)
    p.add_argument("--cells", type=int, default=5000)
    p.add_argument("--root", type=Path, required=True, help="a fresh folder for the results")
    p.add_argument("--measure-only", action="store_true", help="re-measure an existing --root")
    a = p.parse_args()
    a.root.mkdir(parents=True, exist_ok=True)
    spec_file = a.root / "spec.yaml"
    results = str(a.root / "results")
    filled: dict[str, float] = {}
    if not a.measure_only:
        spec_file.write_text(spec_text(a.cells))
        filled = fill(results, spec_file)
    out = {**filled, **measure(results, spec_file)}
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
