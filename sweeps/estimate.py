"""Wall time of a plan in the units people budget in: seconds on the target, CPU-hours and
GPU-hours, with an interval.

A calibration maps a cell's relative cost (``adv_core.cost.estimate_cost``) to seconds:
wall_s = a + b * cost, a the per-cell overhead, b seconds per cost unit, fitted by least squares
(a, b >= 0) on cells timed before: the ``wall_s`` of earlier runs' rows in the results root
(same sweep first), or a short probe that runs a few of the plan's cells in this process and
writes nothing (``sweeps plan --calibrate``). The interval resamples the calibration cells
(bootstrap) and refits; it covers the fit's uncertainty, not cells unlike the calibration ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adv_core.config import Cell
from adv_core.cost import estimate_cost, estimate_costs
from sweeps.store import METRICS, ResultStore

MAX_CALIBRATION_CELLS = 2000
N_BOOT = 400
TIMED_COLUMNS = ["cell_hash", "status", "wall_s", "device", "config"]


@dataclass(frozen=True)
class Calibration:
    """Timed cells: their relative cost, their wall seconds, the device they ran on."""

    cost: tuple[float, ...]
    wall_s: tuple[float, ...]
    device: str  # "cpu" or "cuda"
    source: str  # what was timed, in words

    def fit(self, idx: np.ndarray | None = None) -> tuple[float, float]:
        return fit_line(np.asarray(self.cost), np.asarray(self.wall_s), idx)


def fit_line(
    cost: np.ndarray, wall: np.ndarray, idx: np.ndarray | None = None
) -> tuple[float, float]:
    """(a, b) of wall = a + b * cost, least squares with a, b >= 0."""
    c, w = (cost, wall) if idx is None else (cost[idx], wall[idx])
    a, b = fit_lines(np.asarray(c, dtype=float)[None, :], np.asarray(w, dtype=float)[None, :])
    return float(a[0]), float(b[0])


def fit_lines(cost: np.ndarray, wall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fit_line`` of each row of ``cost`` / ``wall`` (samples x cells) at once: ordinary least
    squares where it gives a, b >= 0; the mean wall (b = 0) where the slope is negative; else
    (and where all costs are equal) the line through the origin."""
    n = cost.shape[1]
    sc, sw = cost.sum(1), wall.sum(1)
    scc, scw = (cost * cost).sum(1), (cost * wall).sum(1)
    spread = (np.ptp(cost, axis=1) > 0) if n >= 2 else np.zeros(len(cost), dtype=bool)
    den = np.where(spread, n * scc - sc * sc, 1.0)
    b_ols = np.where(spread, (n * scw - sc * sw) / den, 0.0)
    a_ols = np.where(spread, (sw - b_ols * sc) / max(n, 1), 0.0)
    origin = np.where(scc > 0, scw / np.where(scc > 0, scc, 1.0), 0.0)
    ols = spread & (a_ols >= 0) & (b_ols >= 0)
    flat = spread & (b_ols < 0)
    a = np.where(ols, a_ols, np.where(flat, sw / max(n, 1), 0.0))
    b = np.where(ols, b_ols, np.where(flat, 0.0, origin))
    return a, b


@dataclass(frozen=True)
class TimeEstimate:
    """Cell-seconds summed over the plan (point, 5% and 95%), and the wall time on
    ``workers`` workers (at least the longest cell)."""

    cell_s: float
    cell_s_lo: float
    cell_s_hi: float
    wall_s: float
    wall_s_lo: float
    wall_s_hi: float
    workers: int
    cpu_hours: float
    gpu_hours: float
    calibration: str

    def describe(self) -> str:
        return (
            f"estimated wall time {human(self.wall_s)} on {self.workers} worker"
            f"{'s' * (self.workers != 1)} (90% interval {human(self.wall_s_lo)} to "
            f"{human(self.wall_s_hi)}); {self.cpu_hours:.3g} CPU-hours, "
            f"{self.gpu_hours:.3g} GPU-hours; calibrated on {self.calibration}"
        )


def human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(
    cells: Sequence[Cell],
    cal: Calibration,
    workers: int,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
) -> TimeEstimate:
    """Seconds for ``cells`` from ``cal``, with a bootstrap 90% interval."""
    costs = np.array(estimate_costs(cells), dtype=float)
    rng = np.random.default_rng(0)
    c, wall = np.asarray(cal.cost, dtype=float), np.asarray(cal.wall_s, dtype=float)
    idx = rng.integers(0, len(c), (N_BOOT, len(c)))  # bootstrap resamples, refitted at once
    a_s, b_s = fit_lines(c[idx], wall[idx])
    totals = a_s * len(costs) + b_s * costs.sum()  # a, b >= 0: sums and maxima in closed form
    longest = a_s + b_s * costs.max(initial=0.0) if len(costs) else np.zeros(N_BOOT)
    a, b = cal.fit()
    point = a + b * costs
    w = max(1, workers)
    lo, hi = np.quantile(totals, [0.05, 0.95])
    long_lo, long_hi = np.quantile(longest, [0.05, 0.95])
    total = float(point.sum())
    gpu = gpus_per_worker if cal.device.startswith("cuda") else 0.0
    return TimeEstimate(
        cell_s=total, cell_s_lo=float(lo), cell_s_hi=float(hi),
        wall_s=max(total / w, float(point.max(initial=0.0))),
        wall_s_lo=max(float(lo) / w, float(long_lo)), wall_s_hi=max(float(hi) / w, float(long_hi)),
        workers=w, cpu_hours=total * cpus_per_worker / 3600, gpu_hours=total * gpu / 3600,
        calibration=cal.source,
    )  # fmt: skip


def from_results(store: ResultStore, sweep: str) -> Calibration | None:
    """Timed ok cells of earlier runs: this sweep's when it has at least 3, else every
    sweep's (at most MAX_CALIBRATION_CELLS, newest runs first). None when there are none."""
    for sweeps in ([sweep], [s for s in store.sweeps() if s != sweep]):
        cal = _timed_cells(store, [s for s in sweeps if s in store.sweeps()], sweep)
        if cal is not None and len(cal.cost) >= 3:
            return cal
    return None


def _timed_cells(store: ResultStore, sweeps: list[str], own: str) -> Calibration | None:
    seen: dict[str, tuple[float, float, str]] = {}
    runs = set()
    costs: dict[str, float] = {}  # a cell's config without its seed and label -> its cost
    for s in sweeps:
        for run_id in sorted(store.runs(s), reverse=True):
            for r in _timed_rows(store, s, run_id):
                h = r["cell_hash"]
                if h in seen or r["status"] != "ok" or not r["wall_s"] or not r["config"]:
                    continue
                c = _cost(r["config"], costs)
                if c is None:
                    continue
                seen[h] = (c, float(r["wall_s"]), str(r["device"] or "cpu"))
                runs.add((s, run_id))
                if len(seen) >= MAX_CALIBRATION_CELLS:
                    break
            if len(seen) >= MAX_CALIBRATION_CELLS:
                break
    if not seen:
        return None
    cost = tuple(v[0] for v in seen.values())
    wall = tuple(v[1] for v in seen.values())
    n_gpu = sum(v[2].startswith("cuda") for v in seen.values())
    device = "cuda" if n_gpu > len(seen) / 2 else "cpu"
    which = f"sweep {own}" if sweeps == [own] else "other sweeps"
    return Calibration(
        cost, wall, device, f"{len(cost)} cells of {len(runs)} earlier run(s) of {which} ({device})"
    )


def _timed_rows(store: ResultStore, sweep: str, run_id: str) -> Iterator[dict[str, Any]]:
    """A run's metrics rows, file by file and batch by batch, so a calibration that has its
    cells stops reading (a 100k-cell run's rows are not all read to time 2000 cells)."""
    files, _ = store.partition_files(METRICS, sweep, run_id)
    for f in files:
        try:
            with store.fs.open_input_file(f) as handle:
                for batch in pq.ParquetFile(handle).iter_batches(2048, columns=TIMED_COLUMNS):
                    yield from batch.to_pylist()
        except (pa.ArrowInvalid, OSError):  # unreadable: `sweeps status` lists it
            continue


def _cost(config: str, memo: dict[str, float]) -> float | None:
    """The cost of a row's cell, parsed once per configuration (seeds and labels aside)."""
    doc = json.loads(config)
    doc.pop("seed", None)
    doc.pop("sweep", None)
    key = json.dumps(doc, sort_keys=True)
    if key not in memo:
        try:
            memo[key] = estimate_cost(Cell.from_json(config))
        except ValueError:  # a cell of an older config version
            memo[key] = -1.0
    return memo[key] if memo[key] >= 0 else None


def probe(cells: Sequence[Cell], k: int = 3, device: str = "cpu") -> Calibration:
    """Run ``k`` of ``cells`` (the cheapest, and ones at the middle of the cost range) in this
    process, writing nothing, and time them."""
    from adv_core.run import run_cell

    ordered = sorted(cells, key=estimate_cost)
    picks = sorted({round(q * (len(ordered) - 1) / 2) for q in range(min(k, len(ordered)))})
    cost, wall = [], []
    for i in picks:
        t0 = time.perf_counter()
        run_cell(ordered[i], device)
        wall.append(time.perf_counter() - t0)
        cost.append(estimate_cost(ordered[i]))
    return Calibration(
        tuple(cost), tuple(wall), device, f"a probe of {len(picks)} cells ({device})"
    )
