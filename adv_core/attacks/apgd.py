"""Auto-PGD (Croce and Hein 2020, "Reliable evaluation of adversarial robustness ...").

Step-size schedule as in AutoAttack: initial step 2 * eps; checkpoints after 22% of the
iterations, then ever shorter phases (3% shorter each time, at least 6%); at a checkpoint the
step halves (and the iterate restarts from the best point) when fewer than ``rho`` of the phase's
steps raised the loss, or when the step was not halved last time and the best loss did not
improve. Momentum 0.75. Losses: CE, DLR (difference of logits ratio) and targeted DLR.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from adv_core.attacks.base import (
    LOSSES,
    Attack,
    Bounds,
    Loss,
    Model,
    Rows,
    bcast,
    clip_box,
    dlr_scale,
    loss_grad,
)
from adv_core.attacks.counting import route_of, rows
from adv_core.attacks.gradient import eot_gradient
from adv_core.attacks.trace import active as tracing
from adv_core.attacks.trace import note as note_trace
from adv_core.config.attacks import ApgdAttack


def targeted_dlr(target: torch.Tensor) -> Loss:
    """Targeted DLR towards ``target`` (B,): (z_t - z_y) / (z_pi1 - (z_pi3 + z_pi4) / 2)."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        diff = logits.gather(1, target[:, None])[:, 0] - logits.gather(1, y[:, None])[:, 0]
        return diff / dlr_scale(logits, targeted=True)

    return loss


def checkpoint_phases(steps: int) -> list[int]:
    """Lengths of the phases between checkpoints: 22%, then 3% shorter each, floor 6%."""
    first, floor, decr = (max(int(f * steps), 1) for f in (0.22, 0.06, 0.03))
    out, k, total = [], first, 0
    while total < steps:
        out.append(k)
        total += k
        k = max(k - decr, floor)
    return out


def _targeted_at(targets: torch.Tensor, idx: Rows) -> Loss:
    return targeted_dlr(targets[idx])


STACK_ROWS = 4096
"""Consecutive targeted runs are stacked into one run of up to this many rows (each example
repeated once per target; ``Apgd._run_stacked``): on few rows a step's fixed cost dominates."""


def _target_of(run: Callable[[Rows], Loss]) -> torch.Tensor:
    return run.args[0]  # type: ignore[attr-defined]


def _stacks(runs: list[Callable[[Rows], Loss]], n: int) -> list[list[Callable[[Rows], Loss]]]:
    """The runs in order, consecutive targeted ones grouped by up to STACK_ROWS // n."""
    size = max(1, STACK_ROWS // max(n, 1))
    out: list[list[Callable[[Rows], Loss]]] = []
    for run in runs:
        last = out[-1] if out else None
        if _is_targeted(run) and last is not None and len(last) < size and _is_targeted(last[-1]):
            last.append(run)
        else:
            out.append([run])
    return out


def _is_targeted(run: Callable[[Rows], Loss]) -> bool:
    return isinstance(run, partial) and run.func is _targeted_at


class Apgd(Attack):
    cfg: ApgdAttack

    def __init__(self, cfg: ApgdAttack) -> None:
        super().__init__(cfg)
        self.eot = cfg.eot_samples > 1
        self.routes_rows = not self.eot  # EOT gradients repeat rows without their model

    def gradient(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        loss: str | Loss,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """With ``eot_samples`` > 1 each gradient averages that many draws (AutoAttack rand)."""
        if self.cfg.eot_samples == 1:
            return loss_grad(model, x, y, loss)
        return eot_gradient(model, x, y, loss, self.cfg.eot_samples, 0.0, generator)

    def losses(self, model: Model, x: torch.Tensor) -> list[Callable[[Rows], Loss]]:
        """The runs in order; each maps the indices it attacks to its loss."""
        kind = self.cfg.loss
        runs: list[Callable[[Rows], Loss]] = []
        if kind in ("ce", "dlr", "auto"):
            untargeted = LOSSES["dlr" if kind == "dlr" else "ce"]
            runs.append(lambda idx: untargeted)
        if kind in ("dlr_targeted", "auto"):
            with torch.no_grad():
                order = model(x).argsort(dim=1, descending=True)  # (A, C), clean ranking
            for r in range(1, min(self.cfg.n_targets, order.shape[1] - 1) + 1):
                runs.append(partial(_targeted_at, order[:, r]))
        return runs

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        runs = [m for m in self.losses(model, x) for _ in range(self.cfg.restarts)]
        stacks = _stacks(runs, len(y))

        def run(r: int, idx: Rows) -> torch.Tensor:
            if len(stacks[r]) == 1:
                loss = stacks[r][0](idx)
                return self._run(
                    rows(model, idx), x[idx], y[idx], eps[idx], bounds, generator, loss
                )
            return self._run_stacked(model, x, y, eps, bounds, generator, stacks[r], idx)

        return self.worst_case(model, x, y, len(stacks), run)

    def _run_stacked(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
        stack: list[Callable[[Rows], Loss]],
        idx: Rows,
    ) -> torch.Tensor:
        """Targeted runs as one: rows ``idx`` repeated once per target, one ``_run`` on them
        (the rows are independent; one step's operations serve every target). Per example the
        first target's point that is adversarial, else the last target's: what running the
        targets in turn, each on what the earlier ones left, keeps."""
        ids = torch.arange(len(y), device=x.device)[idx]
        t, n = len(stack), len(ids)
        rep = ids.repeat(t)
        target = torch.cat([_target_of(run)[ids] for run in stack])
        routed = rows(model, rep)
        xa = self._run(routed, x[rep], y[rep], eps[rep], bounds, generator, targeted_dlr(target))
        hit = self.hits(routed, xa, y[rep]).reshape(t, n)
        first = torch.where(hit.any(0), hit.to(x.dtype).argmax(0), t - 1)
        return xa.reshape(t, n, *x.shape[1:])[first, torch.arange(n, device=x.device)]

    def _run(
        self,
        model: Model,
        x0: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
        loss: Loss,
    ) -> torch.Tensor:
        x = clip_box(x0 + self.norm.random_init(x0.shape, eps, generator, x0.device), bounds)
        step = 2 * eps  # (A,)
        g, logits = self.gradient(model, x, y, loss, generator)
        cur = loss(logits, y)
        x_best, g_best, loss_best = x.clone(), g.clone(), cur.clone()
        found = self.adversarial(logits, y)
        x_adv = torch.where(bcast(found, x), x, x0)
        x_prev = x.clone()
        reduced = torch.zeros_like(found)
        last_best = loss_best.clone()
        it, hist = 0, []  # hist: per-step losses, only while a loss trace is recorded
        project = self.projector(x0, eps, bounds)
        for phase in checkpoint_phases(self.cfg.steps):
            n_up = torch.zeros_like(cur)
            for _ in range(min(phase, self.cfg.steps - it)):
                a = self.cfg.momentum if it > 0 else 1.0
                z = project(x + self.norm.ascent(g, step, bounds, x))
                x_new = project(x + a * (z - x) + (1 - a) * (x - x_prev))
                x_prev, x = x, x_new
                g, logits = self.gradient(model, x, y, loss, generator)
                cur = loss(logits, y)
                if tracing():
                    hist.append(cur.detach().clone())
                newly = self.adversarial(logits, y) & ~found
                # rows selected by lerp with 0/1 weights (exact on finite points, a float op
                # where a broadcast torch.where costs several on CPU; no host synchronisation)
                x_adv, found = torch.lerp(x_adv, x, bcast(newly.to(x.dtype), x)), found | newly
                up = cur > loss_best  # (A,)
                n_up += up.to(cur.dtype)
                x_best = torch.lerp(x_best, x, bcast(up.to(x.dtype), x))
                g_best = torch.where(bcast(up, g), g, g_best)
                loss_best = torch.maximum(cur, loss_best)
                it += 1
            cut = (n_up < self.cfg.rho * phase) | (~reduced & (last_best >= loss_best))
            reduced, last_best = cut, loss_best.clone()
            step = torch.where(cut, step / 2, step)
            x[cut], g[cut] = x_best[cut], g_best[cut]
            x_prev[cut] = x[cut]
            if bool(found.all()):  # one sync per phase: stop once every example is broken
                break
        note_trace(hist, ~found, route_of(model))
        return torch.where(bcast(found, x), x_adv, x_best)
