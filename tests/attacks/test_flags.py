"""Attack failures as data: ``unbounded_not_broken`` (ART's security-curve end point) and
``not_converged`` (the loss trace still rising), as pure functions and through run.evaluate."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter

from adv_core import attacks, checks
from adv_core.attacks import trace
from adv_core.config import Cell
from adv_core.config import attacks as ac
from adv_core.config.attacks import AttackConfig
from adv_core.diagnostics import attack_diagnostics
from adv_core.rng import generator
from adv_core.run import run_cell

BOX = (0.0, 1.0)


def test_box_diameter_per_norm() -> None:
    assert checks.box_diameter("linf", BOX, 64) == 1.0
    assert checks.box_diameter("l2", (0.0, 2.0), 16) == pytest.approx(8.0)
    assert checks.box_diameter("l1", BOX, 64) == 64.0
    assert checks.box_diameter("l0", (0.0, 255.0), 64) == 64.0
    assert checks.box_diameter("l2", None, 64) is None


def test_unbounded_not_broken_rule() -> None:
    assert checks.unbounded_not_broken(0, 500) == []
    assert checks.unbounded_not_broken(1, 500) == []  # one boundary tie is tolerated
    assert checks.unbounded_not_broken(30, 500) == [checks.UNBOUNDED_NOT_BROKEN]


def test_not_converged_rule() -> None:
    ramp = [0.1 * i for i in range(100)]  # still rising at the end
    plateau = [min(0.1 * i, 3.0) for i in range(100)]  # flat for the last 70%
    assert checks.not_converged(ramp) == [checks.NOT_CONVERGED]
    assert checks.not_converged(plateau) == []
    assert checks.not_converged([]) == [] and checks.not_converged([3.0] * 50) == []


def _pgd_flags(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, **kw: object) -> list[str]:
    cfg = ac.PgdAttack(eps=(0.1,), **kw)  # type: ignore[arg-type]
    atk = attacks.build(cfg)
    with trace.recording() as rec:
        res = atk(model, x, y, cfg.eps, bounds=BOX, generator=generator("f"))
    return attack_diagnostics(atk, "linf", model, x, y, res, BOX, rec.trace(), generator("d"))


def test_flags_on_a_masked_and_a_normal_model(digits_mlp: tuple) -> None:
    from adv_core.defenses import Quantize
    from tests.attacks.test_reference import _with_preprocess

    model, x, y = digits_mlp
    masked = _with_preprocess(model, Quantize(0.5))  # zero input gradient everywhere
    assert checks.UNBOUNDED_NOT_BROKEN in _pgd_flags(masked, x, y, steps=10)
    normal = _pgd_flags(model, x, y, steps=50, rel_step=0.1)
    assert normal == [], normal
    tiny = _pgd_flags(model, x, y, steps=50, rel_step=0.002)  # steps far too small
    assert checks.NOT_CONVERGED in tiny, tiny


def _cell(defense: str) -> Cell:
    attack = TypeAdapter(AttackConfig).validate_python(
        {"name": "pgd", "eps": [0.0, 0.1], "steps": 10}
    )
    training = {"method": "standard", "epochs": 10, "defense": defense, "defense_param": 0.5}
    return Cell(
        sweep="t", dataset={"name": "digits", "classes": [3, 7]}, n_train=200, n_eval=60,
        model={"name": "mlp", "width": 32}, training=training, ensemble_size=1, seed=0,
        attacks=(attack,),
    )  # fmt: skip


def test_evaluate_writes_unbounded_not_broken_only_for_the_masked_model() -> None:
    masked = run_cell(_cell("quantize")).rows
    normal = run_cell(_cell("none")).rows
    assert all(checks.UNBOUNDED_NOT_BROKEN in r["flags"] for r in masked), masked
    assert not any(checks.UNBOUNDED_NOT_BROKEN in r["flags"] for r in normal), normal
