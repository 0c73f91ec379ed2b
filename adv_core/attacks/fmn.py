"""FMN, the fast minimum-norm attack (Pintor et al. 2021, "Fast minimum-norm adversarial
attacks through adaptive norm constraints"), l0 / l1 / l2 / linf.

Gradient steps on the logit margin max_{j != y} z_j - z_y (normalised to unit l2 norm, size
alpha) with the perturbation projected onto an lp-ball of radius eps that adapts per example:
before the first success eps jumps to the current norm plus the linearised distance to the
boundary (|margin| / ||grad||_q); after a success it shrinks by (1 - gamma) and never exceeds
the best distance found; an example that was adversarial once and is not now grows it by
(1 + gamma). alpha and gamma are cosine-annealed from their initial to their final values. For
l0, eps counts entries and moves by at least one. The closest adversarial iterate is returned.
Each step is projected exactly onto the intersection of the eps-ball and the box
(``Norm.project_box``), where the reference projects onto the ball and then clips.
"""

from __future__ import annotations

import math

import torch

from adv_core.attacks.base import (
    Bounds,
    Model,
    bcast,
    clip_box,
    correct,
    loss_grad,
    margin_loss,
)
from adv_core.attacks.min_norm import MinimumNorm
from adv_core.config.attacks import FmnAttack


class Fmn(MinimumNorm):
    cfg: FmnAttack

    def search(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, norm, l0 = self.cfg, self.norm, self.norm.name == "l0"
        if l0 and bounds is None:
            raise ValueError("fmn with l0 needs bounded inputs")
        n = len(y)
        a_init = cfg.alpha_init
        a_final = cfg.alpha_final if cfg.alpha_final is not None else a_init / 100
        delta = torch.zeros_like(x)
        eps = (
            torch.ones(n, dtype=x.dtype, device=x.device)
            if l0
            else torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
        )
        worst = (
            norm.norm(torch.maximum(x - bounds[0], bounds[1] - x))
            if bounds is not None
            else torch.full_like(eps, float("inf"))
        )
        best_x, best_d = x.clone(), torch.full_like(eps, float("inf"))
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for i in range(cfg.steps):
            cos = (1 + math.cos(math.pi * i / cfg.steps)) / 2
            alpha = a_final + (a_init - a_final) * cos
            gamma = cfg.gamma_final + (cfg.gamma_init - cfg.gamma_final) * cos
            g, logits = loss_grad(model, x + delta, y, margin_loss)
            d_norm = norm.norm(delta)
            adv = ~correct(logits, y)
            better = adv & (d_norm < best_d)
            best_x[better], best_d[better] = (x + delta)[better], d_norm[better]
            found |= adv
            if l0:
                shrink = torch.minimum(torch.minimum(eps - 1, (eps * (1 - gamma)).floor()), best_d)
                grow = torch.maximum(eps + 1, (eps * (1 + gamma)).floor())
                eps = torch.where(adv, shrink, grow).clamp_min(0)
            else:
                to_boundary = margin_loss(logits, y).abs() / norm.dual_norm_of(
                    g.flatten(1)
                ).clamp_min(1e-12)
                grow = torch.where(found, eps * (1 + gamma), d_norm + to_boundary)
                eps = torch.where(adv, torch.minimum(eps * (1 - gamma), best_d), grow)
            eps = torch.minimum(eps, worst)
            step = g / bcast(g.flatten(1).norm(dim=1).clamp_min(1e-12), g)
            cand = delta + alpha * step
            free = norm.norm(clip_box(x + cand, bounds) - x) + 1  # a radius that changes nothing
            radius = torch.where(torch.isfinite(eps), eps, free)
            # The exact projection onto ball and box (the reference projects onto the ball, then
            # clips, so budget spent against a box wall is lost; it stalls near the box edges).
            delta = self.project(x, x + cand, radius, bounds) - x
        return best_x, best_d
