"""Adversarial and semi-supervised training methods (registered into adv_core.training.loop.TRAINERS).

Every method keeps the ensemble's layout: members train together, member e on its own batch
xb[e]. Adversarial examples for all members are crafted in one call by flattening: the model
seen by the inner maximisation is z (E*B, *in) -> members.forward_each(z.view(E, B, *in))
flattened to (E*B, C), whose per-example losses depend on member e's parameters only, so one
gradient gives every member its own attack. The inner maximisation uses the attack suite's
norm objects (projection, steepest step, random start) and the input box of the data.

Notation: eps the training budget in ``cfg.norm``; ``rel_step`` the step as a fraction of eps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from adv_core.config.training import (
    AdversarialTraining,
    EnsembleAtTraining,
    FgsmAtTraining,
    GradRegTraining,
    PgdAtTraining,
    RstTraining,
    TradesTraining,
    TrainingBase,
    standard_of,
)
from adv_core.data.base import DataBundle
from adv_core.models import Ensemble, new_ensemble
from adv_core.norms import Norm, get_norm
from adv_core.training.guard import Check, guarded_fit
from adv_core.training.loop import (
    BatchLoss,
    TrainLog,
    fit,
    member_loss,
    register,
    train_standard,
)

Bounds = tuple[float, float] | None
LossFn = Callable[[torch.Tensor], torch.Tensor]
"""loss_fn(z (M, *in)) -> scalar to maximise (a sum over examples)."""


def clip_box(x: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def flat_model(ens: Ensemble, e: int, b: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """(E*B, *in) -> (E*B, C): member e applied to rows e*B .. (e+1)*B - 1."""
    shape = ens.input_shape

    def model(z: torch.Tensor) -> torch.Tensor:
        return ens.members.forward_each(ens.preprocess(z).view(e, b, *shape)).flatten(0, 1)

    return model


def ascend(
    loss_fn: LossFn,
    x0: torch.Tensor,
    start: torch.Tensor,
    norm: Norm,
    eps: float,
    steps: int,
    step: float,
    bounds: Bounds,
) -> torch.Tensor:
    """``steps`` steepest-ascent steps on loss_fn from ``start``, projected onto the eps-ball
    around x0 and the box; returns the last iterate (Madry et al.'s training attack)."""
    x = start.detach()
    for _ in range(steps):
        x = x.requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(loss_fn(x), x)
        x = x.detach() + step * norm.steepest(g)
        x = clip_box(x0 + norm.project(x - x0, eps), bounds).detach()
    return x


def random_start(
    x0: torch.Tensor, norm: Norm, eps: float, gen: torch.Generator, bounds: Bounds
) -> torch.Tensor:
    return clip_box(x0 + norm.random_init(x0.shape, eps, gen, x0.device), bounds)


def ce_sum(model: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor) -> LossFn:
    return lambda z: F.cross_entropy(model(z), y, reduction="sum")


def pgd_batch(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: AdversarialTraining,
    steps: int,
    rel_step: float,
    bounds: Bounds,
    gen: torch.Generator,
    random_init: bool = True,
) -> torch.Tensor:
    """PGD on the CE loss from a uniform random start (or x itself): x (M, *in), y (M,) ->
    x_adv (M, *in)."""
    if cfg.eps == 0:
        return x
    norm = get_norm(cfg.norm)
    start = random_start(x, norm, cfg.eps, gen, bounds) if random_init else x
    return ascend(ce_sum(model, y), x, start, norm, cfg.eps, steps, rel_step * cfg.eps, bounds)


def _adversarial_loss(
    cfg: PgdAtTraining | FgsmAtTraining | RstTraining, steps: int, bounds: Bounds
) -> BatchLoss:
    """Loss on PGD examples (steps > 1: Madry et al.; steps = 1: fast FGSM training)."""

    def loss(
        ens: Ensemble, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        e, b = yb.shape
        model = flat_model(ens, e, b)
        x_adv = pgd_batch(
            model, xb.flatten(0, 1), yb.flatten(), cfg, steps, cfg.rel_step, bounds, gen,
            random_init=not isinstance(cfg, FgsmAtTraining) or cfg.random_init,
        )  # fmt: skip
        return member_loss(model(x_adv).view(e, b, -1), yb, cfg.loss)

    return loss


def _train_on(
    ens: Ensemble, data: DataBundle, cfg: TrainingBase, gen: torch.Generator, device: torch.device,
    batch_loss: BatchLoss,
) -> TrainLog:  # fmt: skip
    return fit(ens, data.x_train.to(device), data.y_train.to(device), cfg, gen, batch_loss)


@register("pgd_at")
def train_pgd_at(
    ens: Ensemble, data: DataBundle, cfg: PgdAtTraining, gen: torch.Generator, device: torch.device
) -> TrainLog:
    """Madry et al. 2018: minimise the loss on ``steps``-step PGD examples."""
    return _train_on(ens, data, cfg, gen, device, _adversarial_loss(cfg, cfg.steps, data.bounds))


@register("fgsm_at")
def train_fgsm_at(
    ens: Ensemble, data: DataBundle, cfg: FgsmAtTraining, gen: torch.Generator, device: torch.device
) -> TrainLog:
    """Wong et al. 2020 ("fast is better than free"): random start, one step of rel_step*eps;
    with ``cfg.guard`` the PGD check against catastrophic overfitting (training/guard.py)."""
    batch_loss = _adversarial_loss(cfg, 1, data.bounds)
    if not cfg.guard:
        return _train_on(ens, data, cfg, gen, device, batch_loss)
    return guarded_fit(ens, data, cfg, gen, device, batch_loss, _pgd_check(cfg, data.bounds))


def _pgd_check(cfg: FgsmAtTraining, bounds: Bounds) -> Check:
    """The guard's check: every member's PGD robust accuracy on the held-out batch, averaged."""

    def check(ens: Ensemble, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> float:
        e = ens.n_members
        model = flat_model(ens, e, len(y))
        xs, ys = x.repeat(e, *[1] * (x.dim() - 1)), y.repeat(e)  # member i sees rows i*H..
        x_adv = pgd_batch(model, xs, ys, cfg, cfg.guard_steps, 0.25, bounds, gen)
        with torch.no_grad():
            return float((model(x_adv).argmax(dim=1) == ys).float().mean())

    return check


def _kl_rows(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """(M, C), (M, C) -> (M,) KL(softmax clean || softmax adv)."""
    p_log = F.log_softmax(logits_clean, dim=-1)
    q_log = F.log_softmax(logits_adv, dim=-1)
    return (p_log.exp() * (p_log - q_log)).sum(dim=-1)


def _trades_loss(cfg: TradesTraining, bounds: Bounds) -> BatchLoss:
    """Zhang et al. 2019: CE(f(x), y) + beta * KL(f(x) || f(x')), x' maximising the KL."""

    def loss(
        ens: Ensemble, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        e, b = yb.shape
        model = flat_model(ens, e, b)
        x = xb.flatten(0, 1)  # (E*B, *in)
        logits = model(x)
        x_adv = x
        if cfg.eps > 0:
            norm, target = get_norm(cfg.norm), logits.detach()
            noise = 1e-3 * torch.randn(x.shape, generator=gen).to(x.device)
            start = clip_box(x + norm.project(noise, cfg.eps), bounds)
            kl = lambda z: _kl_rows(target, model(z)).sum()  # noqa: E731
            x_adv = ascend(kl, x, start, norm, cfg.eps, cfg.steps, cfg.rel_step * cfg.eps, bounds)
        robust = _kl_rows(logits, model(x_adv)).view(e, b).mean(dim=1).sum()
        return member_loss(logits.view(e, b, -1), yb, cfg.loss) + cfg.beta * robust

    return loss


@register("trades")
def train_trades(
    ens: Ensemble, data: DataBundle, cfg: TradesTraining, gen: torch.Generator, device: torch.device
) -> TrainLog:
    return _train_on(ens, data, cfg, gen, device, _trades_loss(cfg, data.bounds))


def _fresh_seed(gen: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=gen))


def _standard_models(
    ens: Ensemble,
    data: DataBundle,
    cfg: TrainingBase,
    n: int,
    gen: torch.Generator,
    device: torch.device,
) -> tuple[Ensemble, TrainLog]:
    """``n`` fresh members of the same architecture, trained with cfg's optimiser settings on
    clean labeled data and no defense (RST's teachers, ensemble_at's static sources)."""
    helper = new_ensemble(ens.model_cfg, ens.input_shape, ens.n_classes, n, _fresh_seed(gen)).to(
        device
    )
    log = train_standard(helper, data, standard_of(cfg), gen, device)
    return helper, log


@register("rst")
def train_rst(
    ens: Ensemble, data: DataBundle, cfg: RstTraining, gen: torch.Generator, device: torch.device
) -> TrainLog:
    """Carmon et al. 2019: member e's own standard teacher pseudo-labels the unlabeled pool;
    member e is then PGD-trained on the labeled plus its pseudo-labeled points."""
    if data.x_unlabeled is None or len(data.x_unlabeled) == 0:
        raise ValueError("rst needs an unlabeled pool (n_unlabeled > 0)")
    teachers, _ = _standard_models(ens, data, cfg, ens.n_members, gen, device)
    x_un = data.x_unlabeled.to(device)
    with torch.no_grad():
        pseudo = teachers.members(x_un).argmax(dim=-1)  # (E, U)
    x = torch.cat([data.x_train.to(device), x_un])  # (N + U, *in)
    y_lab = data.y_train.to(device).expand(ens.n_members, -1)  # (E, N)
    y = torch.cat([y_lab, pseudo], dim=1)  # (E, N + U)
    log = fit(ens, x, y, cfg, gen, _adversarial_loss(cfg, cfg.steps, data.bounds))
    agree = (pseudo == pseudo.mode(dim=0).values).float().mean()
    log.info["pseudo_label_agreement"] = float(agree)
    return log


def _ensemble_at_loss(cfg: EnsembleAtTraining, static: Ensemble, bounds: Bounds) -> BatchLoss:
    """Tramer et al. 2018: each batch, FGSM examples from a source drawn uniformly among the
    model being trained and the static models; loss = (CE(clean) + CE(adversarial)) / 2."""
    norm = get_norm(cfg.norm)

    def loss(
        ens: Ensemble, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        e, b = yb.shape
        model = flat_model(ens, e, b)
        x, y = xb.flatten(0, 1), yb.flatten()
        source = int(torch.randint(0, static.n_members + 1, (1,), generator=gen))
        src = model if source == 0 else static.member(source - 1)
        x_adv = x
        if cfg.eps > 0:
            x_adv = ascend(ce_sum(src, y), x, x, norm, cfg.eps, 1, cfg.eps, bounds)
        clean = member_loss(model(x).view(e, b, -1), yb, cfg.loss)
        return 0.5 * clean + 0.5 * member_loss(model(x_adv).view(e, b, -1), yb, cfg.loss)

    return loss


@register("ensemble_at")
def train_ensemble_at(
    ens: Ensemble,
    data: DataBundle,
    cfg: EnsembleAtTraining,
    gen: torch.Generator,
    device: torch.device,
) -> TrainLog:
    static, _ = _standard_models(ens, data, cfg, cfg.n_static, gen, device)
    static.requires_grad_(False)
    return _train_on(ens, data, cfg, gen, device, _ensemble_at_loss(cfg, static, data.bounds))


def _grad_reg_loss(cfg: GradRegTraining) -> BatchLoss:
    """CE + lam * mean_b ||grad_x CE_b||_q^2, q the dual of ``cfg.norm`` (double backprop)."""
    dual = get_norm(cfg.norm).dual

    def loss(
        ens: Ensemble, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        e, b = yb.shape
        x = xb.detach().requires_grad_(True)
        logits = ens.members.forward_each(ens.preprocess(x))  # (E, B, C)
        ce = member_loss(logits, yb, "ce")
        (g,) = torch.autograd.grad(ce * b, x, create_graph=True)  # per-example gradients
        penalty = (dual.norm(g.flatten(0, 1)) ** 2).view(e, b).mean(dim=1).sum()
        base = ce if cfg.loss == "ce" else member_loss(logits, yb, cfg.loss)
        return base + cfg.lam * penalty

    return loss


@register("grad_reg")
def train_grad_reg(
    ens: Ensemble,
    data: DataBundle,
    cfg: GradRegTraining,
    gen: torch.Generator,
    device: torch.device,
) -> TrainLog:
    return _train_on(ens, data, cfg, gen, device, _grad_reg_loss(cfg))
