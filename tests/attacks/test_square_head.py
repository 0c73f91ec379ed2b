"""Square linf on a Flatten + Linear model scores a proposal from the current point's
first-layer output plus the changed window's columns (``models.member_head``,
``square._Work.score``) instead of a whole forward pass. The split must be the model, the
scores the model's, and the search the one the plain forward passes give."""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.attacks import square
from adv_core.attacks.base import margin_loss
from adv_core.config.attacks import SquareAttack
from adv_core.config.models import CnnModel, LinearModel, MlpModel
from adv_core.defenses import Quantize
from adv_core.models import Ensemble, new_ensemble
from adv_core.rng import generator

BOX = (0.0, 1.0)


def _x(n: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("cfg", "members", "index"),
    [(MlpModel(width=16, depth=2), 1, 0), (LinearModel(), 1, 0), (MlpModel(width=16), 3, 1)],
)
def test_the_head_and_tail_are_the_member(cfg: object, members: int, index: int) -> None:
    """One member (a plain module) and a member of a vmapped stack (``Members``)."""
    ens = new_ensemble(cfg, (1, 8, 8), 10, members, 0)  # type: ignore[arg-type]
    x = _x()
    view = ens if members == 1 else ens.member(index)
    head = view.affine_head()
    assert head is not None
    w, b, tail = head
    assert w.shape == (w.shape[0], 64) and b.shape == (w.shape[0],)
    with torch.no_grad():
        split = tail(torch.nn.functional.linear(x.flatten(1), w, b))
        assert torch.allclose(split, view(x), atol=1e-6)


def test_no_head_where_the_first_layer_is_not_linear_or_inputs_are_preprocessed() -> None:
    assert new_ensemble(CnnModel(channels=4, hidden=8), (1, 8, 8), 10, 1, 0).affine_head() is None
    quantized = new_ensemble(MlpModel(width=16), (1, 8, 8), 10, 1, 0, preprocess=Quantize(0.25))
    assert quantized.affine_head() is None
    assert new_ensemble(MlpModel(width=16), (1, 8, 8), 10, 2, 0).affine_head() is None  # averaged


def _square(
    model: Ensemble, x: torch.Tensor, y: torch.Tensor, queries: int
) -> attacks.AttackResult:
    cfg = SquareAttack(norm="linf", eps=(0.1,), queries=queries, p_init=0.8)
    return attacks.build(cfg)(model, x, y, cfg.eps, bounds=BOX, generator=generator("sq-head"))


def test_the_search_is_the_plain_forward_passes_search(
    digits_mlp: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same draws, same decisions: the updated first layer differs from the matmul only by
    rounding, so (almost) every row ends at the same point; the passes counted are the same
    queries (plus one exact pass per row the updates call fooled)."""
    model, x, y = digits_mlp
    fast = _square(model, x, y, 300)
    monkeypatch.setattr(square, "head_of", lambda m: None)
    plain = _square(model, x, y, 300)
    same = (fast.x_adv[0] == plain.x_adv[0]).flatten(1).all(1).float().mean()
    assert float(same) >= 0.97, float(same)
    assert abs(float(fast.robust_acc()[0]) - float(plain.robust_acc()[0])) <= 1 / len(y)
    assert float(plain.robust_acc()[0]) < 0.8  # the search does break examples
    assert plain.n_forward <= fast.n_forward <= plain.n_forward + len(y)


def test_a_row_is_dropped_only_when_the_model_itself_is_fooled(digits_mlp: tuple) -> None:
    """``_Work.confirm``: rows whose updated scores say fooled are checked by the model; the
    others get their exact loss and first-layer output back."""
    model, x, y = digits_mlp
    x, y = x[:40], y[:40]
    with torch.no_grad():
        exact = margin_loss(model(x), y)
    work = square._Work(x.clone(), x.clone(), torch.full((40,), 0.1), y, exact.clone())
    work.with_head(model.affine_head())
    z_exact = work.z.clone()
    idx = torch.arange(40)
    work.loss[idx] = 1.0  # what drifted scores might claim
    work.z[idx] += 0.5
    fooled = work.confirm(model, idx)
    assert torch.equal(fooled, exact > 0)
    assert bool((~fooled).any())  # most of these clean points are classified right
    assert torch.allclose(work.loss, exact) and torch.allclose(work.z, z_exact, atol=1e-6)
