"""Minimum-norm wrapper: the smallest eps at which a fixed-eps attack succeeds, per example.

Bisection on [0, max_eps]: first the attack at max_eps (examples it cannot break get distance
inf), then ``bisection_steps`` halvings, each attacking every still-open example at its own
midpoint budget in one batched call. The reported distance is the norm of the closest
adversarial point actually found (at most the bracket's upper end), so one run gives the whole
robust-accuracy-versus-eps curve. For linear models the exact minimal distance is closed form
(``exact``'s distances); the wrapper around an optimal attack must land within
max_eps / 2^bisection_steps of it.
"""

from __future__ import annotations

import torch

from adv_core.attacks.base import Attack, Bounds, MinimumNorm, Model
from adv_core.config.attacks import MinNormAttack


class MinNorm(MinimumNorm):
    cfg: MinNormAttack

    def __init__(self, cfg: MinNormAttack, base: Attack) -> None:
        """``base``: the fixed-eps attack built from ``cfg.base`` (by the registry)."""
        super().__init__(cfg)
        self.base = base
        self.white_box = self.base.white_box
        self.eot = self.base.eot

    def search(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hi = torch.full((len(y),), self.cfg.max_eps, dtype=x.dtype, device=x.device)
        lo = torch.zeros_like(hi)
        xa, hit = self.base.attack_at(model, x, y, hi, bounds, generator)
        best = torch.where(hit.reshape(-1, *[1] * (x.dim() - 1)), xa, x)
        dist = torch.where(hit, self.norm.norm(xa - x), torch.full_like(hi, float("inf")))
        hi = torch.where(hit, dist, hi)
        for _ in range(self.cfg.bisection_steps):
            idx = hit.nonzero()[:, 0]
            mid = (lo[idx] + hi[idx]) / 2
            xm, ok = self.base.attack_at(model, x[idx], y[idx], mid, bounds, generator)
            d = self.norm.norm(xm - x[idx])
            win, lose = idx[ok], idx[~ok]
            best[win], dist[win], hi[win] = xm[ok], d[ok], torch.minimum(d[ok], mid[ok])
            lo[lose] = mid[~ok]
        return best, dist
