"""Square linf draws its redraws at once (``Square._propose_linf``): the proposal it returns
must be the first of the 1 + _RESAMPLE drawn (window, signs) that changes x, built the
plain way (window at clip(x0 +- eps), the rest of x kept), or the last one if none does."""

from __future__ import annotations

import torch

from adv_core.attacks.square import _RESAMPLE, Square, window_size
from adv_core.config.attacks import SquareAttack

BOX = (0.0, 1.0)


def _plain(
    x0: torch.Tensor, x: torch.Tensor, eps: float, r: int, c: int, s: int, sign: torch.Tensor
) -> torch.Tensor:
    """One proposal built directly: (C, H, W)."""
    out = x.clone()
    win = (x0[:, r : r + s, c : c + s] + sign[:, None, None] * eps).clamp(*BOX)
    out[:, r : r + s, c : c + s] = win
    return out


def test_the_first_proposal_that_changes_x() -> None:
    g = torch.Generator().manual_seed(0)
    n, ch, h, w, eps, p = 40, 2, 6, 6, 0.1, 0.05
    x0 = (torch.rand(n, ch, h, w, generator=g) < 0.5).float() * torch.rand(n, ch, h, w, generator=g)
    # x: every entry at one of x0's two clipped vertices, so many proposals change nothing
    side = torch.rand(n, ch, h, w, generator=g) < 0.5
    x = torch.where(side, (x0 + eps).clamp(*BOX), (x0 - eps).clamp(*BOX))
    x[: n // 2] = torch.where(x0[: n // 2] == 0, 0.0, x[: n // 2])  # ties with the box
    eps_t = torch.full((n,), eps)
    sq = Square(SquareAttack(norm="linf", eps=(eps,), queries=10))
    out = sq._propose_linf(x0, x, eps_t, p, BOX, torch.Generator().manual_seed(7))
    # The same draws, in the same order, replayed by hand.
    gen, k = torch.Generator().manual_seed(7), 1 + _RESAMPLE
    s, _ = window_size(p, h, w, minimum=1)
    r0 = (torch.rand((k, n), generator=gen) * (h - s + 1)).long()
    c0 = (torch.rand((k, n), generator=gen) * (w - s + 1)).long()
    sign = (torch.rand((k, n, ch), generator=gen) < 0.5).float() * 2 - 1
    n_first = 0
    for i in range(n):
        cands = [
            _plain(x0[i], x[i], eps, int(r0[j, i]), int(c0[j, i]), s, sign[j, i]) for j in range(k)
        ]
        changed = [not torch.equal(cd, x[i]) for cd in cands]
        want = cands[changed.index(True)] if any(changed) else cands[-1]
        n_first += changed[0]
        assert torch.equal(out[i], want), i
    assert 0 < n_first < n  # some rows needed redraws, some did not
