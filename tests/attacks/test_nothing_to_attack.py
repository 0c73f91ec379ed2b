"""A batch with nothing left to attack: a model that gets every example wrong (all logits equal:
ties count as errors) leaves the cascade an empty chunk, which every attack must take without
error, reporting robust accuracy 0 at every eps. (The one-restart shortcut of
``Attack.worst_case`` once passed that empty chunk on to PGD l2's random start, which failed.)"""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.config import attacks as ac
from tests.attacks.conftest import linear_problem

CONFIGS = [
    ac.FgsmAttack(eps=(0.0, 0.1)),
    ac.PgdAttack(eps=(0.0, 0.1), steps=5),
    ac.PgdAttack(eps=(0.0, 0.1), steps=5, restarts=2),
    ac.PgdAttack(norm="l2", eps=(0.0, 0.5), steps=5),
    ac.ApgdAttack(eps=(0.0, 0.1), steps=5),
    ac.SquareAttack(eps=(0.0, 0.1), queries=10),
    ac.SquareAttack(norm="l2", eps=(0.0, 0.5), queries=10),
    ac.CwAttack(eps=(0.0, 0.5), steps=5, search_steps=2),
    ac.FabAttack(eps=(0.0, 0.1), steps=5),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.name}-{c.norm}")
def test_a_model_wrong_everywhere(cfg: ac.AttackConfig) -> None:
    model, x, y = linear_problem(3, n=30)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    res = attacks.build(cfg)(model, x, y, cfg.eps, bounds=(0.0, 1.0), generator=torch.Generator())
    assert res.success.all()  # broken at every eps, unattacked
    assert all(torch.equal(xa, x) for xa in res.x_adv)
