"""Training methods: each runs from its config, members train independently in one stacked
call, adversarial training on digits is far more robust than standard training, divergence
becomes status rows."""

from __future__ import annotations

import pytest
import torch

from adv_core.config import Cell
from adv_core.config.attacks import PgdAttack
from adv_core.config.data import DigitsData, GaussianData
from adv_core.config.models import LinearModel, MlpModel
from adv_core.config.training import (
    EnsembleAtTraining,
    FgsmAtTraining,
    GradRegTraining,
    PgdAtTraining,
    RstTraining,
    StandardTraining,
    TradesTraining,
)
from adv_core.data import load
from adv_core.models import new_ensemble
from adv_core.norms import get_norm
from adv_core.results import Status
from adv_core.rng import generator
from adv_core.run import run_cell
from adv_core.training import get_trainer, train
from adv_core.training.adversarial import ascend, ce_sum, flat_model

CPU = torch.device("cpu")
OPT = {"epochs": 15, "batch_size": 32, "lr": 0.05}
METHODS = [
    StandardTraining(**OPT),
    StandardTraining(**{**OPT, "loss": "squared", "optimizer": "sgd", "lr": 0.01}),
    PgdAtTraining(eps=0.2, steps=3, **OPT),
    FgsmAtTraining(eps=0.2, **OPT),
    TradesTraining(eps=0.2, steps=3, beta=2.0, **OPT),
    RstTraining(eps=0.2, steps=3, n_unlabeled=200, **OPT),
    EnsembleAtTraining(eps=0.2, n_static=2, **OPT),
    GradRegTraining(lam=0.1, **OPT),
]
IDS = ["standard", "squared-sgd", "pgd_at", "fgsm_at", "trades", "rst", "ensemble_at", "grad_reg"]


@pytest.fixture(scope="module")
def gaussian() -> object:
    return load(GaussianData(d=16, sigma=1.0), 64, 500, seed=0, n_unlabeled=200)


@pytest.mark.parametrize("cfg", METHODS, ids=IDS)
@pytest.mark.parametrize("vectorize", [True, False], ids=["vmap", "loop"])
def test_method_learns_and_members_differ(gaussian: object, cfg: object, vectorize: bool) -> None:
    b = gaussian
    ens = new_ensemble(LinearModel(), b.input_shape, 2, 2, seed=1, vectorize=vectorize)  # type: ignore[attr-defined]
    log = train(ens, b, cfg, generator("m", cfg), CPU)  # type: ignore[arg-type]
    assert log.epochs == OPT["epochs"] and all(torch.isfinite(torch.tensor(log.losses)))
    with torch.no_grad():
        acc = (ens.members(b.x_test).argmax(-1) == b.y_test).float().mean(dim=1)  # type: ignore[attr-defined]
    assert (acc > 0.9).all(), acc  # Bayes accuracy Phi(4) ~ 1
    w = ens.members.state()["1.weight"]
    assert not torch.allclose(w[0], w[1])


@pytest.mark.parametrize(
    "cfg", [METHODS[2], METHODS[4], METHODS[5]], ids=["pgd_at", "trades", "rst"]
)
def test_vmap_and_loop_train_identically(gaussian: object, cfg: object) -> None:
    states = []
    for vectorize in (True, False):
        ens = new_ensemble(LinearModel(), (16,), 2, 3, seed=2, vectorize=vectorize)
        train(ens, gaussian, cfg, generator("same"), CPU)  # type: ignore[arg-type]
        states.append(ens.members.state())
    for k in states[0]:
        assert torch.allclose(states[0][k], states[1][k], atol=1e-4), k


def test_flattened_attack_is_each_members_own_attack() -> None:
    """Crafting for all members at once equals crafting against each member alone."""
    ens = new_ensemble(MlpModel(width=16), (1, 8, 8), 10, 3, seed=0)
    e, bsz = 3, 5
    x = torch.rand(e, bsz, 1, 8, 8, generator=generator("x"))
    y = torch.randint(0, 10, (e, bsz), generator=generator("y"))
    norm = get_norm("linf")
    flat = flat_model(ens, e, bsz)
    xf, yf = x.flatten(0, 1), y.flatten()
    together = ascend(ce_sum(flat, yf), xf, xf, norm, 0.1, 3, 0.03, (0.0, 1.0)).view_as(x)
    for i in range(e):
        alone = ascend(ce_sum(ens.member(i), y[i]), x[i], x[i], norm, 0.1, 3, 0.03, (0.0, 1.0))
        assert torch.allclose(together[i], alone, atol=1e-6)
    assert (together - x).abs().max() <= 0.1 + 1e-6 and together.min() >= 0


def _digits_cell(training: object) -> Cell:
    return Cell(
        sweep="t", dataset=DigitsData(), n_train=700, n_eval=300,
        model=MlpModel(width=64, depth=1), training=training, ensemble_size=1, seed=0,
        attacks=(PgdAttack(norm="linf", eps=(0.0, 0.1), steps=10, rel_step=0.25),),
    )  # fmt: skip


@pytest.mark.slow
def test_digits_pgd_at_far_more_robust_than_standard() -> None:
    opt = {"epochs": 25, "batch_size": 64, "lr": 0.01}
    acc = {}
    for cfg in (StandardTraining(**opt), PgdAtTraining(eps=0.1, steps=5, rel_step=0.4, **opt)):
        rows = run_cell(_digits_cell(cfg)).rows
        acc[cfg.method] = {r["eps"]: r for r in rows}
    std, adv = acc["standard"], acc["pgd_at"]
    for name, r in (("standard", std), ("pgd_at", adv)):
        print(f"{name}: clean {r[0.0]['robust_acc']:.3f}, PGD linf 0.1 robust "
              f"{r[0.1]['robust_acc']:.3f} [{r[0.1]['robust_acc_lo']:.3f}, {r[0.1]['robust_acc_hi']:.3f}]")  # fmt: skip
    assert std[0.0]["robust_acc"] > 0.9 and adv[0.0]["robust_acc"] > 0.9
    assert adv[0.1]["robust_acc_lo"] > std[0.1]["robust_acc_hi"]
    assert adv[0.1]["robust_acc"] - std[0.1]["robust_acc"] > 0.25, (std[0.1], adv[0.1])


def test_divergence_gives_diverged_rows() -> None:
    cfg = StandardTraining(epochs=5, lr=1e4, optimizer="sgd", loss="squared", batch_size=16)
    cell = Cell(
        sweep="t", dataset=GaussianData(d=8), n_train=32, n_eval=20, model=LinearModel(),
        training=cfg, ensemble_size=2, seed=0, attacks=(PgdAttack(eps=(0.0, 0.1), steps=2),),
    )  # fmt: skip
    res = run_cell(cell)
    assert res.status == Status.DIVERGED and len(res.rows) == 2
    assert all(r["robust_acc"] is None and "non-finite" in r["error"] for r in res.rows)


def test_rst_needs_a_pool_and_registry_is_loud(gaussian: object) -> None:
    b = load(GaussianData(d=4), 8, 8, seed=0)
    ens = new_ensemble(LinearModel(), (4,), 2, 1, seed=0)
    with pytest.raises(ValueError, match="unlabeled"):
        train(ens, b, RstTraining(epochs=1), generator("r"), CPU)
    with pytest.raises(KeyError, match="known"):
        get_trainer("mixup")


def test_noise_defense_training_is_reproducible_and_leaves_global_rng(gaussian: object) -> None:
    from adv_core.defenses import build_defense

    cfg = PgdAtTraining(eps=0.1, steps=2, defense="noise", defense_param=0.5, **OPT)
    states = []
    for _ in range(2):
        torch.manual_seed(123)
        ens = new_ensemble(LinearModel(), (16,), 2, 2, 0, preprocess=build_defense("noise", 0.5))
        train(ens, gaussian, cfg, generator("noise"), CPU)  # type: ignore[arg-type]
        states.append(ens.members.state()["1.weight"])
        after = torch.rand(1)
        torch.manual_seed(123)
        assert torch.equal(after, torch.rand(1))  # training did not advance the global RNG
    assert torch.equal(states[0], states[1])
