"""Issue 13, section 3: each weak or wrong attack brought up to its reference. Every test here
failed on the code before its fix (the numbers in the comments are the old ones)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from adv_core import attacks
from adv_core.config import attacks as ac
from adv_core.config.data import DigitsData
from adv_core.config.models import MlpModel
from adv_core.config.training import StandardTraining
from adv_core.data import load
from adv_core.models import new_ensemble
from adv_core.rng import generator
from adv_core.training import train
from sweeps.cli import app
from tests.attacks.conftest import linear_problem

BOX = (0.0, 1.0)


def _robust(cfg: object, model: object, x: torch.Tensor, y: torch.Tensor) -> float:
    res = attacks.build(cfg)(model, x, y, cfg.eps, bounds=BOX, generator=generator("fix"))  # type: ignore[attr-defined]
    return float(res.robust_acc()[-1])


def _pgd_l2(model: object, x: torch.Tensor, y: torch.Tensor) -> float:
    """The PGD-l2 reference of the issue: 50 steps of 0.1 eps, random start."""
    return _robust(ac.PgdAttack(norm="l2", eps=(0.5,), steps=50, rel_step=0.1), model, x, y)


def test_min_norm_refuses_an_eps_beyond_its_search() -> None:
    # Old: eps 5 with max_eps 0.05 on a linear model reported 0.775 robust (exact: 0.0).
    model, x, y = linear_problem(3)
    cfg = ac.MinNormAttack(eps=(0.0, 5.0), base=ac.PgdAttack(steps=5), max_eps=0.05)
    with pytest.raises(ValueError, match="max_eps"):
        attacks.build(cfg)(model, x, y, cfg.eps, bounds=None)


def test_validate_refuses_min_norm_eps_beyond_max_eps(tmp_path: object) -> None:
    spec = tmp_path / "mn.yaml"  # type: ignore[operator]
    spec.write_text(
        "name: mn\nseeds: [0]\ndatasets: [{name: gaussian, d: 4}]\nn_train: [8]\nn_eval: 8\n"
        "models: [{name: linear}]\n"
        "attacks: [{name: min_norm, eps: [0.0, 5.0], max_eps: 0.05}]\n"
    )
    res = CliRunner().invoke(app, ["validate", str(spec)])
    assert res.exit_code == 2, res.output
    assert "error attacks[0].eps: " in res.output and "max_eps" in res.output


def _second_mlp(n_eval: int) -> torch.nn.Module:
    bundle = load(DigitsData(), 1000, n_eval, 0)
    ens = new_ensemble(MlpModel(width=64, depth=2), bundle.input_shape, 10, 1, 1)
    cfg = StandardTraining(epochs=30, batch_size=64, lr=3e-3)
    train(ens, bundle, cfg, generator("t", 1), torch.device("cpu"))
    return ens.eval()


def _full_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Independent linf PGD: 20 signed steps of eps / 4 on CE from x, no early exit."""
    xa = x.clone()
    for _ in range(20):
        xa.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xa), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xa)
        xa = (x + (xa.detach() + eps / 4 * g.sign() - x).clamp(-eps, eps)).clamp(*BOX)
    return xa.detach()


def test_transfer_crafts_with_every_step(digits_mlp: tuple) -> None:
    # Old: 0.610 transfer robust accuracy at eps 0.1 where all 20 steps give ~0.43.
    target, x, y = digits_mlp
    source = _second_mlp(len(y))
    eps = 0.1
    x_src = _full_pgd(source, x, y, eps)
    with torch.no_grad():
        manual = float((target(x_src).argmax(1) == y).float().mean())
    cfg = ac.TransferAttack(eps=(eps,), base=ac.PgdAttack(steps=20, random_start=False))
    ours = _robust_transfer(cfg, source, target, x, y)
    assert abs(ours - manual) <= 2 / len(y), (ours, manual)
    # With a confidence margin crafting stops earlier on the source: weaker, never stronger.
    kappa = ac.TransferAttack(eps=(eps,), base=cfg.base, kappa=0.0)
    assert _robust_transfer(kappa, source, target, x, y) >= ours - 1 / len(y)


def _robust_transfer(
    cfg: ac.TransferAttack, source: object, target: object, x: torch.Tensor, y: torch.Tensor
) -> float:
    atk = attacks.build(cfg).with_source(source)  # type: ignore[attr-defined]
    return float(atk(target, x, y, cfg.eps, bounds=BOX, generator=generator("t")).robust_acc()[0])


def test_square_l2_follows_the_paper(digits_mlp: tuple) -> None:
    """The paper's proposal (``SQUARE_L2_PAPER``) is stronger than the authors' code (the
    AutoAttack package's SquareAttack, p_init 0.8) at the same query budget. Old (window set to
    a vertex, whole perturbation re-projected): 0.580 on 300 points; now 0.47 where the authors'
    code gives 0.613 (ours keeps the norm at eps after the box clips, the reference loses the
    clipped mass). The paper's proposal does not reach the issue's goal (within 5 points of
    PGD-l2) on 8 x 8 digits; the default proposal does: the next test, docs/attacks.md."""
    from pyautoattack.square import SquareAttack as AaSquare

    model, x, y = digits_mlp
    cfg = ac.SquareAttack(norm="l2", eps=(0.5,), queries=1000, p_init=0.8, **ac.SQUARE_L2_PAPER)
    square = _robust(cfg, model, x, y)
    ref = AaSquare(model, norm="L2", eps=0.5, n_queries=1000, p_init=0.8, seed=0).perturb(x, y)
    with torch.no_grad():
        ref_acc = float((model(ref).argmax(1) == y).float().mean())
    assert square <= ref_acc - 0.05, (square, ref_acc)
    assert square <= _pgd_l2(model, x, y) + 0.2, square


def test_square_l2_within_5_points_of_pgd(digits_mlp: tuple) -> None:
    """The issue's goal at its own budget (1000 queries, p_init 0.8): the default l2 proposal
    ("step": a Gaussian pattern added in one window, its size per example by the 1/5 success
    rule, accepted on cross-entropy) gives 0.360 on these 200 points where PGD-l2 gives 0.350
    (0.350 at 5000 queries). The earlier default (mass moved between windows, ``l2_proposal``
    "move") gives 0.430 here (0.365 at 5000), the paper's proposal 0.485; with the step fixed at
    1 (no rule) 0.385. On 300 points: 0.327 vs PGD-l2 0.327. Still score-based: the attack is a
    black box and never asks for a gradient."""
    model, x, y = digits_mlp
    cfg = ac.SquareAttack(norm="l2", eps=(0.5,), queries=1000, p_init=0.8)
    assert not attacks.build(cfg).white_box
    square = _robust(cfg, model, x, y)
    assert square <= _pgd_l2(model, x, y) + 0.02, square


def test_cw_reference_defaults_and_the_papers_targeted_runs(digits_mlp: tuple) -> None:
    """Carlini's l2_attack.py defaults (9 binary-search steps from c = 1e-3, lr 0.01, early
    abort) plus the paper's targeted attack against the two most likely wrong classes. The
    untargeted objective alone settles on a farther boundary for some points: 0.347 on 300
    points at 300, 1000 and 3000 steps where PGD-l2 gives 0.30; with the targeted runs 0.290.
    The issue's goal: within 2 points of PGD-l2 (old code here: 0.395 vs 0.350)."""
    cfg = ac.CwAttack(eps=(0.5,), steps=300)
    assert (cfg.search_steps, cfg.lr, cfg.c_init, cfg.abort_early) == (9, 0.01, 1e-3, True)
    model, x, y = digits_mlp
    cw = _robust(cfg, model, x, y)
    assert cw <= _pgd_l2(model, x, y) + 0.02, cw
