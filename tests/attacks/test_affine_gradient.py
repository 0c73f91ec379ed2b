"""Issue 17 item 7: a one-member linear model's input gradient in closed form.

``attacks.base.loss_grad`` skips autograd through the model when the model under the counting
wrappers is exactly ``F.linear(x.flatten(1), W, b)`` (``affine_form``). Here the closed form is
compared with autograd through the same model hidden behind a plain function (which has no
``affine_form``, so it takes the generic path), for every loss the attacks use, on a one-member
ensemble and on members of stacked (vmap) and looped ensembles; the pass counts and a whole
PGD run must agree too.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from adv_core import attacks
from adv_core.attacks.base import LOSSES, loss_grad
from adv_core.attacks.counting import Counted, affine_of
from adv_core.config import attacks as ac
from adv_core.config.models import LinearModel, MlpModel
from adv_core.models import Ensemble, new_ensemble
from adv_core.rng import generator

SHAPE = (1, 4, 4)
C = 5


def _ens(members: int, vectorize: bool = True, seed: int = 0) -> Ensemble:
    ens = new_ensemble(LinearModel(), SHAPE, C, members, seed, vectorize=vectorize)
    with torch.no_grad():  # larger weights than the initialisation: softmax far from uniform
        for p in ens.parameters():
            p.mul_(4.0)
    return ens.eval()


def _data(n: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g), torch.randint(0, C, (n,), generator=g)


def _plain(model: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The same model with no ``affine_form``: loss_grad takes autograd through it."""
    return lambda x: model(x)


def _targets() -> list[tuple[str, torch.nn.Module]]:
    stacked, looped = _ens(3), _ens(3, vectorize=False)
    return [
        ("one member", _ens(1)),
        ("member 2 of a vmap stack", stacked.member(2)),
        ("member 1 of a loop", looped.member(1)),
    ]


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("name,model", _targets())
def test_closed_form_gradient_equals_autograd(name: str, model: torch.nn.Module, loss: str) -> None:
    x, y = _data()
    assert affine_of(Counted(model)) is not None, name
    g, logits = loss_grad(Counted(model), x, y, loss)
    g_ref, logits_ref = loss_grad(_plain(model), x, y, loss)
    assert g.shape == x.shape and not g.requires_grad and not logits.requires_grad
    assert torch.equal(logits, logits_ref)  # the same forward, the same numbers
    assert torch.allclose(g, g_ref, rtol=1e-5, atol=1e-6), (g - g_ref).abs().max()
    assert g.abs().max() > 1e-3  # not a vacuous comparison of zeros


def test_counts_are_those_of_a_forward_and_a_backward() -> None:
    x, y = _data(n=10)
    fast, slow = Counted(Counted(_ens(1))), Counted(_plain(_ens(1)))
    loss_grad(fast, x, y, "ce")
    loss_grad(slow, x, y, "ce")
    assert (fast.n_forward, fast.n_backward) == (slow.n_forward, slow.n_backward) == (10, 10)
    assert (fast.inner.n_forward, fast.inner.n_backward) == (10, 10)  # every wrapper counts


def test_models_that_are_not_one_affine_map_take_autograd() -> None:
    mlp = new_ensemble(MlpModel(width=8, depth=1), SHAPE, C, 1, 0)
    assert _ens(3).affine_form() is None  # averaged logits: another order of operations
    assert mlp.affine_form() is None
    assert affine_of(Counted(_plain(_ens(1)))) is None


def test_pgd_run_is_the_same_on_both_paths() -> None:
    """PGD without random start is deterministic: the closed-form path must reproduce the
    autograd path example by example."""
    model = _ens(1)
    x, y = _data(n=200, seed=3)
    cfg = ac.PgdAttack(norm="linf", eps=(0.02, 0.05, 0.1), steps=10, random_start=False)
    attack = attacks.build(cfg)
    fast = attack(model, x, y, cfg.eps, bounds=(0.0, 1.0), generator=generator("affine", 0))
    slow = attack(_plain(model), x, y, cfg.eps, bounds=(0.0, 1.0), generator=generator("affine", 0))
    assert torch.equal(fast.success, slow.success)
    assert 0 < int(fast.success[-1].sum()) < len(y)  # some broken, some not
    for a, b in zip(fast.x_adv, slow.x_adv, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert (fast.n_forward, fast.n_backward) == (slow.n_forward, slow.n_backward)
