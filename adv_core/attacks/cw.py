"""Carlini and Wagner's l2 attack (2017) as a minimum-norm attack.

Minimise ||x' - x||_2^2 + c * max(z_y - max_{j != y} z_j + kappa, 0) with Adam. With the box
[lo, hi] the change of variables x' = lo + (hi - lo) (tanh(w) + 1) / 2 keeps x' inside; with no
box w is x' itself. A per-example binary search over c (x10 until the first success) keeps the
smallest successful distance over every iterate of every search step; a final bisection along
the segment from x to that point pulls it back to the decision boundary (``refine_steps``).

Defaults follow the reference code (Carlini's ``l2_attack.py``): 9 binary-search steps from
c = 1e-3, Adam with learning rate 0.01, and early abort of a run once the summed objective has
not fallen by 0.01% over a tenth of its ``steps``; ``steps`` (1000 here, 10000 there) is where
more steps no longer lower robust accuracy on our models (tests/attacks/compare_torchattacks.py).

Two remedies from the paper against gradient descent stopping in a local minimum, both off by
default (the reference code has neither):
- ``targets`` k > 0: also the paper's targeted attack (objective max(max_{j != t} z_j - z_t +
  kappa, 0)) against each of the k most likely wrong classes t, a binary search each; the
  untargeted f6 follows whichever wrong class is closest along its path and can settle on a
  farther boundary than another class offers.
- ``restarts`` r > 0 (section V, "multiple starting-point gradient descent"): r more binary
  searches from points drawn uniformly in the ball of radius the closest distance found so far.
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
) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """(to_w, to_x): the change of variables from inputs to the free variable and back."""
    if bounds is None:
        return lambda v: v.clone(), lambda w: w
    lo, hi = bounds

    def to_w(v: torch.Tensor) -> torch.Tensor:
        return torch.atanh(((v - lo) / (hi - lo) * 2 - 1).clamp(-_EDGE, _EDGE))

    return to_w, lambda w: lo + (hi - lo) * (torch.tanh(w) + 1) / 2


def target_margin(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B,) z_t minus the best other logit: positive once the input is classified as t."""
    z_t = logits.gather(1, t[:, None])[:, 0]
    return z_t - logits.scatter(1, t[:, None], float("-inf")).amax(dim=1)


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
        inf = torch.full((len(y),), float("inf"), dtype=x.dtype, device=x.device)
        best_x, best_d = x.clone(), inf
        targets: list[torch.Tensor | None] = [None]  # None: the untargeted f6
        if self.cfg.targets:
            with torch.no_grad():  # (A, C - 1) wrong classes, most likely first
                ranked = model(x).scatter(1, y[:, None], float("-inf")).argsort(1, descending=True)
            targets += list(ranked[:, : min(self.cfg.targets, ranked.shape[1] - 1)].T)
        runs = [(t, x) for t in targets] + [(None, None)] * self.cfg.restarts
        for target, start in runs:
            if start is None:  # a restart: drawn around x within the best distance so far
                start = self._ball_start(x, best_d, bounds, generator)
            xa, d = self._binary_search(model, x, y, target, start, bounds)
            better = d < best_d
            best_x[better], best_d[better] = xa[better], d[better]
        return self._refine(model, x, y, best_x, best_d)

    def _ball_start(
        self, x: torch.Tensor, radius: torch.Tensor, bounds: Bounds, gen: torch.Generator | None
    ) -> torch.Tensor:
        """A uniform draw from the l2 ball of ``radius`` (A,) around x, inside the box (the
        clean point where nothing was found yet)."""
        r = torch.where(torch.isfinite(radius), radius, torch.zeros_like(radius))
        u = torch.randn(x.shape, generator=gen).to(x).flatten(1)  # (A, d) a direction
        d = u.shape[1]
        scale = r * torch.rand(len(x), generator=gen).to(x) ** (1 / d)  # (A,) radius^d uniform
        v = x + (u / u.norm(dim=1, keepdim=True) * scale[:, None]).reshape(x.shape)
        return v if bounds is None else v.clamp(*bounds)

    def _binary_search(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        start: torch.Tensor,
        bounds: Bounds,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``search_steps`` Adam runs, c bisected per example: (closest success, its distance)."""
        n = len(y)
        c = torch.full((n,), self.cfg.c_init, dtype=x.dtype, device=x.device)
        lo_c, hi_c = torch.zeros_like(c), torch.full_like(c, float("inf"))
        best_x, best_d = x.clone(), torch.full_like(c, float("inf"))
        for _ in range(self.cfg.search_steps):
            xa, d, ok = self._optimise(model, x, y, target, start, c, bounds)
            better = d < best_d
            best_x[better], best_d[better] = xa[better], d[better]
            hi_c = torch.where(ok, torch.minimum(hi_c, c), hi_c)
            lo_c = torch.where(ok, lo_c, torch.maximum(lo_c, c))
            c = torch.where(torch.isfinite(hi_c), (lo_c + hi_c) / 2, c * 10)
        return best_x, best_d

    def _optimise(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        start: torch.Tensor,
        c: torch.Tensor,
        bounds: Bounds,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One Adam run at constants c from ``start``: (closest misclassified iterate, its
        distance or inf, whether the run's own objective was met)."""
        to_w, to_x = box_map(x, bounds)
        w = to_w(start).detach().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.cfg.lr)
        best_x, best_d = x.clone(), torch.full_like(c, float("inf"))
        met = torch.zeros_like(c, dtype=torch.bool)
        check, prev = max(self.cfg.steps // 10, 1), float("inf")
        for i in range(self.cfg.steps):
            with torch.enable_grad():
                xa = to_x(w)
                logits = model(xa)
                d2 = (xa - x).flatten(1).pow(2).sum(1)
                gap = -margin_loss(logits, y) if target is None else -target_margin(logits, target)
                f = (gap + self.cfg.kappa).clamp_min(0)
                opt.zero_grad()
                total = (d2 + c * f).sum()
                total.backward()
            if self.cfg.abort_early and i % check == 0:
                if float(total.detach()) > prev * 0.9999:  # no progress over the last tenth: stop
                    break
                prev = float(total.detach())
            with torch.no_grad():
                d = d2.sqrt()
                met |= f.detach() == 0
                better = self.adversarial(logits.detach(), y) & (d < best_d)
                best_x[better], best_d[better] = xa.detach()[better], d.detach()[better]
            opt.step()
        return best_x, best_d, met

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
