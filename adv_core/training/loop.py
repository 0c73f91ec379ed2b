"""The shared training loop. All members of an ensemble train together: each member draws its own
batches (its own permutation of the training set), the stacked model runs them in one call
(``forward_each``), and the summed per-member losses give each member exactly the gradient it
would get alone. Methods register a per-batch loss; the loop, optimiser and divergence check
are shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from adv_core.config.training import StandardTraining, TrainingBase
from adv_core.data.base import DataBundle
from adv_core.models import Ensemble
from adv_core.registry import Registry
from adv_core.rng import seed_global


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)
    epochs: int = 0
    info: dict[str, Any] = field(default_factory=dict)


BatchLoss = Callable[[Ensemble, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
"""batch_loss(ens, xb (E, B, *in), yb (E, B), gen) -> scalar: the sum over members of each
member's mean loss."""

Trainer = Callable[[Ensemble, DataBundle, Any, torch.Generator, torch.device], TrainLog]
"""trainer(ens, data, cfg, gen, device) -> TrainLog: trains ``ens`` in place."""

TRAINERS: Registry[Trainer] = Registry("training method")
register = TRAINERS.register
get_trainer = TRAINERS.get


def member_loss(logits: torch.Tensor, yb: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """logits (E, B, C), yb (E, B) -> sum over members of the mean per-example loss."""
    e, b, c = logits.shape
    if kind == "squared":
        target = F.one_hot(yb, c).to(logits.dtype)
        return ((logits - target) ** 2).sum(dim=-1).mean(dim=1).sum()
    return F.cross_entropy(logits.reshape(e * b, c), yb.reshape(e * b), reduction="sum") / b


def make_optimizer(params: list[torch.Tensor], cfg: TrainingBase) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def fit(
    ens: Ensemble,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainingBase,
    gen: torch.Generator,
    batch_loss: BatchLoss,
    after_epoch: Callable[[TrainLog], None] | None = None,
) -> TrainLog:
    """The shared loop: ``cfg.epochs`` epochs of per-member shuffled mini-batches.
    ``after_epoch(log)`` (optional) runs after each epoch, the model in train mode (the
    FGSM-AT guard checks robustness there).

    x (N, *in) on the training device; y (N,) shared labels, or (E, N) one label vector per
    member (pseudo-labels of each member's own teacher). Raises Diverged on a non-finite loss.
    Randomness inside the model (a noise-layer defense draws with the global RNG) is seeded
    from ``gen`` under a forked RNG, so training is reproducible and leaves global state alone.
    """
    opt = make_optimizer(list(ens.members.parameters()), cfg)
    log = TrainLog()
    devices = [x.device] if x.device.type == "cuda" else []
    ens.train()
    with torch.random.fork_rng(devices=devices):
        seed_global(gen.initial_seed())
        for _ in range(cfg.epochs):
            log.losses.append(_epoch(ens, x, y, cfg.batch_size, opt, gen, batch_loss, log.epochs))
            log.epochs += 1
            if after_epoch is not None:
                after_epoch(log)
    ens.eval()
    return log


def _epoch(
    ens: Ensemble,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    batch_loss: BatchLoss,
    epoch: int,
) -> float:
    """One pass: member e sees the training set in its own random order. Returns the mean
    per-member loss."""
    e, n = ens.n_members, y.shape[-1]
    bs = min(batch_size, n)
    order = torch.rand(e, n, generator=gen).argsort(dim=1).to(x.device)  # (E, N)
    total = 0.0
    for start in range(0, n, bs):
        idx = order[:, start : start + bs]  # (E, B)
        yb = y.gather(1, idx) if y.dim() == 2 else y[idx]  # (E, B)
        loss = batch_loss(ens, x[idx], yb, gen)
        if not torch.isfinite(loss):
            raise Diverged(f"non-finite training loss {loss.item()} at epoch {epoch}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * idx.shape[1] / n / e
    return total


def _standard_loss(kind: str) -> BatchLoss:
    def loss(
        ens: Ensemble, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        return member_loss(ens.members.forward_each(ens.preprocess(xb)), yb, kind)

    return loss


@register("standard")
def train_standard(
    ens: Ensemble,
    data: DataBundle,
    cfg: StandardTraining,
    gen: torch.Generator,
    device: torch.device,
) -> TrainLog:
    x, y = data.x_train.to(device), data.y_train.to(device)
    return fit(ens, x, y, cfg, gen, _standard_loss(cfg.loss))
