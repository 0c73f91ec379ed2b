"""Minimum-norm attacks: the base class ``MinimumNorm`` (``search`` per example, the whole curve
from the distances, optional ``confirm``) and ``MinNorm``, the bisection wrapper around a
fixed-eps attack.

``MinNorm``: the smallest eps at which a fixed-eps attack succeeds, per example.

Bisection on [0, max_eps]: first the attack at max_eps (examples it cannot break get distance
inf), then ``bisection_steps`` halvings, each attacking every still-open example at its own
midpoint budget in one batched call. The reported distance is the norm of the closest
adversarial point actually found (at most the bracket's upper end), so one run gives the whole
robust-accuracy-versus-eps curve. For linear models the exact minimal distance is closed form
(``exact``'s distances); the wrapper around an optimal attack must land within
max_eps / 2^bisection_steps of it.

The search covers [0, max_eps] only: an example it could not break there has an unknown
distance, not an infinite one, so asking for an eps above max_eps is refused (ValueError here,
exit 2 naming ``attacks[i].eps`` at ``sweeps validate``) instead of reporting it robust.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from adv_core.attacks.base import Attack, AttackResult, Bounds, Model, bcast
from adv_core.attacks.confirm import confirm_curve
from adv_core.config.attacks import MinNormAttack


class MinimumNorm(Attack, ABC):
    """Base of minimum-norm attacks: ``search`` finds, for each clean-correct example, an
    adversarial point as close as it can; robustness at eps is then ``distance > eps``, so one
    search gives every budget of the list. Found points are verified on the model.

    ``confirm`` (optional, given by the registry): a fixed-eps attack run at each eps only on
    the examples whose found distance exceeds it; what it breaks counts as broken, and the
    result carries the flag ``min_norm_gap`` (the search missed points a fixed-eps attack
    found: its distances overstate robustness there).
    """

    minimum_norm = True

    def __init__(self, cfg: Any, confirm: Attack | None = None) -> None:
        super().__init__(cfg)
        self.confirm = confirm

    @abstractmethod
    def search(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_min (A, *D), dist (A,)): the closest adversarial point found (inf: none)."""

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """As a fixed-eps attack (e.g. an autoattack component): the found point if within eps."""
        x_min, dist = self.search(model, x, y, bounds, generator)
        return torch.where(bcast(dist <= eps, x), x_min, x)

    def distances(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
        batch_size: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_min (N, *D), dist (N,)): 0 for examples misclassified clean, inf where none."""
        broken = self.hits(model, x, y)
        dist = torch.full((len(y),), float("inf"), dtype=x.dtype, device=x.device)
        dist[broken] = 0.0
        x_min = x.detach().clone()
        for chunk in (~broken).nonzero()[:, 0].split(batch_size):
            xm, dm = self.search(model, x[chunk], y[chunk], bounds, generator)
            ok = torch.isfinite(dm) & self.hits(model, xm, y[chunk])  # verified on the model
            x_min[chunk[ok]], dist[chunk[ok]] = xm[ok], dm[ok]
        return x_min, dist

    def solve(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: tuple[float, ...],
        bounds: Bounds,
        generator: torch.Generator | None,
        batch_size: int,
    ) -> AttackResult:
        x_min, dist = self.distances(model, x, y, bounds, generator, batch_size)
        success = torch.stack([dist <= e for e in eps_list])  # (K, N)
        x_adv = [torch.where(bcast(s, x), x_min, x) for s in success]
        result = AttackResult(eps_list, x_adv, success, distances=dist, info={"x": x})
        if self.confirm is not None:
            reach = getattr(self.cfg, "confirm_reach", None)
            confirm_curve(
                self.confirm, self.norm, model, x, y, result, x_min, bounds, generator,
                batch_size, reach,
            )  # fmt: skip
        return result


class MinNorm(MinimumNorm):
    cfg: MinNormAttack

    def __init__(self, cfg: MinNormAttack, base: Attack) -> None:
        """``base``: the fixed-eps attack built from ``cfg.base`` (by the registry)."""
        super().__init__(cfg)
        self.base = base
        self.white_box = self.base.white_box
        self.eot = self.base.eot

    def solve(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: tuple[float, ...],
        bounds: Bounds,
        generator: torch.Generator | None,
        batch_size: int,
    ) -> AttackResult:
        if eps_list and eps_list[-1] > self.cfg.max_eps:
            raise ValueError(
                f"min_norm: eps {eps_list[-1]} exceeds max_eps {self.cfg.max_eps}; the search "
                "covers [0, max_eps] only, so robustness there is unknown (raise max_eps)"
            )
        return super().solve(model, x, y, eps_list, bounds, generator, batch_size)

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
