"""Transitions and exponent fits recover known values from synthetic rows written through the
results schema (tests/analysis/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from synthetic_results import DENSE_R, KNOWN_EXPONENT, SC_DIMS, slope

from analysis import claims, load
from analysis.load import with_dataset_params
from analysis.transitions import crossing, fit_exponent, transition_exponent

XS = np.array([1.0, 2.0, 4.0, 8.0])
SLACK = 0.02


@pytest.mark.parametrize(
    "acc,threshold,direction,log_x,expected,censored",
    [
        pytest.param([0.1, 0.3, 0.7, 0.9], 0.5, "up", True, 2 * np.sqrt(2), False, id="log-mid"),
        pytest.param([0.1, 0.3, 0.7, 0.9], 0.5, "up", False, 3.0, False, id="linear-mid"),
        pytest.param([0.6, 0.7, 0.8, 0.9], 0.5, "up", True, 1.0, True, id="left-censored"),
        pytest.param([0.1, 0.2, 0.3, 0.4], 0.5, "up", True, np.nan, False, id="never"),
        pytest.param([0.9, 0.8, 0.6, 0.4], 0.5, "down", False, 6.0, False, id="down"),
        pytest.param([0.1, 0.5, 0.9, 0.9], 0.5, "up", True, 2.0, False, id="exact-hit"),
    ],
)
def test_crossing_table(
    acc: list[float],
    threshold: float,
    direction: str,
    log_x: bool,
    expected: float,
    censored: bool,
) -> None:
    x, c = crossing(XS, np.array(acc), threshold, direction, log_x)
    assert c is censored
    if np.isnan(expected):
        assert np.isnan(x)
    else:
        assert x == pytest.approx(expected)


def test_fit_exponent_exact_power_law() -> None:
    d = [16, 64, 256, 1024]
    fit = fit_exponent(d, [0.3 * v**0.7 for v in d])
    assert fit.exponent == pytest.approx(0.7)
    assert np.exp(fit.intercept) == pytest.approx(0.3)
    assert fit.points == 4 and fit.replicates == 0


@pytest.fixture(scope="module")
def frame(synthetic_results: Path) -> pl.DataFrame:
    lf = load(str(synthetic_results)).filter(pl.col("sweep") != "nightly")
    return with_dataset_params(lf).collect()


def test_robust_exponent_recovered_with_interval(frame: pl.DataFrame) -> None:
    rows = claims.family(frame, "gaussian", ds_theta="pm1", model="linear", train_method="standard")
    tr = claims.n_transitions(rows, robust_threshold=0.5, standard_threshold=0.8, n_boot=300)
    assert tr is not None and tr.eps == 0.6
    assert tr.robust["d"].to_list() == list(SC_DIMS)
    # each seed shifts its n* (between-seed variation): the seed bootstrap must cover the truth
    assert tr.robust_fit.lo - SLACK <= KNOWN_EXPONENT <= tr.robust_fit.hi + SLACK
    assert abs(tr.robust_fit.exponent - KNOWN_EXPONENT) < 0.08
    assert tr.robust_fit.hi - tr.robust_fit.lo < 0.3
    # the known curve crosses 0.5 at n* = 0.3 d^k (0.95 / 0.5 - 1)^(-1 / slope(d))
    truth = [0.3 * d**KNOWN_EXPONENT * (0.95 / 0.5 - 1) ** (-1 / slope(d)) for d in SC_DIMS]
    np.testing.assert_allclose(tr.robust["x_star"].to_numpy(), truth, rtol=0.35)
    # standard accuracy is past 0.8 from n = 1 at every d: all censored, a bound, no exponent
    assert tr.standard["censored"].all() and tr.standard["bound"].to_list() == ["<= 1"] * 4
    assert tr.standard_fit.points == 0 and np.isnan(tr.standard_fit.exponent)
    assert tr.standard_fit.censored == len(SC_DIMS)
    assert tr.statement("standard").startswith("n* <= 1 at every d")
    ev = tr.standard_evidence
    assert ev is not None and (ev["clean_acc_seed_lo"] > 0.8).all() and (ev["seeds"] == 4).all()


def test_censored_points_are_left_out_of_the_fit() -> None:
    d = [16, 64, 256, 1024]
    y = [1.0, 0.3 * 64**0.5, 0.3 * 256**0.5, 0.3 * 1024**0.5]  # the first is a bound n* <= 1
    fit = fit_exponent(d, y, censored=[True, False, False, False])
    assert fit.exponent == pytest.approx(0.5) and fit.points == 3 and fit.censored == 1
    assert fit_exponent(d, y).exponent != pytest.approx(0.5)  # fitted as a value it biases


def test_bootstrap_over_seed_and_member_units(frame: pl.DataFrame) -> None:
    rows = claims.family(frame, "gaussian", ds_theta="pm1", member=None)
    rows = rows.filter((pl.col("member") >= 0) & (pl.col("eps") == 0.6))
    table, fit = transition_exponent(rows, 0.5, unit=("seed", "member"), n_boot=200)
    assert table["units"].to_list() == [8] * len(SC_DIMS)
    assert fit.lo - SLACK <= KNOWN_EXPONENT <= fit.hi + SLACK


def test_eps_to_break_exponent_is_minus_half(frame: pl.DataFrame) -> None:
    dense = claims.family(frame, "gaussian", ds_theta="dense")
    res = claims.eps_transitions(dense, broken_fraction=0.25, n_boot=200)
    assert res is not None
    table, fit = res
    assert fit.lo - SLACK <= -0.5 <= fit.hi + SLACK and abs(fit.exponent + 0.5) < 0.05
    assert (table["x_star"] * table["d"].cast(pl.Float64).sqrt()).mean() == pytest.approx(
        DENSE_R - 0.674, rel=0.2
    )
