"""Attacks run a conv model on CPU as a channels-last twin (``adv_core.layout.fast_layout``):
the twin must be the model (logits and input gradients), the attack's result the one the
model as given produces, and the twin used only where it is safe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adv_core import attacks, layout
from adv_core.config.attacks import ApgdAttack, SquareAttack
from adv_core.config.models import CnnModel, MlpModel
from adv_core.defenses import GaussianNoise
from adv_core.models import new_ensemble
from adv_core.rng import generator

BOX = (0.0, 1.0)


def _x(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _cnn(members: int = 1) -> nn.Module:
    return new_ensemble(CnnModel(channels=4, hidden=16), (1, 8, 8), 10, members, 0).eval()


def test_the_twin_is_the_model_in_channels_last() -> None:
    model, x = _cnn(), _x()
    twin = layout.fast_layout(model, x)
    assert twin is not model and isinstance(twin, nn.Module)
    convs = [m for m in twin.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert all(
        m.weight.is_contiguous() for m in model.modules() if isinstance(m, nn.Conv2d)
    )  # the caller's model is not touched
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = model(xa), twin(xb)
    assert torch.allclose(a, b, atol=1e-5)
    (ga,) = torch.autograd.grad(a.sum(), xa)
    (gb,) = torch.autograd.grad(b.sum(), xb)
    assert torch.allclose(ga, gb, atol=1e-5)
    assert layout.fast_layout(model, x) is twin  # built once


def test_a_changed_model_gets_a_new_twin() -> None:
    model, x = _cnn(), _x()
    twin = layout.fast_layout(model, x)
    with torch.no_grad():
        next(model.parameters()).mul_(1.5)  # e.g. another training epoch
    fresh = layout.fast_layout(model, x)
    assert fresh is not twin
    assert torch.allclose(fresh(x), model(x), atol=1e-5)


class _ViewsNchw(nn.Module):
    """A forward that assumes NCHW-contiguous activations (``view``): not convertible."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.fc(h.view(h.shape[0], -1))


@pytest.mark.parametrize(
    "model",
    [
        new_ensemble(MlpModel(width=8), (1, 8, 8), 10, 1, 0),  # no conv
        new_ensemble(CnnModel(channels=4, hidden=8), (1, 8, 8), 10, 3, 0),  # vmapped stack
        new_ensemble(
            CnnModel(channels=4, hidden=8), (1, 8, 8), 10, 1, 0, preprocess=GaussianNoise(0.1)
        ),  # randomized
        _ViewsNchw(),
    ],
    ids=["mlp", "vmapped", "randomized", "views-nchw"],
)
def test_models_run_as_given_where_the_twin_is_not_safe(model: nn.Module) -> None:
    assert layout.fast_layout(model, _x()) is model


def test_opting_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEPS_CHANNELS_LAST", "0")
    model = _cnn()
    assert layout.fast_layout(model, _x()) is model


@pytest.mark.parametrize(
    "cfg",
    [ApgdAttack(eps=(0.1,), steps=20), SquareAttack(eps=(0.1,), queries=200)],
    ids=["apgd", "square"],
)
def test_an_attack_through_the_twin_is_the_attack_on_the_model(
    cfg: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, x = _cnn(), torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)  # every point starts classified right
    attack = attacks.build(cfg)
    fast = attack(model, x, y, bounds=BOX, generator=generator("layout"))
    monkeypatch.setenv("SWEEPS_CHANNELS_LAST", "0")
    plain = attack(model, x, y, bounds=BOX, generator=generator("layout"))
    assert float(plain.robust_acc()[0]) < 1.0  # the attack breaks some
    assert abs(float(fast.robust_acc()[0]) - float(plain.robust_acc()[0])) <= 1 / len(y)
    assert (fast.n_forward, fast.n_backward) == (plain.n_forward, plain.n_backward)
