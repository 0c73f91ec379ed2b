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

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adv_core.config import Cell
from adv_core.cost import estimate_cost
from sweeps.store import METRICS, ResultStore

MAX_CALIBRATION_CELLS = 2000
N_BOOT = 400


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
    if len(c) >= 2 and np.ptp(c) > 0:
        b, a = np.polyfit(c, w, 1)
        if a >= 0 and b >= 0:
            return float(a), float(b)
        if b < 0:
            return float(np.mean(w)), 0.0
    denom = float(np.sum(c * c))
    return 0.0, (float(np.sum(c * w)) / denom if denom > 0 else 0.0)


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
    costs = np.array([estimate_cost(c) for c in cells], dtype=float)
    rng = np.random.default_rng(0)
    n = len(cal.cost)
    totals, longest = [], []
    for _ in range(N_BOOT):
        a, b = cal.fit(rng.integers(0, n, n))
        per_cell = a + b * costs
        totals.append(float(per_cell.sum()))
        longest.append(float(per_cell.max(initial=0.0)))
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
    for s in sweeps:
        for run_id in sorted(store.runs(s), reverse=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unreadable files are listed by status
                t = store.read_table(
                    METRICS,
                    s,
                    run_id,
                    columns=["cell_hash", "status", "wall_s", "device", "config"],
                )
            for r in t.to_pylist():
                h = r["cell_hash"]
                if h in seen or r["status"] != "ok" or not r["wall_s"] or not r["config"]:
                    continue
                try:
                    c = estimate_cost(Cell.from_json(r["config"]))
                except ValueError:  # a cell of an older config version
                    continue
                seen[h] = (c, float(r["wall_s"]), str(r["device"] or "cpu"))
                runs.add((s, run_id))
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
