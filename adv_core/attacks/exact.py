"""Closed-form robust accuracy of linear models (THEORY.md section 1), binary and multiclass.

For logits z = W x + b and true class y, the model stays correct against every perturbation of
norm <= eps (inside the box [lo, hi]^D when there is one) iff, for every j != y, the pair margin
m_j = (w_y - w_j).x + (b_y - b_j) survives the adversary's best reduction
max <-(w_y - w_j), delta>. That reduction is the norm's exact box-constrained linear maximiser
(``Norm.fill``): no box gives eps * ||w_y - w_j||_q; with the box, linf is separable
(sum |v_k| min(eps, room_k)), l2 solves the Lagrange condition exactly (``norms._fill_scale``), l1 is a
fractional knapsack and l0 takes the k largest |v_k| room_k. Ties count as errors; float64.
The optimal perturbation for the weakest pair is returned as x_adv; distances are the exact
minimal adversarial distances.
"""

from __future__ import annotations

import torch

from adv_core.attacks.base import Attack, AttackResult, Bounds, Model
from adv_core.config.attacks import ExactAttack


def linear_weights_of(model: Model) -> tuple[torch.Tensor, torch.Tensor]:
    get = getattr(model, "linear_weights", None)
    if get is None:
        raise TypeError("the exact attack needs a linear model exposing linear_weights()")
    w, b = get()
    return w.double(), b.double()


def pair_terms(
    w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """v (N, C, D) = w_y - w_j and margins m (N, C) = v.x + b_y - b_j (m[n, y_n] = +inf)."""
    xf = x.flatten(1).double()  # (N, D)
    v = w[y][:, None, :] - w[None, :, :]  # (N, C, D)
    m = torch.einsum("ncd,nd->nc", v, xf) + (b[y][:, None] - b[None, :])
    m = m.scatter(1, y[:, None], float("inf"))
    return v, m


def harmful_room(v: torch.Tensor, x: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    """(N, C, D): how far each coordinate may move against sign(v) (inf with no box)."""
    if bounds is None:
        return torch.full_like(v, float("inf"))
    xf = x.flatten(1).double()[:, None, :]  # (N, 1, D)
    lo, hi = bounds
    return torch.where(v > 0, xf - lo, hi - xf)


class Exact(Attack):
    """Exact robust accuracy of a linear model at each eps; raises for non-linear models."""

    cfg: ExactAttack

    def _check(self, bounds: Bounds) -> None:
        if bounds is None and self.norm.name == "l0":
            raise ValueError("l0 budgets are unbounded without a box")

    def reductions(
        self, v: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        """(N, C) largest decrease of each pair margin; eps (N,) per example."""
        a = v.abs()
        r = self.norm.fill(a, harmful_room(v, x, bounds), eps.double()[:, None].expand(v.shape[:2]))
        return (a * r).sum(-1)

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        self._check(bounds)
        w, b = linear_weights_of(model)
        v, m = pair_terms(w, b, x, y)
        j = (m - self.reductions(v, x, eps, bounds)).argmin(dim=1)  # the weakest pair
        vj = v[torch.arange(len(y)), j]  # (N, D)
        xf = x.flatten(1).double()
        up, down = (None, None) if bounds is None else (bounds[1] - xf, xf - bounds[0])
        delta = self.norm.linear_max(-vj, eps.double(), up, down)
        return (xf + delta).to(x.dtype).reshape(x.shape)

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
        self._check(bounds)
        result = self.cascade(model, x, y, eps_list, bounds, generator, batch_size)
        v, m = pair_terms(*linear_weights_of(model), x, y)
        for k, robust in enumerate(self._robust(v, m, x, result.epsilons, bounds)):
            result.success[k] = ~robust  # the closed form decides, not float rounding of x_adv
        result.distances = self.distances(v, m, x, bounds).to(x.dtype)
        return result

    def robust_at(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: tuple[float, ...],
        bounds: Bounds,
    ) -> list[torch.Tensor]:
        """Per eps, (N,) which examples the closed form leaves robust: what ``solve`` records,
        without building the adversarial points (the cell's exact reference counts)."""
        self._check(bounds)
        v, m = pair_terms(*linear_weights_of(model), x, y)
        return self._robust(v, m, x, eps_list, bounds)

    def _robust(
        self,
        v: torch.Tensor,
        m: torch.Tensor,
        x: torch.Tensor,
        eps_list: tuple[float, ...],
        bounds: Bounds,
    ) -> list[torch.Tensor]:
        out = []
        for eps in eps_list:
            e = torch.full((len(x),), eps, dtype=torch.float64, device=x.device)
            out.append((m - self.reductions(v, x, e, bounds) > 0).all(dim=1))
        return out

    def distances(
        self, v: torch.Tensor, m: torch.Tensor, x: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        """(N,) exact minimal adversarial distance (0 if misclassified, inf if unreachable)."""
        a, mc = v.abs(), m.clamp_min(0)
        finite = torch.isfinite(mc)
        mc = torch.where(finite, mc, torch.zeros_like(mc))
        if bounds is None:
            d = self.norm.dual_norm_free_bound(a, mc)
        else:
            d = self.norm.min_linear_dist(a, harmful_room(v, x, bounds), mc)
        d = torch.where(mc <= 0, torch.zeros_like(d), d)  # already misclassified
        d = torch.where(finite, d, torch.full_like(d, float("inf")))
        return d.amin(dim=1)
