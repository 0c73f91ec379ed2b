"""``confirm``: a fixed-eps attack run on what a minimum-norm search left robust, so the curve
from one search is as strong as the fixed-eps attack run separately at every eps.

The search gives each example a distance d (an upper bound on its true minimal distance): it
is robust at eps iff d > eps. The fixed-eps attack can only add breaks there. Work is cut in
three ways, each exact for nested balls (a point found at eps is inside every larger ball):

- **one eps per example, from the top down.** Example n is attacked first at the largest grid
  eps below d_n (``level``). If the attack fails there it is taken as robust at every smaller
  eps too, and is not attacked again (an attack that fails at eps is not expected to succeed
  inside a smaller ball). If it succeeds, the point found (norm d' <= eps) breaks it at every
  eps >= d', and it is attacked again at the largest eps below d', and so on.
- **all eps in one batched call per round.** Each example carries its own budget (the attack's
  ``eps`` is per example), so a round is one call whatever the grid; rounds stop when nothing
  is left (usually after two or three).
- **within reach.** With ``reach`` set, an example is attacked at eps only if d <= reach * eps:
  a search that overstates a distance by more than that factor is rare, and the far-robust
  examples, most of the cost of a fixed-eps attack, are skipped. Examples the search found no
  point for (d = inf) are always attacked (at the largest eps). ``reach = None``: no filter.

The gap (per eps, how many examples confirm broke that the search had left robust) is the
``min_norm_gap`` flag's evidence.
"""

from __future__ import annotations

import torch

from adv_core.attacks.base import Attack, AttackResult, Bounds, Model, bcast
from adv_core.norms import Norm


def levels(dist: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """(N,) index of the largest eps strictly below each distance (-1: none, broken at all)."""
    return (eps[None, :] < dist[:, None]).sum(dim=1) - 1


def confirm_curve(
    attack: Attack,
    norm: Norm,
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    result: AttackResult,
    x_min: torch.Tensor,
    bounds: Bounds,
    generator: torch.Generator | None,
    batch_size: int,
    reach: float | None,
) -> None:
    """Update ``result`` (success, x_adv, distances, info) in place with what ``attack``
    breaks among the examples the search left robust; ``x_min`` (N, *D) holds the search's
    closest points (the closest known adversarial point per example, updated here)."""
    assert result.distances is not None
    eps = torch.tensor(result.epsilons, dtype=x.dtype, device=x.device)  # (K,)
    dist = result.distances.clone()  # (N,)
    searched = result.success.clone()  # (K, N)
    done = torch.zeros(len(y), dtype=torch.bool, device=x.device)
    rounds: list[int] = []
    while True:
        lvl = levels(dist, eps)  # (N,)
        e = eps[lvl.clamp(min=0)]  # (N,)
        todo = ~done & (lvl >= 0) & (e > 0)
        if reach is not None:
            todo &= torch.isinf(dist) | (dist <= reach * e)
        idx = todo.nonzero()[:, 0]
        if len(idx) == 0:
            break
        rounds.append(len(idx))
        for chunk in idx.split(batch_size):
            xa, hit = attack.attack_at(model, x[chunk], y[chunk], e[chunk], bounds, generator)
            won, lost = chunk[hit], chunk[~hit]
            done[lost] = True
            # the found point is inside the ball of eps[lvl]: broken at that eps and above
            # (its norm, at most e < dist up to rounding, replaces the search's distance)
            x_min[won] = xa[hit]
            dist[won] = torch.minimum(norm.norm(xa[hit] - x[won]), e[won])
    success = torch.stack([dist <= ek for ek in eps]) | searched  # (K, N)
    result.success = success
    result.x_adv = [torch.where(bcast(s, x), x_min, x) for s in success]
    result.distances = dist
    gap = (success & ~searched).sum(dim=1)
    result.info["min_norm_gap"] = [int(g) for g in gap]
    result.info["confirm_rounds"] = rounds
    if bool(gap.any()):
        result.flags.append("min_norm_gap")
