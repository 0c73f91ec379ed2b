"""``python -m benchmarks [--quick] [--only 1,4] [--out DIR]``: run the benchmarks, print the
table, write ``<timestamp>.json`` (and ``latest.json`` for a full run into the default folder).

Exit status 1 when a benchmark raised (its error is printed and saved); timings never fail.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks.core import FULL, QUICK, RESULTS_DIR, Measurement, Scale, save, table

# Benchmark modules and the issue items each one measures, in the order they run.
MODULES: dict[str, tuple[int, ...]] = {
    "attack_bench": (1, 2, 3),
    "autoattack_bench": (1,),
    "curve_bench": (3,),
    "train_bench": (4,),
    "engine_bench": (5,),
    "analysis_bench": (6,),
    "demo_bench": (7,),
    "scale_bench": (8,),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repetition (smoke test)")
    p.add_argument("--only", default="", help="comma-separated item numbers 1-8 (default: all)")
    p.add_argument(
        "--scale-cells",
        type=int,
        default=None,
        help="cells of the large sweep, item 8 (default: 100,000; quick: 40)",
    )
    p.add_argument("--out", type=Path, default=None, help=f"JSON folder (default {RESULTS_DIR})")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads in this process (default 1, like a 1-CPU sweep worker; more "
        "threads on a shared machine make timings far noisier)",
    )
    return p.parse_args(argv)


def _selected(only: str) -> list[str]:
    # item 8 (a 100,000-cell sweep, most of an hour on 2 cores) runs only when asked for
    items = {int(s) for s in only.split(",") if s.strip()} if only else set(range(1, 8))
    unknown = items - {i for v in MODULES.values() for i in v}
    if unknown:
        raise SystemExit(f"unknown benchmark items {sorted(unknown)}; known: 1-8")
    return [name for name, nums in MODULES.items() if items & set(nums)]


def run_all(names: list[str], scale: Scale) -> tuple[list[Measurement], dict[str, str]]:
    rows: list[Measurement] = []
    errors: dict[str, str] = {}
    for name in names:
        fn: Callable[[Scale], list[Measurement]] = importlib.import_module(f"benchmarks.{name}").run
        t0 = time.perf_counter()
        try:
            got = fn(scale)
        except Exception:  # one broken benchmark must not hide the others' numbers
            errors[name] = traceback.format_exc(limit=8)
            print(f"[{name}] FAILED:\n{errors[name]}", file=sys.stderr, flush=True)
            continue
        rows += got
        print(f"[{name}] done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        print(table(got), file=sys.stderr, flush=True)
    return rows, errors


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    import torch

    from cluster.allocator import tune_allocator

    torch.set_num_threads(args.threads)
    tune_allocator()  # as every sweep worker does (cluster.worker.CellRunner): both sides gain
    scale = QUICK if args.quick else FULL
    if args.scale_cells:
        scale = dataclasses.replace(scale, scale_cells=args.scale_cells)
    t0 = time.perf_counter()
    rows, errors = run_all(_selected(args.only), scale)
    wall = time.perf_counter() - t0
    out_dir = args.out or RESULTS_DIR
    latest = not args.quick and not args.only and args.out is None
    path = save(rows, scale, out_dir, wall, errors, latest=latest)
    print(table(rows))
    print(f"\n{scale.name} run, {wall:.1f} s; results: {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
