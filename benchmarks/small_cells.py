"""Issue 17 item 7 (small cells), the two measurements of BENCHMARKS.md's section, runnable on
any tree for before/after comparisons (run the trees alternately, same conditions):

``python -m benchmarks.small_cells item1 [--reps 15]``: item 1's small-input rows timed in CPU
seconds (``time.process_time``, one torch thread; steadier than wall time on a loaded machine),
our PGD and torchattacks' interleaved, min and median per side.

``python -m benchmarks.small_cells engine [--cells 5000]``: item 5's large row alone (what
``engine_bench._large`` runs): cells/s, mean cell time, efficiency, driver CPU per cell.

``python -m benchmarks.small_cells targets [--reps 3] [--sizes 100 200 400 1000]``: an ensemble
and its members attacked in one call against one call per target (issue 17 item 7), the theory
specs' attacks on MLPs of 2 and 4 members, CPU seconds, and where the gate batches.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
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


TARGET_ATTACKS: list[dict[str, Any]] = [
    # inevitability.yaml's PGD (10 steps, 15 linf eps); sample_complexity-full.yaml's PGD (50
    # steps, 2 restarts) and APGD (100 steps), 5 linf eps
    {"name": "pgd", "norm": "linf", "steps": 10,
     "eps": [0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0]},
    {"name": "pgd", "norm": "linf", "eps": [0, 0.05, 0.1, 0.3, 0.6], "steps": 50, "restarts": 2},
    {"name": "apgd", "norm": "linf", "eps": [0, 0.05, 0.1, 0.3, 0.6], "steps": 100},
]  # fmt: skip


def targets(reps: int, sizes: list[int]) -> None:
    """Each attack of ``TARGET_ATTACKS`` on MLPs (width 32 and 256) of 2 and 4 members trained
    5 epochs on the Gaussian model (d = 64, dense theta), ``sizes`` evaluation points: the
    targets in one call (``attack_targets``) against one call per target, CPU seconds, best
    of ``reps`` interleaved, and whether the gate (``batched_targets``) batches it."""
    import torch

    from adv_core import evaluate
    from adv_core.config import Cell
    from adv_core.run import load_data, run_cell
    from cluster.allocator import tune_allocator

    torch.set_num_threads(1)
    tune_allocator()  # as a sweep worker runs (cluster.worker.CellRunner)
    for width, depth in ((32, 1), (256, 2)):
        for members in (2, 4):
            for n in sizes:
                cell = Cell.model_validate({
                    "sweep": "bench", "n_train": 512, "n_eval": n, "seed": 0,
                    "dataset": {"name": "gaussian", "d": 64, "theta": "dense", "r": 3.0},
                    "model": {"name": "mlp", "width": width, "depth": depth},
                    "training": {"method": "standard", "epochs": 5, "batch_size": 64,
                                 "lr": 0.01},
                    "ensemble_size": members, "attacks": TARGET_ATTACKS,
                })  # fmt: skip
                ens, bundle = run_cell(cell).ensemble, load_data(cell)
                assert ens is not None
                s = evaluate.Setting(cell, ens, bundle, bundle.x_test, bundle.y_test)
                tgts = evaluate.targets(ens)
                for b in evaluate.build_attacks(cell, ens, torch.device("cpu")):
                    one, each = [], []
                    for _ in range(reps):
                        one.append(_cpu(partial(evaluate.attack_targets, s, tgts, b)))
                        each.append(_cpu(partial(_each, s, tgts, b)))
                    row = {
                        "width": width, "members": members, "n": n,
                        "attack": f"{b.cfg.name} {getattr(b.cfg, 'steps', 0)} steps x {len(b.cfg.eps)} eps",
                        "batched_s": min(one), "per_target_s": min(each),
                        "ratio": min(one) / min(each),
                        "gate_batches": evaluate.batched_targets(s, b, tgts),
                        "load": os.getloadavg()[0],
                    }  # fmt: skip
                    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                      for k, v in row.items()}), flush=True)  # fmt: skip


def _each(s: Any, tgts: Any, b: Any) -> None:
    import torch

    for t in tgts:
        gen = torch.Generator().manual_seed(0)
        b.attack(t.model, s.x, s.y, b.cfg.eps, bounds=s.bundle.bounds, generator=gen)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.small_cells", description=__doc__)
    p.add_argument("what", choices=["item1", "engine", "targets"])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--cells", type=int, default=5000)
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400, 1000])
    args = p.parse_args(argv)
    if args.what == "item1":
        item1(args.reps)
    elif args.what == "targets":
        targets(args.reps, args.sizes)
    else:
        engine(args.cells)


if __name__ == "__main__":
    main()
