"""Sparse (l0) attack: change at most k input entries, inside the box.

Each step linearises the margin loss at the current point and jumps to the best k-sparse
perturbation of the clean input for that linearisation (the exact solution for a linear model:
the k entries with the largest |gradient| x room, each pushed to its box edge; ``L0.fill``).
This is a Frank-Wolfe-style iteration over the non-convex l0-ball; restarts after the first
begin from a random k-sparse point. Needs bounded inputs (with no box l0 budgets are
unbounded).
"""

from __future__ import annotations

import torch

from adv_core.attacks.base import Attack, Bounds, Model, clip_box
from adv_core.config.attacks import SparseAttack


class Sparse(Attack):
    cfg: SparseAttack

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
            raise ValueError("the sparse (l0) attack needs bounded inputs")
        return self.worst_case(
            model, x, y, self.cfg.restarts,
            lambda r, idx: self._run(model, x[idx], y[idx], eps[idx], bounds, generator, r),
        )  # fmt: skip

    def _run(
        self,
        model: Model,
        x0: torch.Tensor,
        y0: torch.Tensor,
        e: torch.Tensor,
        bounds: tuple[float, float],
        generator: torch.Generator | None,
        restart: int,
    ) -> torch.Tensor:
        """One linearise-and-jump run: the first iterate that fooled the model, else the last."""
        lo, hi = bounds
        xa = (
            x0
            if restart == 0
            else clip_box(x0 + self.norm.random_init(x0.shape, e, generator, x0.device), bounds)
        )
        up, down = (hi - x0).flatten(1), (x0 - lo).flatten(1)
        found = torch.zeros(len(y0), dtype=torch.bool, device=x0.device)
        out = xa.clone()
        for _ in range(self.cfg.steps):
            g, logits = self.gradient(model, xa, y0, "margin", generator)
            newly = self.adversarial(logits, y0) & ~found
            out[newly], found = xa[newly], found | newly
            if bool(found.all()):
                break
            delta = self.norm.linear_max(g.flatten(1), e, up, down)
            xa = (x0.flatten(1) + delta).reshape(x0.shape)
        out[~found] = xa[~found]
        return out
