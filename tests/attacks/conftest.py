"""Small shared models for the attack tests: linear models with known closed forms and one MLP
trained on digits (the same one torchattacks is compared on)."""

from __future__ import annotations

import pytest
import torch

from adv_core.config.data import DigitsData
from adv_core.config.models import MlpModel
from adv_core.config.training import StandardTraining
from adv_core.data import load
from adv_core.models import Ensemble, new_ensemble
from adv_core.rng import generator
from adv_core.training import train


class Linear(torch.nn.Module):
    """z = W x + b on flattened inputs; exposes linear_weights() for the exact attack."""

    def __init__(self, d: int, c: int, seed: int, scale: float = 3.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(scale * torch.randn(c, d, generator=g) / d**0.5)
        self.b = torch.nn.Parameter(0.1 * torch.randn(c, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T + self.b

    def linear_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.w.detach(), self.b.detach()


def linear_problem(
    c: int, n: int = 200, seed: int = 0
) -> tuple[Linear, torch.Tensor, torch.Tensor]:
    """A random linear model on (1, 4, 4) inputs in [0, 1]; 90% of labels agree with it."""
    model = Linear(16, c, seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(n, 1, 4, 4, generator=g)
    y = model(x).argmax(1).detach()
    flip = torch.rand(n, generator=g) < 0.1
    y[flip] = (y[flip] + 1) % c
    return model, x, y


@pytest.fixture(scope="session")
def digits_mlp() -> tuple[Ensemble, torch.Tensor, torch.Tensor]:
    """A one-member MLP (64 x 2) trained on 1000 digits; 200 held-out test points."""
    bundle = load(DigitsData(), 1000, 200, 0)
    ens = new_ensemble(MlpModel(width=64, depth=2), bundle.input_shape, 10, 1, 0)
    cfg = StandardTraining(epochs=30, batch_size=64, lr=3e-3)
    train(ens, bundle, cfg, generator("t", 0), torch.device("cpu"))
    return ens.eval(), bundle.x_test, bundle.y_test
