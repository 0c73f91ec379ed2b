"""Per-cell scheduling overhead of the Ray backend, measured on an embedded local cluster.

    python -m benchmarks.ray_overhead --cells 64 --workers 2

Runs ``--cells`` trivial cells (a 2-d Gaussian, one training example, one epoch, FGSM at eps 0)
on ``--workers`` actors through the real scheduler and RayBackend, with a sink that keeps
nothing, after the actors have started. The overhead per cell is the workers' idle time spread
over the cells: (wall x workers - sum of the cells' own times) / cells.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from adv_core.config import Cell
from cluster.scheduler import run_cells


class NullSink:
    """A ResultSink that keeps nothing: isolates scheduling from storage."""

    def write_result(self, cell: Cell, rows: Any, examples: Any, **_: Any) -> str:
        return cell.cell_hash

    def write_failure(self, cell: Cell, status: str, error: str, **_: Any) -> str:
        return cell.cell_hash

    def is_done(self, cell_hash: str) -> bool:
        return False

    def load_model(self, train_hash: str) -> None:
        return None

    def save_model(self, train_hash: str, weights: bytes, config: str) -> None:
        return None


def trivial_cells(n: int) -> list[Cell]:
    return [
        Cell.model_validate(
            {
                "sweep": "overhead",
                "dataset": {"name": "gaussian", "d": 2},
                "n_train": 1,
                "n_eval": 8,
                "model": {"name": "linear"},
                "training": {"method": "standard", "epochs": 1},
                "ensemble_size": 1,
                "seed": seed,
                "attacks": [{"name": "fgsm", "norm": "linf", "eps": [0.0]}],
            }
        )
        for seed in range(n)
    ]


def measure(cells: int, workers: int) -> dict[str, float]:
    import ray

    from cluster.connect import connect
    from cluster.pool import RayBackend

    connect(None, num_cpus=workers)
    sink = NullSink()
    backend = RayBackend(sink, workers)
    backend.worker_info()  # wait for the actors (and their torch import) before timing
    run_cells(trivial_cells(workers), sink, backend)  # warm the code paths once
    t0 = time.perf_counter()
    summary = run_cells(trivial_cells(cells), sink, backend, max_retries=0)
    wall = time.perf_counter() - t0
    backend.shutdown()
    ray.shutdown()
    return {
        "cells": cells,
        "workers": workers,
        "wall_s": round(wall, 3),
        "sum_cell_s": round(summary.cell_s, 3),
        "overhead_ms_per_cell": round(1e3 * (wall * workers - summary.cell_s) / cells, 2),
        "ideal_wall_s": round(summary.cell_s / workers, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print(json.dumps(measure(args.cells, args.workers)))


if __name__ == "__main__":
    main()
