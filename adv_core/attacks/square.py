"""The Square attack (Andriushchenko et al. 2020): score-based black-box random search.

Start from vertical stripes at the ball's vertices; each query redraws one random window (a
square on images, a run of entries on flat inputs) to a random vertex value per channel and
keeps the proposal when the margin loss rises. The window's area is a fraction p of the input,
p shrinking on the paper's schedule. For linf the proposal sets the window to +-eps exactly as
in the paper; for other norms the window gets equal-magnitude entries of norm eps (the norm's
``vertex``) and the whole perturbation is projected back onto the ball, a simplification of the
paper's l2 mass-moving proposal. Only logits are used: no gradients.
"""

from __future__ import annotations

import torch

from adv_core.attacks.base import Attack, Bounds, Model, bcast, margin_loss
from adv_core.config.attacks import SquareAttack

_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
             (6000, 128), (8000, 256))  # fmt: skip


def p_at(p_init: float, it: int, n_queries: int) -> float:
    """The paper's schedule for 10,000 queries, rescaled to ``n_queries``."""
    i = int(it / n_queries * 10000)
    div = 512
    for limit, d in _SCHEDULE:
        if i <= limit:
            div = d
            break
    return p_init / div


def as_image(x: torch.Tensor) -> torch.Tensor:
    """(B, *D) -> (B, C, H, W): images stay, flat inputs become (B, 1, 1, D)."""
    if x.dim() == 4:
        return x
    if x.dim() == 3:
        return x[:, None]
    return x.reshape(len(x), 1, 1, -1)


class Square(Attack):
    cfg: SquareAttack
    white_box = False

    @torch.no_grad()
    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return self.worst_case(
            model, x, y, self.cfg.restarts,
            lambda _, idx: self._run(model, x[idx], y[idx], eps[idx], bounds, generator),
        )  # fmt: skip

    def _draw(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        return torch.rand(shape, generator=generator)

    def _run(
        self,
        model: Model,
        x0: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        img = as_image(x0)
        n, c, h, w = img.shape
        dev = x0.device
        sign = ((self._draw((n, c, 1, w), generator) < 0.5).to(x0.dtype) * 2 - 1).to(dev)
        scale = bcast(eps, img) * self.norm.vertex(c * h * w)
        x = self.project(x0, x0 + (sign * scale).expand_as(img).reshape(x0.shape), eps, bounds)
        loss = margin_loss(model(x), y)
        rows = torch.arange(h, device=dev)[None, :, None]
        cols = torch.arange(w, device=dev)[None, None, :]
        for it in range(1, self.cfg.queries):
            act = (loss <= 0).nonzero()[:, 0]
            if len(act) == 0:
                break
            p = p_at(self.cfg.p_init, it, self.cfg.queries)
            sh, sw = self._window(p, h, w)
            r0 = (self._draw((len(act),), generator) * (h - sh + 1)).long().to(dev)
            c0 = (self._draw((len(act),), generator) * (w - sw + 1)).long().to(dev)
            inside = ((rows >= r0[:, None, None]) & (rows < (r0 + sh)[:, None, None])
                      & (cols >= c0[:, None, None]) & (cols < (c0 + sw)[:, None, None]))  # fmt: skip
            vert = ((self._draw((len(act), c, 1, 1), generator) < 0.5).to(x0.dtype) * 2 - 1).to(dev)
            value = vert * bcast(eps[act], img) * self.norm.vertex(c * sh * sw)
            delta = as_image(x[act] - x0[act])
            delta = torch.where(inside[:, None], value, delta)
            cand = self.project(x0[act], x0[act] + delta.reshape(x0[act].shape), eps[act], bounds)
            new = margin_loss(model(cand), y[act])
            up = new > loss[act]
            x[act[up]], loss[act[up]] = cand[up], new[up]
        return x

    @staticmethod
    def _window(p: float, h: int, w: int) -> tuple[int, int]:
        """(height, width) of the window covering a fraction p of an h x w input."""
        if h == 1:
            return 1, int(min(max(round(p * w), 1), w))
        s = int(min(max(round((p * h * w) ** 0.5), 1), h - 1))
        return s, min(s, w)
