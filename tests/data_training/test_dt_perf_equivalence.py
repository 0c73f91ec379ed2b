"""Speed-ups must not change numbers (BENCHMARKS.md, "Changes made for speed"): a member
viewed alone (which runs only that member) gives the logits and input gradients it has inside
the ensemble, and a stacked one-member ensemble trains exactly like the loop fallback built
from the same weights."""

from __future__ import annotations

import pytest
import torch

from adv_core.config.models import CnnModel, LinearModel, MlpModel
from adv_core.config.training import StandardTraining
from adv_core.data.base import DataBundle
from adv_core.models import LoopMembers, Members, new_ensemble
from adv_core.rng import generator
from adv_core.training import train

SHAPE = (1, 8, 8)
MODELS = [
    pytest.param(LinearModel(), id="linear"),
    pytest.param(MlpModel(width=16), id="mlp"),
    pytest.param(CnnModel(channels=4, hidden=8), id="cnn"),
]


def _x(n: int = 6) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=generator("perf-x"))


@pytest.mark.parametrize("cfg", MODELS)
@pytest.mark.parametrize("n_members", [1, 3])
@pytest.mark.parametrize("vectorize", [True, False], ids=["stacked", "loop"])
def test_member_view_equals_its_slice_of_the_ensemble(
    cfg: object, n_members: int, vectorize: bool
) -> None:
    ens = new_ensemble(cfg, SHAPE, 10, n_members, seed=3, vectorize=vectorize).eval()
    assert isinstance(ens.members, Members if vectorize and n_members > 1 else LoopMembers)
    x = _x()
    with torch.no_grad():
        all_logits = ens.member_logits(x)  # (E, B, C)
        for i in range(n_members):
            torch.testing.assert_close(ens.member(i)(x), all_logits[i], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ens(x), all_logits.mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cfg", MODELS)
def test_member_view_input_gradient_matches_the_ensemble_slice(cfg: object) -> None:
    ens = new_ensemble(cfg, SHAPE, 10, 3, seed=4).eval()
    x = _x()
    for i in range(3):
        xa = x.clone().requires_grad_(True)
        (ga,) = torch.autograd.grad(ens.member(i)(xa).square().sum(), xa)
        xb = x.clone().requires_grad_(True)
        (gb,) = torch.autograd.grad(ens.member_logits(xb)[i].square().sum(), xb)
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cfg", MODELS)
def test_one_member_stack_trains_like_the_loop_fallback(cfg: object) -> None:
    g = generator("perf-data")
    x = torch.rand(32, *SHAPE, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    bundle = DataBundle(x, y, x[:4], y[:4], 10, (0.0, 1.0))
    tcfg = StandardTraining(epochs=2, batch_size=8, lr=1e-2)
    states = []
    for vectorize in (True, False):
        ens = new_ensemble(cfg, SHAPE, 10, 1, seed=5, vectorize=vectorize)
        log = train(ens, bundle, tcfg, generator("perf-train"), torch.device("cpu"))
        assert len(log.losses) == 2
        states.append(ens.members.state())
    stacked, loop = states
    assert stacked.keys() == loop.keys()
    for k in stacked:
        torch.testing.assert_close(stacked[k], loop[k], rtol=1e-4, atol=1e-5)
