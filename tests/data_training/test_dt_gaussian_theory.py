"""Gaussian cells (Schmidt et al. 2018): the closed forms each row carries against Monte Carlo,
and robust self-training against supervised adversarial training (Carmon et al. 2019)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adv_core import theory
from adv_core.config import Cell
from adv_core.config.attacks import FgsmAttack, PgdAttack
from adv_core.config.data import GaussianData
from adv_core.config.models import LinearModel
from adv_core.config.training import PgdAtTraining, RstTraining, StandardTraining
from adv_core.data import load
from adv_core.models import new_ensemble, stacked_linear_weights
from adv_core.rng import generator
from adv_core.run import load_data, run_cell
from adv_core.stats import wilson
from adv_core.training import train

LINF_EPS = (0.0, 0.2, 0.4, 0.8)
L2_EPS = (0.0, 1.0, 2.0, 4.0)
N_EVAL = 3000


def _cell(dataset: GaussianData, n_train: int, n_eval: int) -> Cell:
    return Cell(
        sweep="t", dataset=dataset, n_train=n_train, n_eval=n_eval, model=LinearModel(),
        training=StandardTraining(epochs=20, batch_size=32, lr=0.05), ensemble_size=2, seed=0,
        attacks=(PgdAttack(norm="linf", eps=LINF_EPS, steps=10),
                 FgsmAttack(norm="l2", eps=L2_EPS)),  # both optimal on linear models
    )  # fmt: skip


@pytest.fixture(scope="module")
def pm1_rows() -> tuple[Cell, list[dict]]:
    cell = _cell(GaussianData(d=32, sigma_c=1.0), 64, N_EVAL)
    return cell, run_cell(cell).rows


def test_measured_robust_acc_matches_theory(pm1_rows: tuple[Cell, list[dict]]) -> None:
    _, rows = pm1_rows
    assert len(rows) == 3 * (len(LINF_EPS) + len(L2_EPS))  # ensemble and two members
    inside = 0
    for r in rows:
        theo = r["theory_robust_acc"]
        lo, hi = wilson(r["n_robust"], N_EVAL, z=3.29)  # 99.9%: many rows, one fixed seed
        assert lo <= theo <= hi, r
        inside += r["robust_acc_lo"] <= theo <= r["robust_acc_hi"]
    assert inside >= 0.85 * len(rows)
    spread = [r["theory_robust_acc"] for r in rows]
    assert min(spread) < 0.8 and max(spread) > 0.95  # the eps grid is not trivial


def test_bayes_column_matches_monte_carlo(pm1_rows: tuple[Cell, list[dict]]) -> None:
    """The best classifier (w = S_eps(theta) for linf, theta for l2) reaches bayes_robust_acc."""
    cell, rows = pm1_rows
    meta = load_data(cell).meta
    theta, sigma = meta["theta"].double().numpy(), float(meta["sigma"])
    rng = np.random.default_rng(0)
    n = 200_000
    y = rng.choice([-1.0, 1.0], n)
    x = y[:, None] * theta + sigma * rng.normal(size=(n, theta.size))
    for r in rows:
        if r["member"] != -1:
            continue
        eps = r["eps"]
        w = theory.soft_threshold(theta, eps) if r["norm"] == "linf" else theta
        price = eps * (np.abs(w).sum() if r["norm"] == "linf" else np.linalg.norm(w))
        mc = float((y * (x @ w) > price).mean())
        want = r["bayes_robust_acc"]
        assert abs(mc - want) < 4 * math.sqrt(want * (1 - want) / n) + 1e-3, (r, mc)
        assert want >= r["theory_robust_acc"] - 1e-9  # no linear model beats the Bayes rule


def test_any_learner_column_bounds_the_mean_estimator() -> None:
    """Thm 11 bounds every learner's expected robust error; the mean estimator w = mean y_i x_i,
    averaged over theta ~ N(0, I) by Monte Carlo, must respect it."""
    d, n, sigma, eps = 4, 1, 1.0, 1.0
    cell = _cell(GaussianData(d=d, theta="normal", sigma=sigma), n, 50)
    rows = [r for r in run_cell(cell).rows if r["norm"] == "linf" and r["member"] == -1]
    for r in rows:
        bound = float(theory.schmidt_lower_bound(n, d, sigma, r["eps"]))
        assert r["any_learner_robust_acc"] == pytest.approx(1 - bound)
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(4000):
        theta = rng.normal(size=d)
        ys = rng.choice([-1.0, 1.0], n)
        xs = ys[:, None] * theta + sigma * rng.normal(size=(n, d))
        w = (ys[:, None] * xs).mean(0)
        errors.append(float(theory.linear_robust_error(w, 0.0, theta, sigma, eps, "linf")))
    mean, se = float(np.mean(errors)), float(np.std(errors) / math.sqrt(len(errors)))
    bound = float(theory.schmidt_lower_bound(n, d, sigma, eps))
    assert bound > 0.2  # a non-trivial bound at these settings
    assert mean >= bound - 3 * se, (mean, bound)


def _population_robust_acc(ens: object, meta: dict, eps: float) -> list[float]:
    w, b = stacked_linear_weights(ens)  # type: ignore[arg-type]
    th, sigma = meta["theta"].double().numpy(), float(meta["sigma"])
    return [
        1 - float(theory.linear_robust_error((w[e, 1] - w[e, 0]).double().numpy(),
                                             float(b[e, 1] - b[e, 0]), th, sigma, eps, "linf"))
        for e in range(w.shape[0])
    ]  # fmt: skip


@pytest.mark.slow
def test_rst_with_unlabeled_pool_beats_supervised_adversarial_training() -> None:
    """d = 100, sigma = d^(1/4), 8 labels, linf eps = 0.5: the labels give good standard
    accuracy but poor robust accuracy; 2000 pseudo-labeled points close much of the gap."""
    ds, eps, n, pool = GaussianData(d=100, sigma_c=1.0), 0.5, 8, 2000
    opt = {"batch_size": 64, "lr": 0.05}
    gains = []
    for seed in (0, 1):
        bundle = load(ds, n, 10, seed=seed, n_unlabeled=pool)
        acc = {}
        for cfg in (
            PgdAtTraining(eps=eps, steps=3, epochs=200, **opt),  # 8 points: long enough to converge
            RstTraining(eps=eps, steps=3, n_unlabeled=pool, epochs=15, **opt),
        ):
            ens = new_ensemble(LinearModel(), bundle.input_shape, 2, 3, seed=seed)
            train(ens, bundle, cfg, generator("rst-test", seed, cfg.method), torch.device("cpu"))
            acc[cfg.method] = float(np.mean(_population_robust_acc(ens, bundle.meta, eps)))
        bayes = 1 - float(
            theory.bayes_robust_error(bundle.meta["theta"].numpy(), bundle.meta["sigma"], eps)
        )
        assert acc["rst"] <= bayes + 1e-9
        gains.append(acc["rst"] - acc["pgd_at"])
        print(f"seed {seed}: robust acc (population) pgd_at {acc['pgd_at']:.3f}, "
              f"rst {acc['rst']:.3f}, Bayes {bayes:.3f}")  # fmt: skip
    assert min(gains) > 0.1, gains
