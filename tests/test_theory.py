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
