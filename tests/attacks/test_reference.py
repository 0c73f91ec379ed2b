"""Against torchattacks (reference only) on the same trained MLP and the same test points: our
PGD with the same steps and step size is at least as strong (robust accuracy no higher, up to
binomial noise) for linf and l2; and the randomized-model / gradient-masking controls."""

from __future__ import annotations

import math

import pytest
import torch

from adv_core import attacks
from adv_core.config import attacks as ac
from adv_core.defenses import GaussianNoise, Quantize
from adv_core.models import Ensemble
from adv_core.rng import generator

BOX = (0.0, 1.0)


def _acc(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _noise_allowance(p: float, n: int) -> float:
    """About two standard errors of the difference of two independent accuracies."""
    return 2 * math.sqrt(2 * max(p * (1 - p), 0.02) / n)


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 1.0)])
def test_pgd_at_least_as_strong_as_torchattacks(digits_mlp: tuple, norm: str, eps: float) -> None:
    import torchattacks

    model, x, y = digits_mlp
    steps, alpha = 10, eps / 4
    cfg = ac.PgdAttack(norm=norm, eps=(eps,), steps=steps, rel_step=alpha / eps)
    ours = float(
        attacks.build(cfg)(model, x, y, bounds=BOX, generator=generator("r")).robust_acc()[0]
    )
    ref_cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    torch.manual_seed(0)
    ref = _acc(model, ref_cls(model, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y), y)
    assert ours <= ref + _noise_allowance(ref, len(y)), (ours, ref)
    assert ours < _acc(model, x, y) - 0.2, "the budget must matter"


def _with_preprocess(model: Ensemble, pre: torch.nn.Module) -> Ensemble:
    return Ensemble(model.members, model.model_cfg, model.input_shape, model.n_classes, pre).eval()


def test_eot_beats_plain_pgd_on_a_randomized_model(digits_mlp: tuple) -> None:
    base, x, y = digits_mlp
    noisy = _with_preprocess(base, GaussianNoise(0.4))
    assert noisy.randomized
    common = {"eps": (0.08,), "steps": 10, "rel_step": 0.25}
    torch.manual_seed(0)  # the model's own noise draws on the global generator
    plain = attacks.build(ac.PgdAttack(**common))(noisy, x, y, bounds=BOX, generator=generator("p"))
    eot = attacks.build(ac.EotPgdAttack(**common, samples=16))(
        noisy, x, y, bounds=BOX, generator=generator("p")
    )
    r_plain, r_eot = float(plain.robust_acc()[0]), float(eot.robust_acc()[0])
    assert r_eot < r_plain - 0.05, (r_eot, r_plain)


def test_bpda_breaks_quantization(digits_mlp: tuple) -> None:
    base, x, y = digits_mlp
    quant = _with_preprocess(base, Quantize(0.5))
    cfg = {"eps": (0.3,), "steps": 10, "rel_step": 0.25, "random_start": False}
    clean = _acc(quant, x, y)
    plain = float(attacks.build(ac.PgdAttack(**cfg))(quant, x, y, bounds=BOX).robust_acc()[0])
    bpda = float(attacks.build(ac.BpdaAttack(**cfg))(quant, x, y, bounds=BOX).robust_acc()[0])
    assert plain == pytest.approx(clean), "quantization zeroes the true gradient"
    assert bpda < clean - 0.3, (bpda, clean)
    assert not any(m.straight_through for m in quant.modules() if isinstance(m, Quantize))


class _ScoresOnly(torch.nn.Module):
    """Logits only: any attempt to differentiate through the model fails the test."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled() and not x.requires_grad, "gradient access"
        return self.model(x)


def test_square_beats_chance_without_gradients(digits_mlp: tuple) -> None:
    model, x, y = digits_mlp
    scores = _ScoresOnly(model)
    eps = (0.1,)
    square = attacks.build(ac.SquareAttack(eps=eps, queries=100))(
        scores, x, y, bounds=BOX, generator=generator("sq")
    )
    one_query = attacks.build(ac.SquareAttack(eps=eps, queries=1))(  # random vertex noise
        scores, x, y, bounds=BOX, generator=generator("sq")
    )
    assert float(square.robust_acc()[0]) < float(one_query.robust_acc()[0]) - 0.15
    assert not attacks.build(ac.SquareAttack()).white_box
