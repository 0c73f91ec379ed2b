"""Every attack and norm: perturbations stay in the eps-ball and the box, successes are nested
in eps, eps = 0 is the clean accuracy, and a fixed generator gives identical results."""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.config import attacks as ac
from adv_core.norms import get_norm
from adv_core.rng import generator

E_LINF, E_L2, E_L1 = (0.0, 0.05, 0.2), (0.0, 0.3, 1.0), (0.0, 0.5, 2.0)


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
    )


CASES = [
    ac.FgsmAttack(norm="linf", eps=E_LINF),
    ac.FgsmAttack(norm="l2", eps=E_L2),
    ac.FgsmAttack(norm="l1", eps=E_L1),
    ac.PgdAttack(norm="linf", eps=E_LINF, steps=5, restarts=2),
    ac.PgdAttack(norm="l2", eps=E_L2, steps=5, loss="margin"),
    ac.PgdAttack(norm="l1", eps=E_L1, steps=5),
    ac.ApgdAttack(norm="linf", eps=E_LINF, steps=8),
    ac.ApgdAttack(norm="l2", eps=E_L2, steps=8, loss="dlr_targeted", n_targets=2),
    ac.ApgdAttack(norm="l1", eps=E_L1, steps=8, loss="auto", n_targets=1),
    ac.EotPgdAttack(norm="linf", eps=E_LINF, steps=3, samples=2, noise=0.05),
    ac.BpdaAttack(norm="l2", eps=E_L2, steps=3),
    ac.CwAttack(eps=E_L2, steps=10, search_steps=2),
    ac.SquareAttack(norm="linf", eps=E_LINF, queries=30),
    ac.SquareAttack(norm="l2", eps=E_L2, queries=30),
    ac.MinNormAttack(norm="linf", eps=E_LINF, base=ac.FgsmAttack(), max_eps=0.5, bisection_steps=4),
    ac.MinNormAttack(norm="l2", eps=E_L2, base=ac.PgdAttack(norm="l2", steps=3), max_eps=2.0),
    ac.TransferAttack(norm="linf", eps=E_LINF, base=ac.PgdAttack(steps=3)),
]
IDS = [f"{c.name}-{c.norm}-{getattr(c, 'loss', '')}" for c in CASES]


@pytest.mark.parametrize("bounds", [(0.0, 1.0), None], ids=["box", "nobox"])
@pytest.mark.parametrize("cfg", CASES, ids=IDS)
def test_ball_box_nesting(cfg: object, bounds: tuple[float, float] | None) -> None:
    model = _mlp()
    x, y = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(1)), torch.arange(40) % 4
    attack = attacks.build(cfg)
    if isinstance(attack, attacks.Transfer):
        attack = attack.with_source(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4)))
    res = attack(model, x, y, cfg.eps, bounds=bounds, generator=generator("inv"))  # type: ignore[attr-defined]
    norm = get_norm(cfg.norm)  # type: ignore[attr-defined]
    clean = (model(x).argmax(1) == y).float().mean()
    assert torch.isclose(res.robust_acc()[0], clean)
    assert bool((res.success[1:] >= res.success[:-1]).all()), "success must be nested in eps"
    for eps, xa, s in zip(res.epsilons, res.x_adv, res.success, strict=True):
        assert float(norm.norm(xa - x).max()) <= eps * (1 + 1e-5) + 1e-6
        if bounds is not None:
            assert float(xa.min()) >= bounds[0] and float(xa.max()) <= bounds[1]
        assert bool((model(xa).argmax(1) != y)[s & (xa != x).flatten(1).any(1)].all())
    assert res.robust_acc()[-1] < clean, "the largest budget must break something"


@pytest.mark.parametrize("k", [1.0, 3.0])
def test_sparse_changes_at_most_k_entries_inside_the_box(k: float) -> None:
    model = _mlp()
    x, y = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(2)), torch.arange(40) % 4
    cfg = ac.SparseAttack(eps=(0.0, k), steps=5)
    res = attacks.build(cfg)(model, x, y, cfg.eps, bounds=(0.0, 1.0), generator=generator("s"))
    changed = (res.x_adv[-1] != x).flatten(1).sum(1)
    assert int(changed.max()) <= k
    assert float(res.x_adv[-1].min()) >= 0.0 and float(res.x_adv[-1].max()) <= 1.0
    assert res.robust_acc()[-1] < res.robust_acc()[0]
    with pytest.raises(ValueError, match="bounded"):
        attacks.build(cfg)(model, x, y, cfg.eps, bounds=None)


def test_fooling_inputs_stay_in_the_ball_around_their_noise() -> None:
    model = _mlp()
    x, y = torch.rand(50, 1, 4, 4), torch.zeros(50, dtype=torch.long)
    cfg = ac.FoolingAttack(eps=(0.0, 0.1, 0.5), confidence=0.3, steps=5)
    res = attacks.build(cfg)(model, x, y, cfg.eps, bounds=(0.0, 1.0), generator=generator("f"))
    noise = res.info["x"]
    assert not torch.equal(noise, x), "fooling attacks random noise, not the test points"
    for eps, xa in zip(res.epsilons, res.x_adv, strict=True):
        assert float((xa - noise).abs().max()) <= eps + 1e-6
    with torch.no_grad():
        conf = [float(model(xa).softmax(1).amax(1).mean()) for xa in res.x_adv]
    assert conf[-1] > conf[0] and res.robust_acc()[-1] < res.robust_acc()[0]


@pytest.mark.parametrize(
    "cfg",
    [
        ac.PgdAttack(eps=E_LINF, steps=4),
        ac.ApgdAttack(norm="l2", eps=E_L2, steps=6),
        ac.SquareAttack(eps=E_LINF, queries=20),
        ac.SparseAttack(eps=(0.0, 2.0), steps=3, restarts=2),
        ac.EotPgdAttack(eps=E_LINF, steps=2, samples=2, noise=0.1),
    ],
    ids=lambda c: c.name,
)
def test_deterministic_given_the_generator(cfg: object) -> None:
    model = _mlp()
    x, y = torch.rand(30, 1, 4, 4, generator=torch.Generator().manual_seed(3)), torch.arange(30) % 4
    runs = [
        attacks.build(cfg)(model, x, y, cfg.eps, bounds=(0.0, 1.0), generator=generator("d"))  # type: ignore[attr-defined]
        for _ in range(2)
    ]
    assert torch.equal(runs[0].success, runs[1].success)
    assert all(torch.equal(a, b) for a, b in zip(runs[0].x_adv, runs[1].x_adv, strict=True))


def test_registry_is_loud_and_complete() -> None:
    names = {"fgsm", "fgm", "pgd", "apgd", "cw", "square", "eot_pgd", "bpda", "transfer", "sparse",
             "exact", "min_norm", "fooling"}  # fmt: skip
    assert names <= set(attacks.known())
    with pytest.raises(KeyError, match="registered twice"):
        attacks.register("pgd", attacks.Pgd)
