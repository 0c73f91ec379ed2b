"""Closed forms against Monte Carlo (THEORY.md section 2)."""

from __future__ import annotations

import numpy as np
import pytest

from adv_core import theory


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("b", [0.0, 0.7])
def test_linear_robust_error_matches_monte_carlo(norm: str, b: float) -> None:
    rng = np.random.default_rng(0)
    d, sigma, eps, n = 20, 2.0, 0.15, 400_000
    theta = rng.choice([-1.0, 1.0], d)
    w = theta + rng.normal(0, 0.8, d)
    y = rng.choice([-1.0, 1.0], n)
    x = y[:, None] * theta + sigma * rng.normal(size=(n, d))
    price = eps * (np.abs(w).sum() if norm == "linf" else np.linalg.norm(w))
    robust = y * (x @ w + b) > price
    expect = float(theory.linear_robust_error(w, b, theta, sigma, eps, norm))
    assert abs((1 - robust.mean()) - expect) < 4 * np.sqrt(expect * (1 - expect) / n) + 1e-4


def test_bayes_error_is_a_floor_for_linear_classifiers() -> None:
    rng = np.random.default_rng(1)
    theta = rng.normal(size=50)
    for eps in (0.0, 0.1, 0.5):
        best = float(theory.bayes_robust_error(theta, 1.0, eps, "linf"))
        w_opt = theory.soft_threshold(theta, eps)
        assert np.isclose(
            float(theory.linear_robust_error(w_opt, 0.0, theta, 1.0, eps, "linf")), best
        )
        for _ in range(20):
            w = w_opt + rng.normal(0, 0.3, 50)
            assert (
                float(theory.linear_robust_error(w, 0.0, theta, 1.0, eps, "linf")) >= best - 1e-12
            )


def test_dense_weak_signal_reference_numbers() -> None:
    # THEORY.md: r = 3, standard error 0.00135; at eps 0.03 optimal robust error 0.020 (d=1e3), 0.5 (d=1e4).
    for d, want in ((1000, 0.020), (10000, 0.5)):
        theta = np.full(d, 3 / np.sqrt(d))
        assert abs(float(theory.bayes_robust_error(theta, 1.0, 0.03, "linf")) - want) < 2e-3
    assert (
        abs(float(theory.bayes_robust_error(np.full(100, 0.3), 1.0, 0.0, "linf")) - 0.00135) < 1e-4
    )


# Hand-derived: 2 Phi(x) - 1 = erf(x / sqrt(2)). Thm 11 with n = 1, d = 2, sigma = 1, eps = 1:
# eps sqrt((sigma^2 + n) / n) = sqrt(2), so inner = erf(1) and the bound is erf(1)^2 / 2.
# With n = 3, d = 4, sigma = 1, eps = sqrt(3/2): eps sqrt(4/3) = sqrt(2) again -> erf(1)^4 / 2.
ERF1 = 0.8427007929497149
SCHMIDT_CASES = [  # (n, d, sigma, eps, bound)
    (1, 2, 1.0, 1.0, ERF1**2 / 2),
    (3, 4, 1.0, 1.5**0.5, ERF1**4 / 2),
    (2, 3, 2.0**0.5, 1.0, ERF1**3 / 2),  # eps sqrt((2 + 2) / 2) = sqrt(2)
]


@pytest.mark.parametrize(("n", "d", "sigma", "eps", "want"), SCHMIDT_CASES)
def test_schmidt_bound_equals_the_hand_derived_number(
    n: int, d: int, sigma: float, eps: float, want: float
) -> None:
    # fails if d/2 replaces d (erf(1)^1 / 2 = 0.42 for the first case) or the sqrt is dropped
    assert float(theory.schmidt_lower_bound(n, d, sigma, eps)) == pytest.approx(want, rel=1e-9)


def test_schmidt_bound_columns_of_analysis_use_the_same_numbers() -> None:
    from analysis import theory as atheory

    b = atheory.schmidt_bound([1], [2], [1.0], sigma_c=None, sigma=1.0)
    assert b["any_learner_robust_acc"][0] == pytest.approx(1 - ERF1**2 / 2, rel=1e-9)
    g = atheory.gaussian([4], [1.5**0.5], [3], theta="normal", sigma=1.0)
    assert g["any_learner_robust_acc"][0] == pytest.approx(1 - ERF1**4 / 2, rel=1e-9)


@pytest.mark.parametrize(("d", "n"), [(256, 2), (1024, 4), (1024, 16)])
def test_mean_estimator_closed_form_matches_monte_carlo(d: int, n: int) -> None:
    # draw the training set, form w = mean(y x), take its exact population robust error
    rng = np.random.default_rng(d + n)
    sigma, eps, draws = d**0.25, 0.6, 300
    theta = np.ones(d)
    errs = []
    for _ in range(draws):
        y = rng.choice([-1.0, 1.0], n)
        x = y[:, None] * theta + sigma * rng.standard_normal((n, d))
        w = (y[:, None] * x).mean(0)
        errs.append(float(theory.linear_robust_error(w, 0.0, theta, sigma, eps, "linf")))
    want = float(theory.mean_estimator_robust_error(n, d, sigma, eps))
    assert abs(np.mean(errs) - want) < 0.015  # large-d value; finite-d gap < 0.01 here


def _bernoulli_mc(tau: float, d: int, eps: float, box: bool, n: int, seed: int) -> float:
    """Robust error of sign(<theta, x>) under the optimal linf attack, found independently:
    push every coordinate by eps against y theta_j, clipped to [-1, 1] when boxed."""
    rng = np.random.default_rng(seed)
    theta = rng.choice([-1.0, 1.0], d)
    y = rng.choice([-1.0, 1.0], n)
    agree = rng.random((n, d)) < (1 + tau) / 2
    x = y[:, None] * theta * np.where(agree, 1.0, -1.0)
    x_adv = x - eps * y[:, None] * theta
    if box:
        x_adv = np.clip(x_adv, -1.0, 1.0)
    return float(np.mean(y * (x_adv @ theta) <= 0))  # ties are errors


@pytest.mark.parametrize("box", [False, True], ids=["paper", "boxed"])
@pytest.mark.parametrize("eps", [0.0, 0.15, 0.25, 0.4, 1.2])
def test_bernoulli_robust_error_matches_monte_carlo(box: bool, eps: float) -> None:
    tau, d, n = 0.25, 101, 40_000
    mc = _bernoulli_mc(tau, d, eps, box, n, seed=int(100 * eps) + box)
    want = float(theory.bernoulli_robust_error(tau, d, eps, box))
    assert abs(mc - want) < 4 * np.sqrt(max(want * (1 - want), 1e-4) / n) + 1e-3


@pytest.mark.parametrize("tau", [0.1, 0.25, 0.5])
def test_bernoulli_critical_eps_by_box(tau: float) -> None:
    assert float(theory.bernoulli_critical_eps(tau)) == pytest.approx(tau)
    crit = float(theory.bernoulli_critical_eps(tau, box=True))
    assert crit == pytest.approx(2 * tau / (1 + tau))
    d = 40_000  # the exact error jumps from ~0 to ~1 across the critical eps at large d
    for box, c in ((False, tau), (True, crit)):
        lo, hi = theory.bernoulli_robust_error(tau, d, [c - 0.03, c + 0.03], box)
        assert lo < 0.01 and hi > 0.99
