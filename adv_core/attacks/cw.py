"""Carlini and Wagner's l2 attack (2017) as a minimum-norm attack.

Minimise ||x' - x||_2^2 + c * max(z_y - max_{j != y} z_j + kappa, 0) with Adam. With the box
[lo, hi] the change of variables x' = lo + (hi - lo) (tanh(w) + 1) / 2 keeps x' inside; with no
box w is x' itself. A per-example binary search over c (x10 until the first success) keeps the
smallest successful distance; a final bisection along the segment from x to that point pulls it
back to the decision boundary (``refine_steps``).

Defaults follow the reference code (Carlini's ``l2_attack.py``): 9 binary-search steps from
c = 1e-3, Adam with learning rate 0.01, and early abort of a run once the summed objective has
not fallen by 0.01% over a tenth of its ``steps``; ``steps`` (1000 here, 10000 there) is where
more steps no longer lower robust accuracy on our models (tests/attacks/compare_torchattacks.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adv_core.attacks.base import Bounds, Model, bcast, margin_loss
from adv_core.attacks.min_norm import MinimumNorm
from adv_core.config.attacks import CwAttack

_EDGE = 1 - 1e-6  # keep atanh finite at the box edges


def box_map(
    x: torch.Tensor, bounds: Bounds
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """(w0, to_x): the free variable at x and the map from w back to inputs."""
    if bounds is None:
        return x.clone(), lambda w: w
    lo, hi = bounds
    w0 = torch.atanh(((x - lo) / (hi - lo) * 2 - 1).clamp(-_EDGE, _EDGE))
    return w0, lambda w: lo + (hi - lo) * (torch.tanh(w) + 1) / 2


class Cw(MinimumNorm):
    cfg: CwAttack

    def search(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(y)
        c = torch.full((n,), self.cfg.c_init, dtype=x.dtype, device=x.device)
        lo_c, hi_c = torch.zeros_like(c), torch.full_like(c, float("inf"))
        best_x, best_d = x.clone(), torch.full_like(c, float("inf"))
        for _ in range(self.cfg.search_steps):
            xa, d = self._optimise(model, x, y, c, bounds)
            ok = torch.isfinite(d)
            better = d < best_d
            best_x[better], best_d[better] = xa[better], d[better]
            hi_c = torch.where(ok, torch.minimum(hi_c, c), hi_c)
            lo_c = torch.where(ok, lo_c, torch.maximum(lo_c, c))
            c = torch.where(torch.isfinite(hi_c), (lo_c + hi_c) / 2, c * 10)
        return self._refine(model, x, y, best_x, best_d)

    def _optimise(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, bounds: Bounds
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Adam run at constants c: (closest successful iterate, its distance or inf)."""
        w0, to_x = box_map(x, bounds)
        w = w0.detach().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.cfg.lr)
        best_x, best_d = x.clone(), torch.full_like(c, float("inf"))
        check, prev = max(self.cfg.steps // 10, 1), float("inf")
        for i in range(self.cfg.steps):
            with torch.enable_grad():
                xa = to_x(w)
                logits = model(xa)
                d2 = (xa - x).flatten(1).pow(2).sum(1)
                f = (self.cfg.kappa - margin_loss(logits, y)).clamp_min(0)
                opt.zero_grad()
                total = (d2 + c * f).sum()
                total.backward()
            if self.cfg.abort_early and i % check == 0:
                if float(total.detach()) > prev * 0.9999:  # no progress over the last tenth: stop
                    break
                prev = float(total.detach())
            with torch.no_grad():
                d = d2.sqrt()
                better = self.adversarial(logits.detach(), y) & (d < best_d)
                best_x[better], best_d[better] = xa.detach()[better], d.detach()[better]
            opt.step()
        return best_x, best_d

    @torch.no_grad()
    def _refine(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, xa: torch.Tensor, d: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bisection on t in [0, 1] along x + t (xa - x), keeping the adversarial end."""
        ok = torch.isfinite(d)
        lo, hi = torch.zeros_like(d), torch.ones_like(d)
        for _ in range(self.cfg.refine_steps):
            mid = (lo + hi) / 2
            hit = self.hits(model, x + bcast(mid, x) * (xa - x), y) & ok
            hi, lo = torch.where(hit, mid, hi), torch.where(hit, lo, mid)
        out = x + bcast(hi, x) * (xa - x)
        return out, torch.where(ok, self.norm.norm(out - x), d)
