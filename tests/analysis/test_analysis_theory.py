"""Closed forms (adv_core.theory, as laid out by analysis.theory) against Monte Carlo."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from adv_core import theory as th
from analysis import theory

RNG = np.random.default_rng(0)


def mc_linear_robust_error(w: np.ndarray, theta: np.ndarray, eps: float, n: int = 40_000) -> float:
    """Robust error of sign(w.x) on x = y theta + N(0, I): wrong iff y w.x <= eps ||w||_1."""
    y = RNG.choice([-1.0, 1.0], size=n)
    x = y[:, None] * theta[None, :] + RNG.standard_normal((n, theta.size))
    return float(np.mean(y * (x @ w) <= eps * np.abs(w).sum()))


@pytest.mark.parametrize("d,eps", [(16, 0.3), (64, 0.3), (256, 0.15), (256, 0.3)])
def test_dense_bayes_error_matches_monte_carlo(d: int, eps: float) -> None:
    theta = np.full(d, 3.0 / np.sqrt(d))
    w = th.soft_threshold(theta, eps)  # the Bayes-optimal robust classifier
    closed = float(th.dense_bayes_robust_error(3.0, d, eps))
    assert closed == pytest.approx(float(th.bayes_robust_error(theta, 1.0, eps)), abs=1e-12)
    mc = mc_linear_robust_error(w, theta, eps) if np.any(w) else 1.0
    if np.any(w):
        assert mc == pytest.approx(closed, abs=4 * np.sqrt(closed * (1 - closed) / 40_000) + 1e-3)
    else:  # eps >= r / sqrt(d): every classifier errs on half the points
        assert closed == 0.5


def test_dense_eps_to_break_inverts_the_error() -> None:
    d = np.array([16, 64, 256, 1024])
    eps = th.dense_eps_to_break(3.0, d, 0.25)
    np.testing.assert_allclose(th.dense_bayes_robust_error(3.0, d, eps), 0.25, atol=1e-9)
    np.testing.assert_allclose(eps * np.sqrt(d), eps[0] * 4.0)  # exactly 1/sqrt(d)


@pytest.mark.parametrize("n", [2, 8, 32])
def test_mean_estimator_error_matches_monte_carlo(n: int) -> None:
    """Average exact population robust error of w = mean(y_i x_i) over training draws."""
    d, eps = 1024, 0.6
    sigma = d**0.25
    theta = np.ones(d)
    errs = []
    for _ in range(40):
        w = theta + sigma / np.sqrt(n) * RNG.standard_normal(d)
        errs.append(float(th.linear_robust_error(w, 0.0, theta, sigma, eps)[()]))
    closed = float(th.mean_estimator_robust_error(n, d, sigma, eps))
    assert np.mean(errs) == pytest.approx(closed, abs=0.03)


def test_mean_estimator_n_star_scales_like_sqrt_d() -> None:
    ns = theory.mean_estimator_n_star([64, 256, 1024], eps=0.6, sigma_c=1.0)
    ratios = ns["n_star"].to_numpy()[1:] / ns["n_star"].to_numpy()[:-1]
    np.testing.assert_allclose(ratios, 2.0)
    err = th.mean_estimator_robust_error(
        ns["n_star"].to_numpy(), ns["d"].to_numpy(), ns["d"].to_numpy() ** 0.25, 0.6
    )
    np.testing.assert_allclose(err, 0.5, atol=1e-6)


def test_schmidt_bound_below_monte_carlo_error_of_mean_estimator() -> None:
    """Thm 11 bounds every learner, so the mean estimator's expected error lies above it."""
    d, n, eps, sigma = 64, 1, 1.0, 64**0.25
    errs = []
    for _ in range(200):
        theta = RNG.standard_normal(d)
        w = theta + sigma / np.sqrt(n) * RNG.standard_normal(d)
        errs.append(float(th.linear_robust_error(w, 0.0, theta, sigma, eps)[()]))
    bound = float(th.schmidt_lower_bound(n, d, sigma, eps))
    assert 0.2 < bound < np.mean(errs)
    g = theory.schmidt_bound([n], [d], [eps], sigma_c=1.0)
    assert g["any_learner_robust_acc"][0] == pytest.approx(1 - bound)


def test_tsipras_standard_accuracy_and_bound_monte_carlo() -> None:
    d, p, n = 100, 0.9, 20_000
    eta = 3 / np.sqrt(d)
    y = RNG.choice([-1.0, 1.0], size=n)
    x1 = np.where(RNG.random(n) < p, y, -y)
    weak = eta * y[:, None] + RNG.standard_normal((n, d))
    avg_std = np.mean(np.sign(weak.mean(1)) == y)
    assert avg_std == pytest.approx(float(th.tsipras_standard_accuracy(eta, d)), abs=0.01)
    # eps = 2 eta moves every weak feature's mean to -eta y: the averager's robust accuracy
    avg_rob = np.mean(np.sign((weak - 2 * eta * y[:, None]).mean(1)) == y)
    for std, rob in ((avg_std, avg_rob), (np.mean(np.sign(x1) == y), np.mean(np.sign(x1) == y))):
        assert rob <= float(th.tsipras_robust_bound(p, 1 - std)) + 0.01
    b = theory.tsipras_tradeoff(p, [p, 0.99])
    assert b["robust_acc_bound"].to_list() == pytest.approx([p, p * 0.01 / (1 - p)])


def test_spheres_cap_distance_monte_carlo() -> None:
    """Uniform points on the unit sphere, error set the cap {x_1 > t} of measure mu: the median
    distance to the cap is about Phi^-1(1 - mu) / sqrt(d)."""
    d, mu, n = 400, 0.01, 20_000
    u = RNG.standard_normal((n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    t = np.quantile(u[:, 0], 1 - mu)
    dist = np.maximum(t - u[:, 0], 0.0)  # to the cap's hyperplane (chord differs at O(1/d))
    frame = theory.spheres_distance([mu], [d])
    assert np.median(dist) == pytest.approx(frame["distance"][0], rel=0.05)
    assert frame["distance_sqrt_d"][0] == pytest.approx(float(th.Phi_inv(1 - mu)))
    eps = 0.1  # the half-sphere classifier: robust fraction P(x_1 < -eps) under the bound
    robust = float(np.mean(u[:, 0] < -eps))
    bound = theory.sphere_robust_fraction([eps], [d])["robust_fraction_bound"][0]
    assert 0 < robust <= bound


def test_gaussian_grid_uses_the_adv_core_closed_forms() -> None:
    g = theory.gaussian([16, 64], [0.0, 0.25, 0.5], [1, 4], theta="pm1", sigma_c=1.0)
    assert g.height == 12
    row = g.filter((pl.col("d") == 64) & (pl.col("eps") == 0.25) & (pl.col("n_train") == 4))
    sigma = 64**0.25
    assert row["bayes_robust_acc"][0] == pytest.approx(
        1 - float(th.bayes_robust_error(np.ones(64), sigma, 0.25)[()])
    )
    assert row["mean_estimator_robust_acc"][0] == pytest.approx(
        1 - float(th.mean_estimator_robust_error(4, 64, sigma, 0.25))
    )
    assert g["any_learner_robust_acc"].null_count() == g.height  # only for theta ~ N(0, I)
    dense = theory.dense([16, 64], [0.0, 0.75, 0.375])
    np.testing.assert_allclose(
        dense["bayes_robust_acc"], 1 - th.dense_bayes_robust_error(3.0, dense["d"], dense["eps"])
    )
