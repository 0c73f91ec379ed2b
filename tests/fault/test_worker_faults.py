"""Faults inside the workers, on the session's real local Ray cluster: worker processes killed
with SIGKILL at random points, a training step that produces NaN, a cell that hangs past its
timeout. After each, every planned cell's rows exist exactly once, nothing half-written is
visible, and cells that did not finish say why."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sweeps.plan import plan
from sweeps.runner import EXIT_FAILED, EXIT_OK, SweepOutcome, run_sweep
from tests.fault.harness import (
    assert_complete,
    audit,
    cell_runner_pids,
    fault_spec,
    file_mtime,
    record,
    rows_per_cell,
)
from tests.fault.inject import HOOK_ENV, hook

pytestmark = pytest.mark.slow


def run_in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread and re-raised
            box["exc"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, box


def result(th: threading.Thread, box: dict[str, Any], timeout: float = 150) -> SweepOutcome:
    th.join(timeout)
    assert not th.is_alive(), "the sweep did not finish"
    if "exc" in box:
        raise box["exc"]
    out: SweepOutcome = box["out"]
    return out


def test_worker_sigkill_at_random_points(
    ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three SIGKILLs of CellRunner worker processes at seeded random times: Ray restarts the
    actors, the driver re-queues the interrupted cells, and the sweep completes."""
    # Every cell lasts at least 1 s, so three kills land mid-sweep however fast the machine.
    monkeypatch.setenv(HOOK_ENV, hook("sleep::1.0"))
    spec = fault_spec("wkill", seeds="[0, 1]")
    results = tmp_path / "results"
    rng = random.Random(9)
    th, box = run_in_thread(lambda: run_sweep(spec, str(results), "w", workers=2))
    metrics = results / "metrics" / "sweep=wkill" / "run=w"
    while th.is_alive() and not list(metrics.glob("[0-9a-f]*.parquet")):
        time.sleep(0.05)  # the sweep is under way once the first cell is done
    kills: list[float] = []
    while len(kills) < 3 and th.is_alive():
        time.sleep(rng.uniform(0.1, 0.6))
        pids = cell_runner_pids(running=True)
        if pids:
            os.kill(rng.choice(pids), signal.SIGKILL)
            kills.append(time.time())
    out = result(th, box)
    a = audit(results, spec, "w")
    assert len(kills) == 3, "the sweep ended before three kills"
    assert out.exit_code == EXIT_OK and out.summary.failed == 0
    assert_complete(a, spec, ok_cells=8)
    retried = [h for h, n in out.summary.attempts.items() if n > 1]
    assert retried, "no kill interrupted a running cell"
    # Recovery: from the kill to the interrupted cell's result file.
    recovery = max(
        (t := file_mtime(results, spec, "w", h)) - max(k for k in kills if k <= t) for h in retried
    )
    record(
        "worker SIGKILL x3 (random points)",
        f"{len(retried)} cells interrupted, re-run on restarted actors",
        a,
        recovery,
        wall_s=out.summary.wall_s,
    )


def test_training_step_nan_gives_diverged_rows(ray_cluster: Any, tmp_path: Path) -> None:
    """A learning rate of 1e30 makes the first training step's loss NaN: those cells end as
    ``diverged`` rows that say why; the sweep neither crashes nor retries them."""
    spec = fault_spec(
        "nan", seeds="[0]", training="[{method: standard, epochs: 5, lr: [0.01, 1.0e+30]}]"
    )
    results = tmp_path / "results"
    t0 = time.time()
    out = run_sweep(spec, str(results), "n", workers=2)
    a = audit(results, spec, "n")
    assert out.exit_code == EXIT_OK, "a diverged cell is a result, not a failure"
    assert_complete(a, spec, ok_cells=4)
    diverged = {h: e for h, e in a.errors.items() if a.status[h] == "diverged"}
    assert len(diverged) == 4 and all("non-finite training loss" in e for e in diverged.values())
    assert all(n == 1 for n in out.summary.attempts.values())  # divergence is not retried
    again = run_sweep(spec, str(results), "n", inline=True)  # nothing left to run
    assert again.skipped == 8 and audit(results, spec, "n").duplicate_rows == 0
    t_div = max(file_mtime(results, spec, "n", h) for h in diverged) - t0
    record("training step NaN (lr 1e30)", "4 cells diverged rows, 4 ok", a, 0.0, to_rows_s=t_div)


def test_cell_hanging_past_its_timeout(
    ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One cell sleeps for an hour; resources.cell_timeout_s kills its worker after 8 s. The
    cell ends as a failed row saying it timed out, the rest complete, and a re-run without the
    fault replaces the failure with results (no duplicate rows)."""
    spec = fault_spec(
        "hang",
        seeds="[0]",
        resources="{cpus_per_worker: 1, max_retries: 0, cell_timeout_s: 8}",
    )
    cells = plan(spec)
    victim = cells[0].cell_hash
    monkeypatch.setenv(HOOK_ENV, hook(f"sleep:{victim}:3600"))
    results = tmp_path / "results"
    t0 = time.time()
    out = run_sweep(spec, str(results), "h", workers=2)
    a = audit(results, spec, "h")
    assert out.exit_code == EXIT_FAILED and out.summary.failed == 1
    assert_complete(a, spec, ok_cells=3)
    assert a.status[victim] == "failed" and "timed out after 8" in a.errors[victim]
    detected_s = file_mtime(results, spec, "h", victim) - t0
    assert 8 <= detected_s < 60
    monkeypatch.delenv(HOOK_ENV)
    t1 = time.monotonic()
    again = run_sweep(spec, str(results), "h", inline=True)  # the user fixed the hang
    recovery = time.monotonic() - t1
    b = audit(results, spec, "h")
    assert again.exit_code == EXIT_OK and again.skipped == 3
    assert_complete(b, spec, ok_cells=4)
    assert b.rows == 4 * rows_per_cell(spec)
    record(
        "cell hangs past cell_timeout_s=8",
        "worker killed at the timeout, failed row says 'timed out after 8 s'; re-run fills it",
        b,
        recovery,
    )
