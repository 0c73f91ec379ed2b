"""The attack base class (STYLE 3): attacks are stateless objects built from a config and called
with the model each time. The base owns the shared work once: sorting eps, the cascade over
nested budgets (larger eps attack only what is still robust), bounds and projection, scoring
success, losses and gradients; an attack writes only ``perturb`` (its step).

Convention: ``success[k, n]`` is True when the model misclassifies example n at budget
epsilons[k] (an example misclassified clean counts as a success at every eps, so robust
accuracy = 1 - success.mean() and eps = 0 gives clean accuracy). Correct means the true class
has the strictly largest logit (ties count as errors). ``eps`` reaches ``perturb`` as a (A,)
tensor, one budget per example, so bisection wrappers can give each example its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, final

import torch
import torch.nn.functional as F

from adv_core.attacks.counting import (
    Affine,
    Counted,
    affine_of,
    count_passes,
    rows,
    unwrap,
)
from adv_core.layout import fast_layout
from adv_core.norms import Norm, get_norm

Model = Callable[[torch.Tensor], torch.Tensor]
"""(B, *D) -> (B, C) logits."""

Rows = torch.Tensor | slice  # the rows a worst-case run attacks: indices, or all of them

Bounds = tuple[float, float] | None
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(logits (B, C), y (B,)) -> (B,) per-example loss to maximise."""


@dataclass
class AttackResult:
    """Per-eps adversarial inputs and successes.

    x_adv: one (N, *D) tensor per eps (the clean input where nothing was found).
    success: (K, N) bool.  distances: (N,) smallest successful perturbation norm, for
    minimum-norm attacks and closed forms (inf where none was found), else None.
    n_forward, n_backward: model passes spent by the call, counted per example (a forward pass
    of a batch of B inputs counts B; a backward pass through it counts B), docs/attacks.md.
    flags: sanity-check names the attack itself raised (e.g. ``min_norm_gap``).
    broken_by: (N,) for attacks made of parts (autoattack): the part that broke each example at
    its smallest broken eps ("clean": misclassified unattacked; None: never broken).
    """

    epsilons: tuple[float, ...]
    x_adv: list[torch.Tensor]
    success: torch.Tensor
    distances: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    n_forward: int = 0
    n_backward: int = 0
    flags: list[str] = field(default_factory=list)
    broken_by: list[str | None] | None = None

    def robust_acc(self) -> torch.Tensor:
        """(K,) fraction of examples not broken at each eps."""
        return 1.0 - self.success.float().mean(dim=1)


def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, C), (B,) -> (B,) bool: the true logit strictly beats every other (ties and nan
    count as wrong): all C - 1 differences to the others are negative (few ops: attacks call
    this every step)."""
    below = (logits - logits.gather(1, y[:, None])) < 0  # (B, C); False at y itself
    return below.sum(dim=1) == logits.shape[1] - 1


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


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def dlr_scale(logits: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """DLR's denominator (B,): z_pi1 - z_pi3 (targeted: z_pi1 - (z_pi3 + z_pi4) / 2) from the
    sorted logits. With too few classes for the formula it is 1 (two classes: the margin)."""
    z = logits.sort(dim=1).values  # ascending
    c = z.shape[1]
    if targeted and c >= 4:
        return z[:, -1] - (z[:, -3] + z[:, -4]) / 2 + 1e-12
    if c >= 3:
        return z[:, -1] - z[:, -3] + 1e-12
    return torch.ones_like(z[:, 0])


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Croce and Hein's difference of logits ratio, scale-invariant: (B,)."""
    return margin_loss(logits, y) / dlr_scale(logits)


LOSSES: dict[str, Loss] = {"ce": ce_loss, "margin": margin_loss, "dlr": dlr_loss}


def clip_box(x: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> broadcastable against (B, *D)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def loss_grad(
    model: Model, x: torch.Tensor, y: torch.Tensor, loss: str | Loss = "ce"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input gradient (B, *D), logits (B, C)) of the summed per-example loss at x.

    A model that is exactly affine (``counting.affine_of``: a one-member linear model) gets it
    in closed form, dL/dx = (dL/dz) W with dL/dz = softmax(z) - onehot(y) for CE (autograd on
    the C logits for other losses): the same numbers as autograd through the model, without
    its per-call overhead, which dominates small cells (issue 17 item 7)."""
    affine = affine_of(model)
    if affine is not None:
        return _affine_loss_grad(model, affine, x, y, loss)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        (g,) = torch.autograd.grad(_summed_loss(loss, logits, y), x)
    return g, logits.detach()  # autograd.grad's result carries no graph


def _affine_loss_grad(
    model: Model, affine: Affine, x: torch.Tensor, y: torch.Tensor, loss: str | Loss
) -> tuple[torch.Tensor, torch.Tensor]:
    w, b = affine
    logits = F.linear(x.detach().flatten(1), w, b)
    count_passes(model, len(x))
    if loss == "ce":
        dz = torch.softmax(logits, dim=1)
        dz.scatter_add_(
            1, y[:, None], torch.full((len(y), 1), -1.0, dtype=dz.dtype, device=dz.device)
        )
    else:
        z = logits.requires_grad_(True)
        with torch.enable_grad():
            (dz,) = torch.autograd.grad(_summed_loss(loss, z, y), z)
        logits = logits.detach()
    return (dz @ w).view(x.shape), logits


def _summed_loss(loss: str | Loss, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The summed per-example loss; CE summed inside the kernel (the same gradient, two ops
    fewer per step)."""
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="sum")
    fn = LOSSES[loss] if isinstance(loss, str) else loss
    return fn(logits, y).sum()


def input_grad(model: Model, x: torch.Tensor, y: torch.Tensor, loss: str = "ce") -> torch.Tensor:
    """Gradient of the summed per-example loss with respect to the inputs: (B, *D)."""
    return loss_grad(model, x, y, loss)[0]


class Attack:
    """Base of every attack: ``attack(model, x, y, epsilons=[...], bounds=..., generator=...)``.

    ``bounds`` is required: the input box ``(lo, hi)`` or ``None`` for unbounded data, said
    explicitly (DESIGN.md, additions to the contract), never a silent default.

    Class facts read by the sanity checks: ``white_box`` (uses gradients), ``minimum_norm``
    (reports distances), ``misclassification`` (success means a wrong label; False for the
    fooling metric), ``eot`` (averages over the model's randomness); and one for ``attack_at``:
    ``feasible_candidates`` (``perturb`` returns points inside ball and box by construction,
    so they are not projected again). ``routes_rows``: wherever the attack selects, repeats or
    reorders rows it selects the model with them (``counting.rows``), so it can attack a model
    that scores each row with its own target (``models.Targets``: an ensemble and its members
    in one call); other attacks refuse such a model.

    ``__call__`` is final: it sorts eps, counts model passes and hands the work to one hook,
    ``solve``. Fixed-eps attacks keep the default (the cascade over eps of ``perturb``);
    minimum-norm attacks (``min_norm.MinimumNorm``) and closed forms (``exact``) override ``solve``.
    """

    white_box: bool = True
    minimum_norm: bool = False
    eot: bool = False
    feasible_candidates: bool = False  # perturb's output is inside ball and box already
    routes_rows: bool = False  # hands every row selection its model (``counting.rows``)

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.norm: Norm = get_norm(cfg.norm)

    @property
    def misclassification(self) -> bool:
        """From the config (``adv_core.config.attacks``), the one home of this fact."""
        return bool(self.cfg.misclassification)

    @final
    def __call__(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        epsilons: Sequence[float] | None = None,
        *,
        bounds: Bounds,
        generator: torch.Generator | None = None,
        batch_size: int = 1024,
    ) -> AttackResult:
        eps_list = sorted_eps(epsilons if epsilons is not None else self.cfg.eps)
        if not self.routes_rows and hasattr(unwrap(model), "select_rows"):
            raise TypeError(f"{type(self).__name__} cannot attack a model that routes rows")
        counted = Counted(fast_layout(model, x))  # conv models: channels-last on CPU
        x, y = self.inputs(counted, x, y, generator, bounds)
        result = self.solve(counted, x, y, eps_list, bounds, generator, batch_size)
        result.n_forward, result.n_backward = counted.n_forward, counted.n_backward
        return result

    # -- hooks an attack may override -------------------------------------------------------
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
        """The whole evaluation at the sorted budgets (default: the cascade of ``perturb``)."""
        return self.cascade(model, x, y, eps_list, bounds, generator, batch_size)

    def project(
        self, x0: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        """Onto the intersection of the eps-ball around x0 and the box (``Norm.project_box``:
        exact for every norm)."""
        if bounds is None:
            return x0 + self.norm.project(x - x0, eps)
        lo, hi = bounds
        return clip_box(x0 + self.norm.project_box(x - x0, eps, hi - x0, x0 - lo), bounds)

    def projector(
        self, x0: torch.Tensor, eps: torch.Tensor, bounds: Bounds
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``project`` onto the set around x0, with the box's room around x0 computed once (for
        attacks that project every step)."""
        if type(self).project is not Attack.project or bounds is None:
            return lambda x: self.project(x0, x, eps, bounds)
        lo, hi = bounds
        up, down = hi - x0, x0 - lo
        return lambda x: clip_box(x0 + self.norm.project_box(x - x0, eps, up, down), bounds)

    def feasible_box(
        self, x0: torch.Tensor, eps: torch.Tensor, bounds: Bounds
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The set ``project`` maps onto (ball around x0 and box) as elementwise bounds (lo, hi)
        (A, *D) when it is a box (linf: ``Norm.ball_box``), else None. Iterative attacks then
        project with one clamp per step against bounds computed once per run."""
        if type(self).project is not Attack.project:  # an attack with its own projection
            return None
        return self.norm.ball_box(x0, eps, bounds)

    def adversarial(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the attack's success criterion on logits (default: misclassified)."""
        return ~correct(logits, y)

    def robust(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) bool: not ``adversarial`` (without the double negation where it is the
        default: iterative attacks ask this every step)."""
        if getattr(self.adversarial, "__func__", None) is Attack.adversarial:  # not replaced
            return correct(logits, y)
        return ~self.adversarial(logits, y)

    def gradient(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        loss: str | Loss,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(input gradient, logits) the attack steps on; EOT and BPDA override this."""
        return loss_grad(model, x, y, loss)

    def inputs(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
        bounds: Bounds,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The points to attack (default: the evaluation points themselves)."""
        return x, y

    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Adversarial candidates (A, *D) for the still-robust x (A, *D) at budgets eps (A,).
        Every fixed-eps attack writes this; attacks that override ``solve`` need not."""
        raise NotImplementedError(f"{type(self).__name__} has no fixed-eps step")

    # -- shared work ----------------------------------------------------------------------
    def worst_case(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        restarts: int,
        run: Callable[[int, Rows], torch.Tensor],
    ) -> torch.Tensor:
        """Per-example worst case over ``restarts`` runs: ``run(r, idx)`` attacks x[idx] and
        returns candidates for them; each restart attacks only what no earlier one broke, so an
        example counts as robust only if every restart failed. One run gets ``idx`` = every
        row as a slice (views, no gather: small cells pay per op)."""
        if len(y) == 0:  # the cascade's chunk when nothing is left to attack
            return x.clone()
        if restarts == 1:
            return run(0, slice(None))
        best = x.clone()
        alive = torch.ones(len(y), dtype=torch.bool, device=x.device)
        for r in range(restarts):
            idx = alive.nonzero()[:, 0]
            if len(idx) == 0:
                break
            xa = run(r, idx)
            best[idx] = xa  # the last attempt for survivors; successful ones are kept
            if r + 1 < restarts:
                alive[idx[self.hits(rows(model, idx), xa, y[idx])]] = False
        return best

    @torch.no_grad()
    def hits(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
    ) -> torch.Tensor:
        if len(y) == 0:
            return torch.zeros(0, dtype=torch.bool, device=x.device)
        if len(y) <= batch_size:
            return self.adversarial(model(x), y)
        out = [
            self.adversarial(rows(model, sl)(x[sl]), y[sl])
            for sl in (slice(i, i + batch_size) for i in range(0, len(y), batch_size))
        ]
        return torch.cat(out)

    def attack_at(
        self,
        model: Model,
        x0: torch.Tensor,
        y0: torch.Tensor,
        eps: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_adv (A, *D) inside ball and box, hit (A,)) for per-example budgets eps (A,).
        ``perturb``'s candidates are projected unless the attack's class says they are feasible
        by construction (``feasible_candidates``)."""
        xa = self.perturb(model, x0, y0, eps, bounds, generator).detach()
        if not self.feasible_candidates:
            xa = self.project(x0, xa, eps, bounds)
        return xa, self.hits(model, xa, y0)

    def cascade(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: tuple[float, ...],
        bounds: Bounds,
        generator: torch.Generator | None,
        batch_size: int,
    ) -> AttackResult:
        """Every budget in increasing order; what broke at a smaller eps stays broken (nested
        balls), so larger budgets attack only what is still robust. Small problems attack every
        budget in one batched pass instead (``all_eps``)."""
        broken = self.hits(model, x, y)  # (N,)
        n_pos = sum(e > 0 for e in eps_list)
        if n_pos > 1 and n_pos * x.numel() <= ALL_EPS_MAX:
            return self.all_eps(model, x, y, eps_list, broken, bounds, generator)
        x_best = x.detach().clone()
        x_adv: list[torch.Tensor] = []
        success = torch.zeros(len(eps_list), len(y), dtype=torch.bool, device=x.device)
        for k, eps in enumerate(eps_list):
            idx = (~broken).nonzero()[:, 0]
            for chunk in idx.split(batch_size) if eps > 0 else ():
                e = torch.full((len(chunk),), eps, dtype=x.dtype, device=x.device)
                xa, hit = self.attack_at(
                    rows(model, chunk), x[chunk], y[chunk], e, bounds, generator
                )
                x_best[chunk[hit]] = xa[hit]
                broken[chunk[hit]] = True
            success[k] = broken
            x_adv.append(x_best.clone())
        return AttackResult(eps_list, x_adv, success, info={"x": x})

    def all_eps(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: tuple[float, ...],
        broken: torch.Tensor,
        bounds: Bounds,
        generator: torch.Generator | None,
    ) -> AttackResult:
        """The cascade's result from one batched pass: every clean-correct example at every
        positive budget at once (``perturb`` takes one budget per row), then what broke at a
        smaller eps counts as broken at the larger ones, with the smallest breaking eps's
        point. The same outcome per example as the cascade (each eps's attack is independent
        of the others); it attacks rows the cascade would skip, so it is used only where the
        per-pass overhead outweighs them (``ALL_EPS_MAX``)."""
        pos = [e for e in eps_list if e > 0]  # sorted: the zeros come first
        idx = (~broken).nonzero()[:, 0]  # (A,)
        k, a = len(pos), len(idx)
        x_first, by_eps = (
            x.detach().clone(),
            torch.zeros(k, len(y), dtype=torch.bool, device=x.device),
        )
        if a:
            xr = x[idx].repeat(k, *([1] * (x.dim() - 1)))  # (K * A, *D), block j at pos[j]
            e = torch.tensor(pos, dtype=x.dtype, device=x.device).repeat_interleave(a)
            m = rows(model, idx.repeat(k))
            xa, hit = self.attack_at(m, xr, y[idx].repeat(k), e, bounds, generator)
            hit = hit.view(k, a).cumsum(dim=0) > 0  # (K, A): broken at this eps or a smaller one
            first = hit.to(torch.uint8).argmax(dim=0)  # smallest breaking eps (argmax: first)
            xa = xa.view(k, a, *x.shape[1:])[first, torch.arange(a, device=x.device)]
            x_first[idx] = torch.where(bcast(hit[-1], xa), xa, x[idx])
            by_eps[:, idx] = hit
        success = torch.stack([broken] * (len(eps_list) - k) + [broken | b for b in by_eps])
        x_adv = [x.detach().clone() for _ in range(len(eps_list) - k)]
        x_adv += [torch.where(bcast(b, x), x_first, x) for b in by_eps]
        return AttackResult(eps_list, x_adv, success, info={"x": x})


ALL_EPS_MAX = 1 << 19
"""Elements of (positive budgets x the evaluation batch) up to which the cascade attacks all
budgets in one batched pass: below it a pass costs about the same for 1 or K budgets."""


def sorted_eps(epsilons: Sequence[float]) -> tuple[float, ...]:
    eps_list = tuple(sorted(float(e) for e in epsilons))
    if any(e < 0 for e in eps_list):
        raise ValueError(f"eps must be >= 0, got {eps_list}")
    return eps_list
