"""Checkpoints: every architecture and defense round-trips through safetensors + JSON, and
loading never unpickles."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from adv_core.config.data import GaussianData
from adv_core.config.models import CnnModel, LinearModel, MlpModel, ResnetModel
from adv_core.config.training import StandardTraining
from adv_core.data import load
from adv_core.defenses import build_defense
from adv_core.models import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    LoopMembers,
    Members,
    load_ensemble,
    new_ensemble,
    register,
    save_ensemble,
)
from adv_core.rng import generator
from adv_core.training import train

ARCHS = [
    (LinearModel(), (1, 8, 8)),
    (MlpModel(width=16, depth=2, activation="tanh"), (1, 8, 8)),
    (MlpModel(width=8, depth=1, activation="sigmoid"), (20,)),
    (CnnModel(channels=4, hidden=16), (1, 8, 8)),
    (ResnetModel(width=8, blocks=1), (3, 16, 16)),
]
DEFENSES = [None, ("quantize", 0.25), ("noise", 0.1)]


@pytest.mark.parametrize("defense", DEFENSES, ids=["plain", "quantize", "noise"])
@pytest.mark.parametrize("arch", ARCHS, ids=["linear", "mlp-tanh", "mlp-vector", "cnn", "resnet"])
@pytest.mark.parametrize("vectorize", [True, False], ids=["vmap", "loop"])
def test_round_trip(tmp_path: Path, arch: tuple, defense: tuple | None, vectorize: bool) -> None:
    cfg, shape = arch
    pre = build_defense(*defense) if defense else None
    ens = new_ensemble(cfg, shape, 3, 2, seed=5, preprocess=pre, vectorize=vectorize)
    with torch.no_grad():  # move weights off their initial values
        for p in ens.members.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_ensemble(ens, tmp_path)
    meta = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert meta["model"]["name"] == cfg.name and meta["n_members"] == 2
    assert (tmp_path / WEIGHTS_FILE).read_bytes()[8:9] == b"{"  # safetensors header, no pickle
    back = load_ensemble(tmp_path)
    assert isinstance(back.members, Members)  # loading always stacks for vmap
    assert back.model_cfg == cfg and back.input_shape == shape and back.n_members == 2
    assert type(back.preprocess) is type(ens.preprocess)
    assert back.randomized == ens.randomized
    a, b = ens.members.state(), back.members.state()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(4, *shape)
    torch.manual_seed(0)
    out_a = ens(x)
    torch.manual_seed(0)
    out_b = back(x)
    assert torch.allclose(out_a, out_b, atol=1e-5)


def test_load_refuses_a_pickle_in_place_of_weights(tmp_path: Path) -> None:
    ens = new_ensemble(LinearModel(), (4,), 2, 1, seed=0)
    save_ensemble(ens, tmp_path)
    torch.save(ens.members.state(), tmp_path / WEIGHTS_FILE)  # a pickle where safetensors go
    with pytest.raises(Exception, match="(?i)header|safetensor|deserializ|invalid"):
        load_ensemble(tmp_path)


class _DataDependent(nn.Module):
    """Scales by a Python float read from the data: vmap cannot batch ``float(tensor)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / max(1.0, float(x.abs().max()))


@register("_dt_data_dependent_probe")
def _data_dependent(cfg: object, shape: tuple[int, ...], c: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), _DataDependent(), nn.Linear(shape[0], c))


def test_unvectorisable_architecture_falls_back_to_a_loop() -> None:
    """The probe call in new_ensemble notices that vmap cannot run the architecture, and the
    members run in a loop instead, with the same interface and training."""
    bundle = load(GaussianData(d=6), 64, 200, seed=0)
    ens = new_ensemble(SimpleNamespace(name="_dt_data_dependent_probe"), (6,), 2, 3, seed=0)
    assert isinstance(ens.members, LoopMembers)
    cfg = StandardTraining(epochs=10, batch_size=16)
    train(ens, bundle, cfg, generator("loop"), torch.device("cpu"))
    with torch.no_grad():
        acc = (ens(bundle.x_test).argmax(1) == bundle.y_test).float().mean()
    assert acc > 0.8 and ens.members.forward_each(torch.zeros(3, 2, 6)).shape == (3, 2, 2)
