"""First-order white-box attacks: FGSM/FGM, PGD with random start and restarts, and PGD's two
variants for randomized and non-differentiable models: EOT-PGD and BPDA."""

from __future__ import annotations

from dataclasses import dataclass

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
from adv_core.attacks.counting import route_of, rows, unwrap
from adv_core.attacks.trace import active as tracing
from adv_core.attacks.trace import note as note_trace
from adv_core.config.attacks import BpdaAttack, EotPgdAttack, FgsmAttack, PgdAttack


class Fgsm(Attack):
    """One step of size eps along the norm's steepest-ascent direction of the CE loss.

    For linf this is FGSM (the sign of the gradient); for l2 it is FGM (the normalised gradient).
    Both are exactly optimal on binary linear models (THEORY.md section 1).
    """

    cfg: FgsmAttack
    routes_rows = True

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


CHECK_EVERY = 5
"""Small runs look at which iterates fooled the model every CHECK_EVERY steps."""
LARGE = 1 << 18
"""Runs whose input batch has at least this many elements look every step."""


@dataclass
class _Working:
    """The examples a PGD run still steps: their rows in the run's batch and their state."""

    rows: torch.Tensor  # (A,) indices into the run's batch
    model: Model  # the run's model for these rows (``counting.rows``)
    x: torch.Tensor  # (A, *D) current iterate
    x0: torch.Tensor  # (A, *D)
    y: torch.Tensor  # (A,)
    eps: torch.Tensor  # (A,)
    step: torch.Tensor  # (A,) step size
    box: tuple[torch.Tensor, torch.Tensor] | None  # ``Attack.feasible_box`` of each row

    def keep(self, k: torch.Tensor) -> _Working:
        box = None if self.box is None else (self.box[0][k], self.box[1][k])
        kept = (self.x[k], self.x0[k], self.y[k], self.eps[k], self.step[k])
        return _Working(self.rows[k], rows(self.model, k), *kept, box)


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

    The logits of every iterate come free with its gradient; the run looks at them (which
    iterates fooled the model, one host sync) every step for large batches, so fooled examples
    leave at once and later steps cost only what is still robust, and every ``CHECK_EVERY``
    steps for small ones, where per-step bookkeeping would cost more than the rows it saves:
    there the iterates and logits in between are kept and the first fooling one is found at
    the look. Either way the result is the first fooling iterate.
    """
    x = x0.clone()
    if random_start:
        x = clip_box(x0 + attack.norm.random_init(x0.shape, eps, generator, x0.device), bounds)
    n = len(y)
    box = attack.feasible_box(x0, eps, bounds)
    w = _Working(torch.arange(n, device=x0.device), model, x, x0, y, eps, rel_step * eps, box)
    out = torch.empty_like(x)  # each row is written when it is fooled or at the end
    every = 1 if x0.numel() >= LARGE else CHECK_EVERY
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # (iterate, logits) since the last look
    hist: list[torch.Tensor] | None = [] if tracing() else None  # per-step losses
    for t in range(steps):
        g, logits = attack.gradient(w.model, w.x, w.y, loss, generator)
        seen.append((w.x, logits))
        if (t + 1) % every == 0 or t + 1 == steps:
            w, g = _look(attack, w, g, seen, out, hist, loss, n)
            seen = []
            if len(w.rows) == 0:
                return out
        w.x = _step(attack, w, g, bounds)
    out[w.rows] = w.x
    if hist is not None:
        survivors = torch.zeros(n, dtype=torch.bool, device=x0.device)
        note_trace(hist, survivors.index_fill(0, w.rows, True), route_of(model))
    return out


def _look(
    attack: Attack,
    w: _Working,
    g: torch.Tensor,
    seen: list[tuple[torch.Tensor, torch.Tensor]],
    out: torch.Tensor,
    hist: list[torch.Tensor] | None,
    loss: str | Loss,
    n: int,
) -> tuple[_Working, torch.Tensor]:
    """Find each row's first fooling iterate among the k ``seen`` since the last look, write
    it into ``out`` and drop the row; (the rows left, their gradient)."""
    k, a = len(seen), len(w.rows)
    logits = seen[0][1] if k == 1 else torch.cat([z for _, z in seen])  # (k * A, C)
    yk = w.y if k == 1 else w.y.repeat(k)
    robust = attack.robust(logits, yk).view(k, a)  # (k, A)
    fooled = ~robust.all(dim=0)  # (A,)
    first = (~robust).to(torch.uint8).argmax(dim=0)  # (A,) first fooling step (argmax: first)
    if hist is not None:
        hist += _window_losses(logits, yk, loss, torch.where(fooled, first, k), w.rows, n)
    if not bool(fooled.any()):
        return w, g
    idx = fooled.nonzero()[:, 0]
    xs = seen[0][0][idx] if k == 1 else torch.stack([x for x, _ in seen])[first[idx], idx]
    out[w.rows[idx]] = xs
    keep = ~fooled
    return w.keep(keep), g[keep]


def _window_losses(
    logits: torch.Tensor,
    y: torch.Tensor,
    loss: str | Loss,
    first: torch.Tensor,
    rows: torch.Tensor,
    n: int,
) -> list[torch.Tensor]:
    """k (n,) per-step losses of the rows still in the run at each step (nan after a row's
    first fooling step ``first`` (A,), k where none, and for rows not in the run)."""
    fn = LOSSES[loss] if isinstance(loss, str) else loss
    k = len(y) // len(rows)
    vals = fn(logits, y).detach().view(k, len(rows))
    later = torch.arange(k, device=rows.device)[:, None] > first[None, :]  # (k, A)
    full = torch.full((k, n), float("nan"), dtype=vals.dtype, device=vals.device)
    return list(full.index_copy(1, rows, vals.masked_fill(later, float("nan"))).unbind(0))


def _step(attack: Attack, w: _Working, g: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    """The next iterate: an ascent step projected onto ball and box (one clamp where that set
    is a box)."""
    x = w.x + attack.norm.ascent(g, w.step, bounds, w.x)
    return attack.project(w.x0, x, w.eps, bounds) if w.box is None else x.clamp(*w.box)


class Pgd(Attack):
    """Madry et al.'s PGD: ``restarts`` runs of ``steps`` steps of size rel_step * eps.

    Each restart attacks only the examples no earlier restart broke, so an example counts as
    robust only if every restart failed (per-example worst case).
    """

    cfg: PgdAttack
    # every iterate is projected (one clamp against ``feasible_box``, or ``project``), and the
    # random start is a point of the ball clipped to the box, which stays in the ball
    feasible_candidates = True
    routes_rows = True

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
                self, rows(model, idx), x[idx], y[idx], eps[idx], bounds, generator,
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
    routes_rows = False  # its gradients repeat rows without their model

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
    routes_rows = False  # it needs the model's module itself

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
