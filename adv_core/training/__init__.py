"""Training methods: ``train(ens, data, cfg, gen, device)`` trains an ensemble in place with the
method named by ``cfg.method``.

- ``loop``: the shared loop (per-member shuffled batches, optimiser, divergence check), the
  trainer registry and standard training.
- ``adversarial``: pgd_at, fgsm_at, trades, rst, ensemble_at, grad_reg (each registers itself).

Imports go one way (adversarial -> loop); this module only collects them.
"""

from __future__ import annotations

import torch

from adv_core.config.training import TrainingConfig
from adv_core.data.base import DataBundle
from adv_core.models import Ensemble
from adv_core.training import adversarial as _adversarial  # noqa: F401  (registers its methods)
from adv_core.training.loop import (
    TRAINERS,
    BatchLoss,
    Diverged,
    Trainer,
    TrainLog,
    fit,
    get_trainer,
    member_loss,
)


def train(
    ens: Ensemble, data: DataBundle, cfg: TrainingConfig, gen: torch.Generator, device: torch.device
) -> TrainLog:
    """Train ``ens`` in place with the method named by ``cfg.method``."""
    return get_trainer(cfg.method)(ens, data, cfg, gen, device)


__all__ = [
    "TRAINERS",
    "BatchLoss",
    "Diverged",
    "TrainLog",
    "Trainer",
    "fit",
    "get_trainer",
    "member_loss",
    "train",
]
