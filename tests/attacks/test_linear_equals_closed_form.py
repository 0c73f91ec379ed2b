"""White-box attacks on linear models must equal the closed form (THEORY.md section 1)."""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.config.attacks import ExactAttack, FgsmAttack, PgdAttack
from adv_core.config.data import GaussianData
from adv_core.config.models import LinearModel
from adv_core.config.training import StandardTraining
from adv_core.data import load
from adv_core.models import new_ensemble
from adv_core.rng import generator
from adv_core.training import train

EPS = (0.0, 0.05, 0.1, 0.2, 0.4)


@pytest.fixture(scope="module")
def trained_linear() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    cfg = GaussianData(d=32, sigma_c=1.0)
    bundle = load(cfg, 64, 2000, seed=3)
    ens = new_ensemble(LinearModel(), bundle.input_shape, 2, 1, seed=3)
    train(
        ens, bundle, StandardTraining(epochs=20, batch_size=32), generator("t"), torch.device("cpu")
    )
    return ens, bundle.x_test, bundle.y_test


@pytest.mark.parametrize(
    "cfg",
    [
        FgsmAttack(norm="linf", eps=EPS),
        PgdAttack(norm="linf", eps=EPS, steps=10),
        FgsmAttack(norm="l2", eps=EPS),
        PgdAttack(norm="l2", eps=EPS, steps=10, restarts=2),
    ],
    ids=["fgsm-linf", "pgd-linf", "fgm-l2", "pgd-l2"],
)
def test_white_box_equals_exact(trained_linear: tuple, cfg: object) -> None:
    model, x, y = trained_linear
    got = attacks.build(cfg)(model, x, y, EPS, bounds=None, generator=generator("a"))
    exact = attacks.build(ExactAttack(norm=cfg.norm, eps=EPS))(model, x, y, EPS, bounds=None)  # type: ignore[attr-defined]
    n_got = (~got.success).sum(dim=1)
    n_exact = (~exact.success).sum(dim=1)
    assert (n_got - n_exact).abs().max() <= 1, (n_got, n_exact)  # up to float ties
    assert n_exact[1:].lt(n_exact[0]).any(), "the test must exercise non-trivial eps"


def test_eps_zero_is_clean_and_robust_never_rises(trained_linear: tuple) -> None:
    model, x, y = trained_linear
    res = attacks.build(PgdAttack(norm="linf", eps=EPS, steps=5))(
        model, x, y, EPS, bounds=None, generator=generator("b")
    )
    acc = res.robust_acc()
    clean = (model(x).argmax(1) == y).float().mean()
    assert torch.isclose(acc[0], clean)
    assert bool((acc[1:] <= acc[:-1]).all())


def test_perturbations_stay_in_the_ball_and_box() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.rand(50, 1, 4, 4), torch.randint(0, 3, (50,))
    for cfg in (
        PgdAttack(norm="linf", eps=(0.1, 0.3)),
        PgdAttack(norm="l2", eps=(0.5, 1.0)),
        FgsmAttack(norm="linf", eps=(0.2,)),
    ):
        res = attacks.build(cfg)(model, x, y, cfg.eps, bounds=(0.0, 1.0), generator=generator("c"))
        norm = attacks.build(cfg).norm
        for eps, xa in zip(res.epsilons, res.x_adv, strict=True):
            assert float(norm.norm(xa - x).max()) <= eps + 1e-5
            assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0
