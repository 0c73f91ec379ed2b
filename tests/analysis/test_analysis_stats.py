"""Seed-level intervals cover seed-to-seed variation (Wilson on pooled counts does not), fewer
than 3 seeds says so, the exponent over thresholds and the collapse estimate recover planted
values, and the collapse of the closed form sits next to the measured one."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from synthetic_results import KNOWN_EXPONENT

from analysis import claims, load
from analysis.curves import FEW_SEEDS, per_seed, pooled
from analysis.exponents import best_alpha, collapse, exponent_grid, mean_estimator_curve
from analysis.load import with_dataset_params


def _rows(p_seed: list[list[float]], n: int, rng: np.random.Generator) -> pl.DataFrame:
    """One row per (curve point g, seed s) with n_robust ~ Bin(n, p_seed[g][s])."""
    out = []
    for g, ps in enumerate(p_seed):
        for s, p in enumerate(ps):
            k = int(rng.binomial(n, p))
            out.append(
                {"status": "ok", "member": -1, "seed": s, "g": g, "n_robust": k,
                 "n_clean_correct": n, "n_eval": n, "theory_robust_acc": None,
                 "bayes_robust_acc": None, "any_learner_robust_acc": None,
                 "cell_hash": f"{g}-{s}"}
            )  # fmt: skip
    nulls = {c: pl.Float64 for c in ("theory_robust_acc", "bayes_robust_acc")}
    return pl.DataFrame(out, schema_overrides={**nulls, "any_learner_robust_acc": pl.Float64})


def test_seed_interval_covers_between_seed_variation() -> None:
    # the case: 4 seeds x 1000 points, seeds spread by 0.08 around 0.5
    rng = np.random.default_rng(0)
    points = 300
    p_seed = [list(0.5 + 0.08 * rng.standard_normal(4)) for _ in range(points)]
    c = pooled(_rows(p_seed, 1000, rng), ["g"])
    wilson = ((c["robust_acc_lo"] <= 0.5) & (c["robust_acc_hi"] >= 0.5)).mean()
    seed = ((c["robust_acc_seed_lo"] <= 0.5) & (c["robust_acc_seed_hi"] >= 0.5)).mean()
    assert wilson < 0.5 and 0.9 <= seed <= 0.99, (wilson, seed)
    # with no between-seed variation the seed interval is not needlessly wider than ~t/z x
    flat = pooled(_rows([[0.5] * 4] * points, 1000, rng), ["g"])
    width = (flat["robust_acc_seed_hi"] - flat["robust_acc_seed_lo"]).median()
    assert width < 2.5 * (flat["robust_acc_hi"] - flat["robust_acc_lo"]).median()


def test_fewer_than_three_seeds_says_so_and_keeps_the_points() -> None:
    rng = np.random.default_rng(1)
    rows = _rows([[0.4, 0.6]], 500, rng)
    c = pooled(rows, ["g"])
    assert c["seeds"][0] == 2 and c["robust_acc_seed_lo"][0] is None
    assert c["seed_note"][0] == FEW_SEEDS
    assert per_seed(rows, ["g"]).height == 2
    ceiling = c.with_columns(pl.lit(0.1).alias("ceiling"))  # far below: still not a verdict
    assert claims.bound_check(ceiling, "ceiling")["bound_verdict"][0] == "inconclusive"


def _planted(alpha: float, dims: tuple[int, ...], ns: np.ndarray) -> np.ndarray:
    return np.array([[1 / (1 + (n / d**alpha) ** -2.0) for n in ns] for d in dims])


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.8])
def test_collapse_recovers_a_planted_alpha(alpha: float) -> None:
    dims, ns = (64, 256, 1024), np.geomspace(1, 400, 25)
    got = best_alpha(np.log(ns), _planted(alpha, dims, ns), np.log(np.array(dims, float)))
    assert got == pytest.approx(alpha, abs=0.011)


@pytest.fixture(scope="module")
def gauss(synthetic_results: Path) -> pl.DataFrame:
    lf = load(str(synthetic_results), sweep="sample_complexity")
    df = with_dataset_params(lf).collect()
    return claims.family(df, "gaussian", ds_theta="pm1", model="linear", train_method="standard")


def test_exponent_grid_and_collapse_on_synthetic_results(gauss: pl.DataFrame) -> None:
    grid = exponent_grid(gauss, (0.3, 0.5, 0.8), theory=mean_estimator_curve(1.0), n_boot=100)
    at = grid.filter(pl.col("eps") == 0.6).sort("threshold")
    assert at["points"].to_list() == [4, 4, 4] and (at["censored"] == 0).all()
    # the planted curve flattens with d, so a high threshold gives a larger exponent
    assert at["exponent"][2] > at["exponent"][0]
    # the closed form's own threshold exponent at finite d falls with the threshold
    th = at["theory_exponent"].to_list()
    assert th[0] > 0.55 > 0.45 > th[2]
    # eps = 1: robust accuracy 0 everywhere, never crosses: no exponent, not a fitted 0
    assert grid.filter(pl.col("eps") == 1.0)["exponent"].null_count() == 3
    col = collapse(gauss, 0.6, theory=mean_estimator_curve(1.0), n_boot=100)
    assert col is not None and col.lo - 0.02 <= KNOWN_EXPONENT <= col.hi + 0.02
    assert col.hi - col.lo < 0.25 and col.theory_alpha is not None
    assert abs(col.theory_alpha - 0.5) < 0.1
    assert "COLLAPSE alpha (eps=0.6" in col.line()


def test_mean_estimator_curve_collapses_at_half_in_the_large_d_limit() -> None:
    curve = mean_estimator_curve(1.0)
    dims = (10_000, 100_000, 1_000_000)
    ns = np.geomspace(1, 2000, 40)
    acc = np.array([curve(d, ns, 0.6) for d in dims])
    got = best_alpha(np.log(ns), acc, np.log(np.array(dims, float)))
    assert got == pytest.approx(0.5, abs=0.03)
    assert math.isfinite(got)


def test_exponent_evidence_record_for_the_verdicts(gauss: pl.DataFrame) -> None:
    from analysis.exponents import exponent_evidence

    ev = exponent_evidence(gauss, sigma_c=1.0, n_boot=50)
    assert ev is not None and ev.eps == 0.6 and ev.standard_censored
    assert ev.standard_statement.startswith("n* <= 1 at every d")
    assert ev.robust_statement.startswith(f"{ev.robust_fit.exponent:.3f}")
    assert ev.grid.height == 6 * 2 and ev.collapse is not None
