"""Closed-form robust accuracy of linear models (THEORY.md section 1), binary and multiclass.

For logits z = W x + b and true class y, the model stays correct against every perturbation of
norm <= eps iff, for every j != y, the pair margin m_j = (w_y - w_j).x + (b_y - b_j) survives
the adversary's best reduction: eps * ||w_y - w_j||_q with no box (q the dual norm), or, with
the box [lo, hi]^D and linf, sum_k |v_k| min(eps, room_k) where v = w_y - w_j and room_k is how
far coordinate k can move in the harmful direction -sign(v_k). Ties count as errors. Computed in
float64. The optimal perturbation for the weakest pair is returned as x_adv.
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


def worst_reduction(
    v: torch.Tensor, x: torch.Tensor, eps: float, norm_name: str, bounds: Bounds
) -> torch.Tensor:
    """(N, C) largest decrease of each pair margin within the budget (linf box case exact)."""
    if bounds is None:
        q = {"linf": 1.0, "l2": 2.0, "l1": float("inf")}[norm_name]
        return eps * torch.linalg.vector_norm(v, ord=q, dim=-1)
    if norm_name != "linf":
        raise NotImplementedError("the exact box case is implemented for linf only")
    xf = x.flatten(1).double()[:, None, :]  # (N, 1, D)
    lo, hi = bounds
    room = torch.where(v > 0, xf - lo, hi - xf)  # moving against sign(v) lowers the margin
    return (v.abs() * torch.clamp(room, max=eps)).sum(dim=-1)


class Exact(Attack):
    """Exact robust accuracy of a linear model at each eps; raises for non-linear models."""

    cfg: ExactAttack

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        w, b = linear_weights_of(model)
        v, m = pair_terms(w, b, x, y)
        j = (m - worst_reduction(v, x, eps, self.cfg.norm, bounds)).argmin(dim=1)  # weakest pair
        vj = v[torch.arange(len(y)), j]  # (N, D)
        xf = x.flatten(1).double()
        direction = -self.norm.steepest(vj)  # unit-norm, lowers (w_y - w_j).x the most
        if bounds is not None and self.cfg.norm == "linf":
            lo, hi = bounds
            xa = torch.where(
                direction > 0, torch.clamp(xf + eps, max=hi), torch.clamp(xf - eps, min=lo)
            )
            xa = torch.where(direction == 0, xf, xa)
        else:
            xa = xf + eps * direction
        return xa.to(x.dtype).reshape(x.shape)

    def __call__(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        epsilons: object = None,
        *,
        bounds: Bounds = None,
        generator: torch.Generator | None = None,
        batch_size: int = 1024,
    ) -> AttackResult:
        result = super().__call__(
            model, x, y, epsilons, bounds=bounds, generator=generator, batch_size=batch_size
        )  # type: ignore[arg-type]
        w, b = linear_weights_of(model)
        v, m = pair_terms(w, b, x, y)
        for k, eps in enumerate(result.epsilons):
            robust = (m - worst_reduction(v, x, eps, self.cfg.norm, bounds) > 0).all(dim=1)
            result.success[k] = ~robust  # the closed form decides, not float rounding of x_adv
        if bounds is None:
            q = {"linf": 1.0, "l2": 2.0, "l1": float("inf")}[self.cfg.norm]
            dist = (m / torch.linalg.vector_norm(v, ord=q, dim=-1)).amin(dim=1).clamp_min(0)
            result.distances = dist.to(torch.float32)
        return result
