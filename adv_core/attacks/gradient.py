"""First-order white-box attacks: FGSM/FGM and PGD with random start and restarts."""

from __future__ import annotations

import torch

from adv_core.attacks.base import (
    Attack,
    Bounds,
    Model,
    clip_box,
    correct,
    input_grad,
    loss_grad,
    predict_correct,
)
from adv_core.config.attacks import FgsmAttack, PgdAttack


class Fgsm(Attack):
    """One step of size eps along the norm's steepest-ascent direction of the CE loss.

    For linf this is FGSM (the sign of the gradient); for l2 it is FGM (the normalised gradient).
    Both are exactly optimal on binary linear models (THEORY.md section 1).
    """

    cfg: FgsmAttack

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return x + eps * self.norm.steepest(input_grad(model, x, y, "ce"))


class Pgd(Attack):
    """Madry et al.'s PGD: ``restarts`` runs of ``steps`` steps of size rel_step * eps.

    Each restart attacks only the examples no earlier restart broke, so an example counts as
    robust only if every restart failed (per-example worst case).
    """

    cfg: PgdAttack

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        best = x.clone()
        alive = torch.ones(len(y), dtype=torch.bool, device=x.device)
        for r in range(self.cfg.restarts):
            idx = alive.nonzero()[:, 0]
            if len(idx) == 0:
                break
            xa = self._run(
                model,
                x[idx],
                y[idx],
                eps,
                bounds,
                generator,
                random_start=self.cfg.random_start or r > 0,
            )
            hit = ~predict_correct(model, xa, y[idx])
            best[idx] = xa  # the last attempt for survivors; successful ones are kept
            alive[idx[hit]] = False
        return best

    def _run(
        self,
        model: Model,
        x0: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        bounds: Bounds,
        generator: torch.Generator | None,
        random_start: bool,
    ) -> torch.Tensor:
        step = self.cfg.rel_step * eps
        x = x0.clone()
        if random_start:
            x = clip_box(x0 + self.norm.random_init(x0.shape, eps, generator, x0.device), bounds)
        found = torch.zeros(len(y), dtype=torch.bool, device=x0.device)
        x_found = x.clone()
        for _ in range(self.cfg.steps):
            g, logits = loss_grad(model, x, y, self.cfg.loss)
            newly = ~correct(logits, y) & ~found  # keep the first iterate that fooled the model
            x_found[newly] = x[newly]
            found |= newly
            x = self.project(x0, x + step * self.norm.steepest(g), eps, bounds)
        x_found[~found] = x[~found]
        return x_found
