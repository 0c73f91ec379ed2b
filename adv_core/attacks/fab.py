"""FAB, the fast adaptive boundary attack (Croce and Hein 2020, "Minimally distorted adversarial
examples with a fast adaptive boundary attack"), linf / l2 / l1, untargeted and targeted.

Each step linearises the model at the iterate x1: for the class j whose linearised boundary
f_j(x1) + <grad f_j, z - x1> = 0 (f_j = z_j - z_y) is closest in the norm's sense
(|f_j| / ||grad f_j||_q), both x1 and the input x0 are projected onto that hyperplane inside the
box (``to_plane``: the exact box-constrained minimal step, the norms' ``min_linear_dist`` and
``fill``, the same machinery as the closed form for linear models). The next iterate mixes the
two projections, biased towards x0 by alpha = min(|d1| / (|d1| + |d2|), alpha_max), overshooting
by eta; after a success the iterate steps back towards x0 by beta. The targeted version uses only
the boundary to one runner-up class per run (the n_targets best-ranked wrong classes on the clean
input, in turn). Restarts after the first start at a random point of norm init / 2 around x0.
"""

from __future__ import annotations

import torch

from adv_core.attacks.base import Bounds, Model, bcast, clip_box, correct
from adv_core.attacks.min_norm import MinimumNorm
from adv_core.config.attacks import FabAttack
from adv_core.norms import Norm, room_toward

INIT_EPS = {"linf": 0.3, "l2": 1.0, "l1": 5.0}
"""Random-start radius when no distance is known yet (the reference's defaults)."""


def to_plane(
    norm: Norm, w: torch.Tensor, c: torch.Tensor, up: torch.Tensor, down: torch.Tensor
) -> torch.Tensor:
    """delta (B, D) of least norm with <w, delta> = c inside -down <= delta <= up (inf: no
    box); where the box cannot reach the plane, the box corner that gets closest to it."""
    s = w.sign() * c.sign()[:, None]
    a = w.abs()
    room = room_toward(s, up, down)
    r, dist = norm.plane_fill(a, room, c.abs())  # exact for linf / l2 / l1
    far = (~torch.isfinite(dist)).nonzero()[:, 0]  # every live room is finite there
    if len(far):
        r[far] = torch.where(a[far] > 0, room[far], 0.0)  # the closest box corner
    return s * r


class Fab(MinimumNorm):
    cfg: FabAttack

    def search(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._runs(model, x, y, bounds, generator, stop=None)

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """At fixed budgets (an AutoAttack component): later runs skip what is already broken
        within eps, as in the reference."""
        x_min, dist = self._runs(model, x, y, bounds, generator, stop=eps)
        return torch.where(bcast(dist <= eps, x), x_min, x)

    def _runs(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
        stop: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every (target, restart) run; each attacks the examples not yet broken within
        ``stop`` (None: all of them, to shrink every distance) and keeps the closest point."""
        best_x = x.clone()
        best_d = torch.full((len(y),), float("inf"), dtype=x.dtype, device=x.device)
        targets: list[torch.Tensor | None] = [None]
        if self.cfg.targeted:
            with torch.no_grad():
                order = model(x).argsort(dim=1, descending=True)  # (A, C), clean ranking
            n = min(self.cfg.n_targets, order.shape[1] - 1)
            targets = [order[:, r] for r in range(1, n + 1)]
        for target in targets:
            for r in range(self.cfg.restarts):
                open_ = torch.ones_like(y, dtype=torch.bool) if stop is None else best_d > stop
                idx = open_.nonzero()[:, 0]
                if len(idx) == 0:
                    return best_x, best_d
                init = None
                if r > 0:
                    known = best_d[idx] if stop is None else stop[idx]
                    default = self.cfg.init_eps or INIT_EPS.get(self.norm.name, 1.0)
                    init = torch.where(torch.isfinite(known), known, default).clamp_max(default)
                t = None if target is None else target[idx]
                xa, d = self._run(model, x[idx], y[idx], t, bounds, generator, init)
                better = d < best_d[idx]
                best_x[idx[better]], best_d[idx[better]] = xa[better], d[better]
        return best_x, best_d

    def _diffs(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(f (A, K), grad f (A, K, D)): f_j = z_j - z_y for every class (untargeted: one
        backward pass per class, f_y = inf so it is never chosen) or the target only (K = 1)."""
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xg)
            n = torch.arange(len(y), device=x.device)
            if target is not None:
                f = logits[n, target] - logits[n, y]
                (g,) = torch.autograd.grad(f.sum(), xg)
                return f.detach()[:, None], g.flatten(1)[:, None]
            grads = []
            for j in range(logits.shape[1]):
                (gj,) = torch.autograd.grad(logits[:, j].sum(), xg, retain_graph=True)
                grads.append(gj.flatten(1))
        g_all = torch.stack(grads, dim=1)  # (A, C, D)
        f = logits.detach() - logits.detach()[n, y][:, None]
        dg = g_all - g_all[n, y][:, None]
        return f.scatter(1, y[:, None], float("inf")), dg

    @torch.no_grad()
    def _run(
        self,
        model: Model,
        x0: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        bounds: Bounds,
        generator: torch.Generator | None,
        init: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run of ``steps`` FAB steps: (closest adversarial point, its distance or inf)."""
        shape, a_n = x0.shape, len(y)
        flat0 = x0.flatten(1)
        inf = torch.full_like(flat0, float("inf"))
        x1 = x0.clone()
        if init is not None:
            u = self.norm.random_init(shape, 1.0, generator, x0.device)
            u = u / bcast(self.norm.norm(u).clamp_min(1e-12), u)
            x1 = clip_box(x0 + bcast(init / 2, u) * u, bounds)
        best_x, best_d = (
            x0.clone(),
            torch.full((a_n,), float("inf"), dtype=x0.dtype, device=x0.device),
        )
        rows = torch.arange(a_n, device=x0.device)
        # Both projections (of x1 and of x0) go through one batched call: rows [x1; x0].
        up0, dn0 = (inf, inf) if bounds is None else (bounds[1] - flat0, flat0 - bounds[0])
        for _ in range(self.cfg.steps):
            f, g = self._diffs(model, x1, y, target)  # (A, K), (A, K, D)
            j = (f.abs() / self.norm.dual_norm_of(g).clamp_min(1e-12)).argmin(dim=1)
            w, fj = g[rows, j], f[rows, j]  # (A, D), (A,)
            flat1 = x1.flatten(1)
            # The plane f_j + <w, z - x1> = 0: from t, <w, delta> = -(f_j + <w, t - x1>).
            c1, c0 = -fj, -(fj + (w * (flat0 - flat1)).sum(1))
            up1, dn1 = (inf, inf) if bounds is None else (bounds[1] - flat1, flat1 - bounds[0])
            d = to_plane(
                self.norm, w.repeat(2, 1), torch.cat([c1, c0]),
                torch.cat([up1, up0]), torch.cat([dn1, dn0]),
            )  # fmt: skip
            d1, d0 = d[:a_n], d[a_n:]  # (A, D) each
            a1 = self.norm.norm(d1).clamp_min(1e-8)
            a0 = self.norm.norm(d0).clamp_min(1e-8)
            alpha = (a1 / (a1 + a0)).clamp(0.0, self.cfg.alpha_max)[:, None]
            eta = self.cfg.eta
            nxt = (flat1 + eta * d1) * (1 - alpha) + (flat0 + eta * d0) * alpha
            x1 = clip_box(nxt.reshape(shape), bounds)
            adv = ~correct(model(x1), y)  # (A,)
            dist = self.norm.norm(x1 - x0)
            better = adv & (dist < best_d)
            # row selections by lerp with 0/1 weights (exact for finite inputs; on CPU a
            # broadcast torch.where costs several float ops)
            best_x = torch.lerp(best_x, x1, bcast(better.to(x1.dtype), x1))
            best_d = torch.where(better, dist, best_d)
            back = x0 + self.cfg.beta * (x1 - x0)
            x1 = torch.lerp(x1, back, bcast(adv.to(x1.dtype), x1))
        return best_x, best_d
