"""`sweeps plan` says how long a plan takes, in seconds / CPU-hours / GPU-hours with an
interval, calibrated on earlier runs' cell timings or on a probe that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from adv_core.cost import estimate_cost
from sweeps.cli import app
from sweeps.estimate import Calibration, estimate, fit_line
from sweeps.plan import plan
from sweeps.spec import load_spec
from tests import specs


def test_fit_and_estimate_recover_a_known_line(tiny_spec: Path) -> None:
    cost = np.array([0.1, 0.5, 1.0, 2.0, 4.0])
    assert np.allclose(fit_line(cost, 2.0 + 10.0 * cost), (2.0, 10.0))
    assert fit_line(cost, 5.0 - cost)[1] == 0.0  # never a negative rate
    cal = Calibration(tuple(cost), tuple(2.0 + 10.0 * cost), "cpu", "test")
    cells = plan(load_spec(tiny_spec))
    want = sum(2.0 + 10.0 * estimate_cost(c) for c in cells)
    est = estimate(cells, cal, workers=4, cpus_per_worker=2.0, gpus_per_worker=1.0)
    assert np.isclose(est.cell_s, want) and np.isclose(est.wall_s, want / 4)
    assert np.isclose(est.cell_s_lo, want) and np.isclose(est.cell_s_hi, want)  # exact fit
    assert np.isclose(est.cpu_hours, want * 2.0 / 3600) and est.gpu_hours == 0.0  # cpu timings
    gpu = estimate(cells, Calibration(cal.cost, cal.wall_s, "cuda", "t"), 4, 1.0, 0.5)
    assert np.isclose(gpu.gpu_hours, want * 0.5 / 3600)
    noisy = Calibration(tuple(cost), tuple(2.0 + 10.0 * cost * (1 + 0.3 * np.sin(cost))), "cpu", "")
    e2 = estimate(cells, noisy, workers=1)
    assert e2.cell_s_lo < e2.cell_s < e2.cell_s_hi  # the interval says the fit is uncertain


def test_plan_prints_a_time_from_earlier_runs(tiny_spec: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    first = CliRunner().invoke(
        app, ["run", str(tiny_spec), "--results", str(results), "--workers", "0", "--quiet"]
    )
    assert first.exit_code == 0, first.output
    more = tmp_path / "more.yaml"  # the same sweep with other seeds: 8 new cells
    more.write_text(specs.tiny_spec(seeds=[2, 3]))
    res = CliRunner().invoke(app, ["plan", str(more), "--results", str(results), "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "8 pending" in res.output and "estimated wall time" in res.output
    assert "CPU-hours" in res.output and "calibrated on 8 cells of 1 earlier run(s)" in res.output
    js = CliRunner().invoke(
        app, ["plan", str(more), "--results", str(results), "--workers", "2", "--json"]
    )
    t = json.loads(js.output)["time"]
    assert t["workers"] == 2 and t["cell_s_lo"] <= t["cell_s"] <= t["cell_s_hi"]
    # the estimate is of the right size: run the 8 cells and compare with their wall_s
    second = CliRunner().invoke(
        app, ["run", str(more), "--results", str(results), "--workers", "0", "--quiet"]
    )
    assert second.exit_code == 0, second.output
    done = pl.read_parquet(results / "metrics" / "**" / "*.parquet")
    runs = sorted(set(done["run_id"]))
    measured = (
        done.filter(pl.col("run_id") != runs[0] if len(runs) > 1 else pl.lit(True))
        .group_by("cell_hash").agg(pl.col("wall_s").first())["wall_s"].sum()
    )  # fmt: skip
    assert measured / 4 < t["cell_s"] < measured * 4, (t, measured)


def test_calibrate_probes_and_writes_nothing(tiny_spec: Path, tmp_path: Path) -> None:
    results = tmp_path / "fresh"
    plain = CliRunner().invoke(app, ["plan", str(tiny_spec), "--results", str(results)])
    assert plain.exit_code == 0 and "--calibrate" in plain.output  # no timings: says how
    res = CliRunner().invoke(
        app, ["plan", str(tiny_spec), "--results", str(results), "--calibrate", "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "estimated wall time" in res.output and "a probe of 3 cells (cpu)" in res.output
    assert not results.exists()


def test_bootstrap_fits_at_once_equal_the_fits_one_by_one() -> None:
    """``fit_lines`` (all resamples at once, closed form) against np.polyfit per resample with
    the same three cases: a line with a, b >= 0, a negative slope (the mean), a negative
    intercept (through the origin)."""
    from sweeps.estimate import fit_lines

    def one(c: np.ndarray, w: np.ndarray) -> tuple[float, float]:
        if len(c) >= 2 and np.ptp(c) > 0:
            b, a = np.polyfit(c, w, 1)
            if a >= 0 and b >= 0:
                return float(a), float(b)
            if b < 0:
                return float(np.mean(w)), 0.0
        return 0.0, float(np.sum(c * w) / np.sum(c * c))

    rng = np.random.default_rng(3)
    cost = rng.uniform(0.1, 2.0, (300, 12))
    slope = rng.choice([-1.0, 0.5, 3.0], (300, 1))
    intercept = rng.choice([-2.0, 0.0, 1.0], (300, 1))
    wall = intercept + slope * cost + rng.normal(0, 0.05, cost.shape)
    a, b = fit_lines(cost, wall)
    ref = np.array([one(c, w) for c, w in zip(cost, wall, strict=True)])
    assert {tuple(np.sign(r).astype(int)) for r in ref} >= {(1, 1), (1, 0), (0, 1)}
    assert np.allclose(a, ref[:, 0], atol=1e-9) and np.allclose(b, ref[:, 1], atol=1e-9)
