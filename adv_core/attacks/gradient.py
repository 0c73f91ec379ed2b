"""First-order white-box attacks: FGSM/FGM, PGD with random start and restarts, and PGD's two
variants for randomized and non-differentiable models: EOT-PGD and BPDA."""

from __future__ import annotations

import torch

from adv_core.attacks.base import (
    LOSSES,
    Attack,
    Bounds,
    Loss,
    Model,
    clip_box,
    loss_grad,
)
from adv_core.attacks.counting import unwrap
from adv_core.attacks.trace import active as tracing
from adv_core.attacks.trace import note as note_trace
from adv_core.config.attacks import BpdaAttack, EotPgdAttack, FgsmAttack, PgdAttack


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
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        g, _ = self.gradient(model, x, y, "ce", generator)
        return x + self.norm.ascent(g, eps, bounds, x)


def pgd_run(
    attack: Attack,
    model: Model,
    x0: torch.Tensor,
    y: torch.Tensor,
    eps: torch.Tensor,
    bounds: Bounds,
    generator: torch.Generator | None,
    *,
    steps: int,
    rel_step: float,
    loss: str | Loss,
    random_start: bool,
) -> torch.Tensor:
    """One PGD run (A, *D) -> (A, *D): the first iterate that fooled the model, else the last.

    Examples leave the batch as soon as an iterate fools the model (the logits come free with
    each gradient), so later steps cost only what is still robust.
    """
    x = x0.clone()
    if random_start:
        x = clip_box(x0 + attack.norm.random_init(x0.shape, eps, generator, x0.device), bounds)
    out = x.clone()
    act = torch.arange(len(y), device=x0.device)
    x0a, ya, ea, step = x0, y, eps, rel_step * eps
    hist: list[torch.Tensor] = []  # per-step losses, only while a loss trace is recorded
    for _ in range(steps):
        g, logits = attack.gradient(model, x, ya, loss, generator)
        if tracing():
            hist.append(_scatter_loss(len(y), act, logits, ya, loss))
        done = attack.adversarial(logits, ya)
        if bool(done.any()):
            out[act[done]] = x[done]
            keep = ~done
            act, x, x0a, ya, ea, step, g = (t[keep] for t in (act, x, x0a, ya, ea, step, g))
            if len(act) == 0:
                return out
        x = attack.project(x0a, x + attack.norm.ascent(g, step, bounds, x), ea, bounds)
    out[act] = x
    note_trace(
        hist, torch.zeros(len(y), dtype=torch.bool, device=x0.device).index_fill(0, act, True)
    )
    return out


def _scatter_loss(
    n: int, act: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, loss: str | Loss
) -> torch.Tensor:
    """(n,) the loss of the still-active examples ``act``, nan for those that left."""
    fn = LOSSES[loss] if isinstance(loss, str) else loss
    out = torch.full((n,), float("nan"), dtype=logits.dtype, device=logits.device)
    return out.index_copy(0, act, fn(logits, y).detach())


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
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return self.worst_case(
            model, x, y, self.cfg.restarts,
            lambda r, idx: pgd_run(
                self, model, x[idx], y[idx], eps[idx], bounds, generator,
                steps=self.cfg.steps, rel_step=self.cfg.rel_step, loss=self.cfg.loss,
                random_start=self.cfg.random_start or r > 0,
            ),
        )  # fmt: skip


class EotPgd(Pgd):
    """PGD on the expectation over transformations: each gradient averages ``samples`` draws
    of the model's own randomness (and of Gaussian input noise of std ``noise``), all in one
    batched forward pass of (samples * A) inputs."""

    cfg: EotPgdAttack
    eot = True

    def gradient(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        loss: str | Loss,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return eot_gradient(model, x, y, loss, self.cfg.samples, self.cfg.noise, generator)


def eot_gradient(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: str | Loss,
    samples: int,
    noise: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient, logits) averaged over ``samples`` draws of the model's randomness (and of
    Gaussian input noise of std ``noise``) in one batched pass of (samples * A) inputs."""
    xr = x.repeat(samples, *([1] * (x.dim() - 1)))  # (S*A, *D)
    if noise > 0:
        draw = torch.randn(xr.shape, generator=generator).to(x.device)
        xr = xr + noise * draw  # the gradient w.r.t. x equals that w.r.t. x + noise
    g, logits = loss_grad(model, xr, y.repeat(samples), loss)
    return g.reshape(samples, *x.shape).mean(0), logits.reshape(samples, len(y), -1).mean(0)


class Bpda(Pgd):
    """PGD through a straight-through backward pass: every ``Quantize`` in the model passes
    gradients as the identity (Athalye et al.'s BPDA), the forward pass stays the real one."""

    cfg: BpdaAttack

    def gradient(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        loss: str | Loss,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from adv_core.defenses import straight_through

        module = unwrap(model)  # the counting wrapper holds the module
        if not isinstance(module, torch.nn.Module):
            return loss_grad(model, x, y, loss)
        with straight_through(module):
            return loss_grad(model, x, y, loss)
