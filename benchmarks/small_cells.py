"""Issue 17 item 7 (small cells), the two measurements of BENCHMARKS.md's section, runnable on
any tree for before/after comparisons (run the trees alternately, same conditions):

``python -m benchmarks.small_cells item1 [--reps 15]``: item 1's small-input rows timed in CPU
seconds (``time.process_time``, one torch thread; steadier than wall time on a loaded machine),
our PGD and torchattacks' interleaved, min and median per side.

``python -m benchmarks.small_cells engine [--cells 5000]``: item 5's large row alone (what
``engine_bench._large`` runs): cells/s, mean cell time, efficiency, driver CPU per cell.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _cpu(fn: Callable[[], Any]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def item1(reps: int) -> None:
    import torch

    from benchmarks.attack_bench import ours_pgd, reference_pgd
    from benchmarks.fixtures import small_targets

    torch.set_num_threads(1)
    for t in small_targets():
        ours, ref = ours_pgd(t, 20, [t.eps]), reference_pgd(t, 20, t.eps)
        robust = float(ours().robust_acc()[0])
        ref()
        so, sr = [], []
        for _ in range(reps):
            so.append(_cpu(ours))
            sr.append(_cpu(ref))
        so.sort()
        sr.sort()
        mid = reps // 2
        row = {
            "target": t.name, "ours_min_ms": 1e3 * so[0], "ref_min_ms": 1e3 * sr[0],
            "ratio_min": so[0] / sr[0], "ratio_median": so[mid] / sr[mid],
            "robust_acc_ours": robust, "load": os.getloadavg()[0],
        }  # fmt: skip
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))


def engine(n_cells: int) -> None:
    import ray

    from benchmarks.engine_bench import cells, run_engine, settle_cluster
    from cluster.connect import connect

    todo = cells(n_cells)
    connect(None, num_cpus=2, object_store_mb=128)
    try:
        settle_cluster(2)
        load0 = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="bench-small-cells-") as tmp:
            ours = run_engine(todo, str(Path(tmp) / "ours"), 2)
    finally:
        ray.shutdown()
    row = {
        "cells": len(todo), "cells_per_s": ours["cells_per_s"],
        "ms_per_cell": 1e3 * ours["cell_s"] / len(todo),
        "efficiency": ours["cell_s"] / 2 / ours["warm_s"],
        "driver_cpu_ms_per_cell": ours["driver_cpu_ms_per_cell"],
        "load_start": load0, "load_end": os.getloadavg()[0],
    }  # fmt: skip
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.small_cells", description=__doc__)
    p.add_argument("what", choices=["item1", "engine"])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--cells", type=int, default=5000)
    args = p.parse_args(argv)
    if args.what == "item1":
        item1(args.reps)
    else:
        engine(args.cells)


if __name__ == "__main__":
    main()
