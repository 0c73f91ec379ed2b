"""The one-pixel attack (Su, Vargas and Sakurai 2019): differential evolution over k pixels.

A candidate is k pixels, each (row, column, one value per channel), coded in [0, 1]^(k (2 + C))
(the value maps onto the box). Each generation of DE/rand/1 (no crossover, F = ``f_scale``,
as in the paper) builds a trial x_r1 + F (x_r2 - x_r3) for every member and keeps it when the
true class's probability does not rise; an example stops as soon as one member fools the model.
Only probabilities are used: no gradients. The budget eps counts pixels: all channels of one
pixel change together and count once (on flat inputs a pixel is one entry).

Batched in torch, not scipy: ``scipy.optimize.differential_evolution`` optimises one objective
at a time (its ``vectorized`` option batches one population, not many examples), so a batch of
A examples would be A sequential Python-level optimisations; here the whole batch's populations
(A x P candidates) go through the model in one forward pass per generation.
"""

from __future__ import annotations

import torch

from adv_core.attacks.base import Attack, Bounds, Model, clip_box
from adv_core.attacks.square import as_image
from adv_core.config.attacks import OnePixelAttack


def apply_pixels(x0: torch.Tensor, code: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    """x0 (A, *D), code (A, P, k, 2 + C) in [0, 1] -> (A, P, *D) with the k pixels set."""
    img = as_image(x0)  # (A, C, H, W)
    a, c, h, w = img.shape
    p, k = code.shape[1], code.shape[2]
    lo, hi = bounds
    rows = (code[..., 0] * h).long().clamp(0, h - 1)  # (A, P, k)
    cols = (code[..., 1] * w).long().clamp(0, w - 1)
    vals = lo + (hi - lo) * code[..., 2:]  # (A, P, k, C)
    out = img[:, None].expand(a, p, c, h, w).clone().reshape(a * p, c, h * w)
    flat = (rows * w + cols).reshape(a * p, 1, k).expand(a * p, c, k)
    out.scatter_(2, flat, vals.reshape(a * p, k, c).transpose(1, 2))
    return out.reshape(a, p, *x0.shape[1:])


def true_prob(model: Model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (A, P, *D), y (A,) -> (probability of y (A, P), fooled (A, P))."""
    a, p = x.shape[:2]
    logits = model(x.reshape(a * p, *x.shape[2:])).reshape(a, p, -1)
    yy = y[:, None].expand(a, p)
    prob = logits.softmax(-1).gather(2, yy[..., None])[..., 0]
    others = logits.scatter(2, yy[..., None], float("-inf")).amax(-1)
    return prob, others >= logits.gather(2, yy[..., None])[..., 0]


class OnePixel(Attack):
    cfg: OnePixelAttack
    white_box = False

    def project(
        self, x0: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        """Keep the eps pixels that changed most (all channels of a pixel together), in the box."""
        delta = as_image(x - x0)  # (A, C, H, W)
        size = delta.abs().amax(dim=1).flatten(1)  # (A, H*W) per-pixel change
        rank = size.argsort(dim=1, descending=True).argsort(dim=1)
        keep = (rank < eps[:, None]).reshape(delta.shape[0], 1, *delta.shape[2:])
        return clip_box(x0 + (delta * keep).reshape(x0.shape), bounds)

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
        if bounds is None:
            raise ValueError("the one-pixel attack needs bounded inputs (pixel values)")
        out = x.clone()
        for k in eps.unique().tolist():
            idx = (eps == k).nonzero()[:, 0]
            if int(k) >= 1:
                out[idx] = self._evolve(model, x[idx], y[idx], int(k), bounds, generator)
        return out

    def _draw(self, shape: tuple[int, ...], gen: torch.Generator | None) -> torch.Tensor:
        return torch.rand(shape, generator=gen)

    def _evolve(
        self,
        model: Model,
        x0: torch.Tensor,
        y: torch.Tensor,
        k: int,
        bounds: tuple[float, float],
        gen: torch.Generator | None,
    ) -> torch.Tensor:
        """DE/rand/1 over k-pixel codes for every example at once: (A, *D) -> (A, *D)."""
        a, c = len(y), as_image(x0).shape[1]
        p, dev = self.cfg.population, x0.device
        pop = self._draw((a, p, k, 2 + c), gen).to(dev)  # (A, P, k, 2 + C)
        fit, fooled = true_prob(model, apply_pixels(x0, pop, bounds), y)
        for _ in range(self.cfg.generations):
            act = (~fooled.any(dim=1)).nonzero()[:, 0]
            if len(act) == 0:
                break
            r = (self._draw((len(act), p, 3), gen) * p).long().to(dev)  # (A', P, 3) parents
            rows = torch.arange(len(act), device=dev)[:, None]
            base, d1, d2 = (pop[act][rows, r[..., j]] for j in range(3))
            trial = (base + self.cfg.f_scale * (d1 - d2)).clamp(0.0, 1.0)
            f_new, fool_new = true_prob(model, apply_pixels(x0[act], trial, bounds), y[act])
            better = f_new <= fit[act]
            pop[act] = torch.where(better[..., None, None], trial, pop[act])
            fit[act] = torch.where(better, f_new, fit[act])
            fooled[act] = torch.where(better, fool_new, fooled[act])
        score = fit - 2.0 * fooled.to(fit.dtype)  # a fooling member first, then lowest prob
        best = score.argmin(dim=1)  # (A,)
        code = pop[torch.arange(a, device=dev), best][:, None]  # (A, 1, k, 2 + C)
        return apply_pixels(x0, code, bounds)[:, 0]
