"""The attack base class (STYLE 3): attacks are stateless objects built from a config and called
with the model each time. The base owns the shared work once: sorting eps, the cascade over
nested budgets, bounds and projection, scoring success; an attack writes only ``perturb``.

Convention: ``success[k, n]`` is True when the model misclassifies example n at budget
epsilons[k] (an example misclassified clean counts as a success at every eps, so robust
accuracy = 1 - success.mean() and eps = 0 gives clean accuracy). Correct means the true class
has the strictly largest logit (ties count as errors).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from adv_core.norms import Norm, get_norm

Model = Callable[[torch.Tensor], torch.Tensor]
"""(B, *D) -> (B, C) logits."""

Bounds = tuple[float, float] | None


@dataclass
class AttackResult:
    """Per-eps adversarial inputs and successes.

    x_adv: one (N, *D) tensor per eps (the clean input where nothing was found).
    success: (K, N) bool.  distances: (N,) smallest successful perturbation norm, for
    minimum-norm attacks and closed forms (inf where none was found), else None.
    """

    epsilons: tuple[float, ...]
    x_adv: list[torch.Tensor]
    success: torch.Tensor
    distances: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def robust_acc(self) -> torch.Tensor:
        """(K,) fraction of examples not broken at each eps."""
        return 1.0 - self.success.float().mean(dim=1)


def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, C), (B,) -> (B,) bool: the true logit strictly beats every other."""
    z_y = logits.gather(1, y[:, None])
    others = logits.scatter(1, y[:, None], float("-inf"))
    return z_y[:, 0] > others.amax(dim=1)


@torch.no_grad()
def predict_correct(
    model: Model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
) -> torch.Tensor:
    out = [
        correct(model(x[i : i + batch_size]), y[i : i + batch_size])
        for i in range(0, len(y), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=x.device)


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) best wrong logit minus true logit (CW's f6, positive = misclassified)."""
    z_y = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.amax(dim=1) - z_y


def clip_box(x: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


class Attack(ABC):
    """Base of every attack: ``attack(model, x, y, epsilons=[...], bounds=..., generator=...)``."""

    white_box: bool = True
    minimum_norm: bool = False

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.norm: Norm = get_norm(cfg.norm)

    def project(
        self, x0: torch.Tensor, x: torch.Tensor, eps: float, bounds: Bounds
    ) -> torch.Tensor:
        """Back into the eps-ball around x0, then into the box (which keeps the ball)."""
        return clip_box(x0 + self.norm.project(x - x0, eps), bounds)

    @abstractmethod
    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Adversarial candidates (A, *D) for the still-robust examples x (A, *D) at ``eps``."""

    def __call__(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        epsilons: Sequence[float] | None = None,
        *,
        bounds: Bounds = None,
        generator: torch.Generator | None = None,
        batch_size: int = 1024,
    ) -> AttackResult:
        eps_list = tuple(
            sorted(float(e) for e in (epsilons if epsilons is not None else self.cfg.eps))
        )
        if any(e < 0 for e in eps_list):
            raise ValueError(f"eps must be >= 0, got {eps_list}")
        broken = ~predict_correct(model, x, y)  # (N,)
        x_best = x.detach().clone()
        x_adv: list[torch.Tensor] = []
        success = torch.zeros(len(eps_list), len(y), dtype=torch.bool, device=x.device)
        for k, eps in enumerate(eps_list):
            idx = (~broken).nonzero()[:, 0]
            # Cascade: what broke at a smaller eps stays broken (nested balls).
            for chunk in idx.split(batch_size) if eps > 0 else ():
                x0, y0 = x[chunk], y[chunk]
                xa = self.project(
                    x0, self.perturb(model, x0, y0, eps, bounds, generator).detach(), eps, bounds
                )
                hit = ~predict_correct(model, xa, y0)
                x_best[chunk[hit]] = xa[hit]
                broken[chunk[hit]] = True
            success[k] = broken
            x_adv.append(x_best.clone())
        return AttackResult(eps_list, x_adv, success)


def input_grad(model: Model, x: torch.Tensor, y: torch.Tensor, loss: str = "ce") -> torch.Tensor:
    """Gradient of the summed per-example loss with respect to the inputs: (B, *D)."""
    return loss_grad(model, x, y, loss)[0]


def loss_grad(
    model: Model, x: torch.Tensor, y: torch.Tensor, loss: str = "ce"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input gradient (B, *D), logits (B, C)) of the summed per-example loss at x."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        if loss == "ce":
            value = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
        else:
            value = margin_loss(logits, y).sum()
        (g,) = torch.autograd.grad(value, x)
    return g.detach(), logits.detach()
