"""Square l2's paper proposal ("move", ``Square._draw_move``) works on its two windows only: W2
emptied, W1 holding both windows' mass and the budget left (so ||delta|| = eps), fitted into
the box by the exact l2 fill on W1's entries. Checked against the definition: what changes,
the norm, the box, the choice of windows that can change something (against a brute-force
count with the same draws), and the first-layer shortcut's logits against the model's."""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.attacks import square
from adv_core.config.attacks import SQUARE_L2_PAPER, SquareAttack
from adv_core.config.models import MlpModel
from adv_core.models import new_ensemble
from adv_core.rng import generator

BOX = (0.0, 1.0)


def _square() -> square.Square:
    cfg = SquareAttack(norm="l2", eps=(1.0,), queries=100, p_init=0.8, **SQUARE_L2_PAPER)
    return attacks.build(cfg)  # type: ignore[return-value]


def _start(x0: torch.Tensor, eps: torch.Tensor, seed: int = 1) -> torch.Tensor:
    return _square()._start(x0, eps, BOX, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("background", [False, True])
def test_move_changes_two_windows_and_keeps_the_norm_in_the_box(background: bool) -> None:
    """Mid-grey inputs: the box never binds, so every proposal has norm eps exactly. With a
    black background (digits, MNIST) the fill keeps the norm at eps wherever W1's room allows
    it and never above; entries outside the two windows never change; W2's own entries are
    emptied (back to x0) unless W1 covers them."""
    g = torch.Generator().manual_seed(0)
    n, side = 64, 12
    x0 = 0.4 + 0.2 * torch.rand(n, 1, side, side, generator=g)
    if background:
        x0[:, :, :, : side // 2] = 0.0
    eps = torch.full((n,), 0.8 if background else 0.5)
    x = _start(x0, eps)
    sq = _square()
    for p in (0.3, 0.05):
        at, value, weight = sq._draw_move(x0, x, eps, p, BOX, torch.Generator().manual_seed(3))
        cand = square._with_windows(x, at, value)
        touched = torch.zeros(n, side * side, dtype=torch.bool)
        touched.scatter_(1, at[:, 0], True)
        same = (cand == x).flatten(1)
        assert bool(same[~touched].all())  # nothing outside the windows moves
        assert bool((cand >= 0).all() and (cand <= 1).all())
        norm = (cand - x0).flatten(1).norm(dim=1)
        assert bool((norm <= eps * (1 + 1e-5)).all())
        if background:
            assert float((norm / eps).mean()) > 0.99
        else:
            assert torch.allclose(norm, eps, rtol=1e-5)
        size = at.shape[-1] // 2
        w2, once = at[:, 0, size:], weight[:, 0, size:] > 0  # W2's entries not written by W1
        emptied = cand.flatten(1).gather(1, w2) == x0.flatten(1).gather(1, w2)
        assert bool(emptied[once].all()) and bool(once.any())
        assert not bool(same.all(1).any())  # every row's proposal changes it


@pytest.mark.parametrize("side", [9, 28])  # 22 windows of 9 entries: > 81 (prefix counts), <= 784
def test_window_pairs_take_the_first_pair_that_can_change(side: int) -> None:
    """One nonzero pixel per row and no budget left: a pair can change something only if a
    window covers that pixel. The pair chosen is the first such of the draws (the last where
    none is), counted here by slicing the image."""
    n, h, w, sh, sw = 200, side, side, 3, 3
    g = torch.Generator().manual_seed(0)
    delta = torch.zeros(n, 1, h, w)
    pix = torch.randint(0, h * w, (n,), generator=g)
    delta.view(n, -1)[torch.arange(n), pix] = 0.3
    spare = torch.zeros(n, dtype=torch.bool)
    sq = _square()
    got = sq._window_pairs(delta, spare, sh, sw, torch.Generator().manual_seed(5))
    draws = torch.Generator().manual_seed(5)  # the same draws, replayed
    k = 1 + square._RESAMPLE
    u = sq._draw((4, k, n), draws)
    r1, c1, r2, c2 = ((u[i] * (m + 1)).long() for i, m in enumerate((h - sh, w - sw) * 2))
    for i in range(n):
        choice = k - 1
        for j in range(k):
            win1 = delta[i, :, r1[j, i] : r1[j, i] + sh, c1[j, i] : c1[j, i] + sw]
            win2 = delta[i, :, r2[j, i] : r2[j, i] + sh, c2[j, i] : c2[j, i] + sw]
            if bool((win1 != 0).any() or (win2 != 0).any()):
                choice = j
                break
        want = (r1[choice, i], c1[choice, i], r2[choice, i], c2[choice, i])
        assert tuple(int(v[i]) for v in got) == tuple(int(v) for v in want), i
    rich = sq._window_pairs(delta, ~spare, sh, sw, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b[0]) for a, b in zip(rich, (r1, c1, r2, c2), strict=True))


def test_the_first_layer_shortcut_scores_a_move_as_the_model_does() -> None:
    """Overlapping windows repeat W1's entries in W2's list (weight 0): the updated first-layer
    output must count them once, giving the model's own logits."""
    model = new_ensemble(MlpModel(width=16), (1, 8, 8), 10, 1, 0).eval()
    g = torch.Generator().manual_seed(0)
    n = 48
    x0 = torch.rand(n, 1, 8, 8, generator=g)
    eps = torch.full((n,), 1.0)
    x = _start(x0, eps)
    y = torch.randint(0, 10, (n,), generator=g)
    work = square._Work(x0, x.clone(), eps, y, torch.zeros(n))
    work.with_head(model.affine_head())
    at, value, weight = _square()._draw_move(x0, x, eps, 0.1, BOX, torch.Generator().manual_seed(2))
    size = at.shape[-1] // 2
    assert bool((weight[:, 0, size:] == 0).any())  # some windows overlap
    logits, z = work.score(model, at, value, weight)
    with torch.no_grad():
        want = model(square._with_windows(x, at, value))
    assert z is not None and torch.allclose(logits, want, atol=1e-5)


def test_move_searches_as_the_plain_forward_passes_do(
    digits_mlp: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole l2 search with the first-layer shortcut and without: the same decisions up to
    rounding (the robust accuracy within one example)."""
    model, x, y = digits_mlp
    cfg = SquareAttack(norm="l2", eps=(0.5,), queries=300, p_init=0.8, **SQUARE_L2_PAPER)

    def run() -> attacks.AttackResult:
        return attacks.build(cfg)(model, x, y, cfg.eps, bounds=BOX, generator=generator("mv"))

    fast = run()
    monkeypatch.setattr(square, "head_of", lambda m: None)
    plain = run()
    assert abs(float(fast.robust_acc()[0]) - float(plain.robust_acc()[0])) <= 1 / len(y)
    assert float(plain.robust_acc()[0]) < 0.8
    same = (fast.x_adv[0] == plain.x_adv[0]).flatten(1).all(1).float().mean()
    assert float(same) >= 0.9, float(same)
