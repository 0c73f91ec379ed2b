"""Item 5: the sweep engine (cluster.scheduler.run_cells over cluster.pool.RayBackend) running
many small cells on a local Ray cluster, against the ideal (sum of cell times / workers) and
against Ray Tune running the same cells, through the same CellRunner and store, as a
grid_search (one trial per cell, ``reuse_actors=True``, the fastest Tune setting here).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from adv_core.config import Cell
from benchmarks.core import Measurement, Scale
from sweeps.plan import plan
from sweeps.rows import RunInfo
from sweeps.sink import RunSink
from sweeps.spec import loads_spec
from sweeps.store import ResultStore

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
"""


def cells(n: int) -> list[Cell]:
    """``n`` small gaussian/linear cells (rounded up to a multiple of 4) from a real spec."""
    spec = loads_spec(SPEC.format(seeds=list(range(max(1, -(-n // 4))))))
    return plan(spec)


def _sink(root: str) -> RunSink:
    return RunSink(ResultStore(root), RunInfo("bench_engine", "bench", "bench"))


def run_engine(todo: list[Cell], root: str, workers: int) -> dict[str, float]:
    """Our engine: actor start-up, then run_cells; returns walls and the summed cell time."""
    import ray

    from cluster.pool import RayBackend
    from cluster.scheduler import run_cells

    sink = _sink(root)
    t0 = time.perf_counter()
    backend = RayBackend(sink, workers, 1.0, 0.0, max_workers=workers)
    try:
        ray.get([a.info.remote() for a in backend.actors])
        t1, cpu1 = time.perf_counter(), time.process_time()
        summary = run_cells(todo, sink, backend, max_retries=0)
        t2, cpu2 = time.perf_counter(), time.process_time()
    finally:
        backend.shutdown()
    if summary.failed:
        raise RuntimeError(f"engine benchmark: {summary.failed} cells failed: {summary.errors}")
    return {
        "startup_s": t1 - t0, "warm_s": t2 - t1, "cold_s": t2 - t0, "cell_s": summary.cell_s,
        "driver_cpu_ms_per_cell": 1e3 * (cpu2 - cpu1) / len(todo),
        "cells_per_s": len(todo) / (t2 - t1),
    }  # fmt: skip


_RUNNERS: dict[str, Any] = {}


def tune_trainable(config: dict[str, Any]) -> None:
    """One Tune trial = one cell, run by the same CellRunner and store as our engine uses."""
    from ray import tune

    from cluster.worker import CellRunner

    root = config["root"]
    if root not in _RUNNERS:  # one runner per (reused) trial process, like our actors
        _RUNNERS[root] = CellRunner(_sink(root), cpus=1.0)
    outcome = _RUNNERS[root].run(Cell.from_json(config["cell"]))
    tune.report({"ok": float(outcome.ok), "cell_s": outcome.wall_s})


def run_tune(todo: list[Cell], root: str, workers: int) -> dict[str, float]:
    """Ray Tune: grid_search over the cells, ``workers`` concurrent 1-CPU trials."""
    from ray import tune

    param_space = {"root": root, "cell": tune.grid_search([c.to_json() for c in todo])}
    tuner = tune.Tuner(
        tune.with_resources(tune_trainable, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(max_concurrent_trials=workers, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(Path(root) / "tune"), name="bench", verbose=0),
    )
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    frame = grid.get_dataframe()
    bad = int((frame["ok"] < 1).sum()) if "ok" in frame else len(todo)
    if grid.errors or bad or len(frame) != len(todo):
        raise RuntimeError(f"tune benchmark: {len(grid.errors)} errors, {bad} failed cells")
    return {"cold_s": wall, "cell_s": float(frame["cell_s"].sum())}


def settle_cluster(n: int) -> None:
    """Wait for Ray's worker pool to answer, so neither side pays the cluster's own start-up."""
    import ray

    @ray.remote(num_cpus=1)
    def noop() -> int:
        return 0

    ray.get([noop.remote() for _ in range(2 * n)])


def _rounds(todo: list[Cell], scale: Scale) -> tuple[dict[str, float], dict[str, float]]:
    """Both sides, in alternating order when there are two rounds (ours-Tune, Tune-ours), each
    into a fresh results root (a reused root would reuse trained models); each side's run with
    the shortest wall (start-up included) is kept."""
    rounds = 2 if scale.repeats > 1 else 1
    ours: list[dict[str, float]] = []
    ref: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        for r in range(rounds):
            sides = [("ours", run_engine, ours), ("tune", run_tune, ref)]
            for name, fn, out in sides if r % 2 == 0 else sides[::-1]:
                out.append(fn(todo, str(Path(tmp) / f"{name}{r}"), scale.workers))
    return min(ours, key=lambda o: o["cold_s"]), min(ref, key=lambda o: o["cold_s"])


def run(scale: Scale) -> list[Measurement]:
    import ray

    from cluster.connect import connect

    todo = cells(scale.n_cells)
    started = not ray.is_initialized()
    connect(None, num_cpus=scale.workers, object_store_mb=128)  # workers get our sys.path
    try:
        settle_cluster(scale.workers)
        ours, ref = _rounds(todo, scale)
        large = _large(scale)
    finally:
        if started:
            ray.shutdown()
    ideal = ours["cell_s"] / scale.workers
    label = f"{len(todo)} cells, {scale.workers} workers"
    return [
        Measurement(
            "5 sweep engine efficiency",
            label + " (ideal / wall)",
            ideal / ours["warm_s"],
            0.9,
            higher_is_better=True,
            ours_s=ours["warm_s"],
            reference_s=ideal,
            reference="ideal",
            details={**ours, "ideal_s": ideal, "efficiency_incl_startup": ideal / ours["cold_s"]},
        ),
        Measurement(
            "5 sweep engine vs Ray Tune",
            label + " (incl. worker start)",
            ours["cold_s"] / ref["cold_s"],
            0.5,
            ours_s=ours["cold_s"],
            reference_s=ref["cold_s"],
            reference="Ray Tune",
            details={"tune": ref, "tune_efficiency": ref["cell_s"] / scale.workers / ref["cold_s"]},
        ),
        *large,
    ]


def _large(scale: Scale) -> list[Measurement]:
    """Engine efficiency on ``scale.engine_cells_large`` cells (issue 17: >= 0.9)."""
    if not scale.engine_cells_large:
        return []
    todo = cells(scale.engine_cells_large)
    with tempfile.TemporaryDirectory(prefix="bench-engine-large-") as tmp:
        ours = run_engine(todo, str(Path(tmp) / "ours"), scale.workers)
    ideal = ours["cell_s"] / scale.workers
    return [
        Measurement(
            "5 sweep engine efficiency",
            f"{len(todo)} cells, {scale.workers} workers (ideal / wall)",
            ideal / ours["warm_s"],
            0.9,
            higher_is_better=True,
            ours_s=ours["warm_s"],
            reference_s=ideal,
            reference="ideal",
            details={**ours, "ideal_s": ideal},
        )
    ]
