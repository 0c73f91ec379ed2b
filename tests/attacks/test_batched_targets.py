"""An ensemble and its members attacked as one batched target (issue 17 item 7): every row of a
``models.Targets`` batch is scored by its own target, and attacks that say ``routes_rows``
select the route with their rows. Deterministic attacks give each target exactly what a call
on that target alone gives (successes, points, pass counts, loss traces); the evaluation of a
cell gives the same rows either way."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import TypeAdapter

from adv_core import attacks, evaluate
from adv_core.attacks.trace import recording
from adv_core.config import Cell
from adv_core.config.attacks import (
    ApgdAttack,
    AttackConfig,
    FgsmAttack,
    PgdAttack,
    SquareAttack,
)
from adv_core.config.data import DigitsData
from adv_core.config.models import LinearModel, MlpModel, ModelConfig
from adv_core.data import load
from adv_core.defenses import GaussianNoise
from adv_core.models import Ensemble, Targets, new_ensemble, target_route
from adv_core.run import run_cell

BOUNDS = (0.0, 1.0)


def _problem(model: ModelConfig, members: int = 3) -> tuple[Ensemble, torch.Tensor, torch.Tensor]:
    """Untrained members (they disagree, so every target has its own answers) on 120 digits."""
    bundle = load(DigitsData(), 200, 120, 0)
    ens = new_ensemble(model, bundle.input_shape, 10, members, 0).eval()
    return ens, bundle.x_test, bundle.y_test


def _stacked(ens: Ensemble, x: torch.Tensor, y: torch.Tensor) -> tuple[Targets, Any, Any]:
    k = ens.n_members + 1
    model = Targets(ens, target_route(ens.n_members, len(y), x.device))
    return model, x.repeat(k, *([1] * (x.dim() - 1))), y.repeat(k)


def _both(
    cfg: AttackConfig, ens: Ensemble, x: torch.Tensor, y: torch.Tensor
) -> tuple[list[tuple[attacks.AttackResult, list[float]]], attacks.AttackResult, Targets, Any]:
    """(each target alone: (result, trace)), the batched result, its model, its recording."""
    attack = attacks.build(cfg)
    alone = []
    for t in evaluate.targets(ens):
        with recording() as rec:
            res = attack(t.model, x, y, bounds=BOUNDS, generator=torch.Generator().manual_seed(0))
        alone.append((res, rec.trace()))
    model, xs, ys = _stacked(ens, x, y)
    with recording() as rec:
        batched = attack(model, xs, ys, bounds=BOUNDS, generator=torch.Generator().manual_seed(0))
    return alone, batched, model, rec


DETERMINISTIC = [
    FgsmAttack(norm="linf", eps=[0.0, 0.02, 0.05, 0.1]),
    FgsmAttack(norm="l2", eps=[0.0, 0.3, 1.0]),
    PgdAttack(norm="linf", eps=[0.0, 0.02, 0.05, 0.1], steps=10, random_start=False),
    PgdAttack(norm="l2", eps=[0.0, 0.2, 0.5, 1.0], steps=10, random_start=False),
]


@pytest.mark.parametrize(
    "model", [MlpModel(width=16, depth=1), LinearModel()], ids=lambda m: m.name
)
@pytest.mark.parametrize("cfg", DETERMINISTIC, ids=lambda c: f"{c.name}-{c.norm}")
def test_each_target_gets_exactly_its_own_attack(cfg: AttackConfig, model: ModelConfig) -> None:
    ens, x, y = _problem(model)
    alone, batched, stacked, rec = _both(cfg, ens, x, y)
    n = len(y)
    robust = []
    for i, (t, (res, trace)) in enumerate(zip(evaluate.targets(ens), alone, strict=True)):
        sl = slice(i * n, (i + 1) * n)
        assert torch.equal(batched.success[:, sl], res.success), (t.member, cfg)
        for mine, theirs in zip(batched.x_adv, res.x_adv, strict=True):
            torch.testing.assert_close(mine[sl], theirs, rtol=0, atol=1e-6)
        assert stacked.tally.forward[i] == res.n_forward, t.member
        assert stacked.tally.backward[i] == res.n_backward, t.member
        assert rec.trace(t.member) == pytest.approx(trace, abs=1e-5)
        robust.append((~res.success).sum(dim=1).tolist())
    assert batched.n_forward == sum(stacked.tally.forward)
    assert len({str(r) for r in robust}) > 1, "the targets must differ for the test to bite"


def test_random_start_attacks_agree_in_distribution() -> None:
    """APGD (random start, targeted runs through the clean ranking) draws other random numbers
    in one call: each target's robust count stays within a few examples of its own call."""
    cfg = ApgdAttack(norm="linf", eps=[0.0, 0.02, 0.05], steps=20, loss="auto", n_targets=3)
    ens, x, y = _problem(MlpModel(width=16, depth=1))
    alone, batched, _, _ = _both(cfg, ens, x, y)
    n = len(y)
    for i, (res, _) in enumerate(alone):
        mine = (~batched.success[:, i * n : (i + 1) * n]).sum(dim=1)
        assert (mine - (~res.success).sum(dim=1)).abs().max() <= 3, i


def test_attacks_that_do_not_route_rows_refuse_a_routed_model() -> None:
    ens, x, y = _problem(LinearModel())
    model, xs, ys = _stacked(ens, x, y)
    square = attacks.build(SquareAttack(norm="linf", eps=[0.1], queries=5))
    with pytest.raises(TypeError, match="routes rows"):
        square(model, xs, ys, bounds=BOUNDS, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="rows for a route"):
        model(x)


ADAPTER: TypeAdapter = TypeAdapter(AttackConfig)


def _cell(model: dict, attack_specs: list[dict]) -> Cell:
    return Cell(
        sweep="t", dataset={"name": "digits", "resolution": 8}, n_train=150, n_eval=80,
        model=model, training={"method": "standard", "epochs": 2}, ensemble_size=3, seed=0,
        attacks=tuple(ADAPTER.validate_python(a) for a in attack_specs),
    )  # fmt: skip


CELL_ATTACKS = [
    {"name": "fgsm", "eps": [0.0, 0.05, 0.1]},
    {"name": "pgd", "eps": [0.0, 0.05, 0.1], "steps": 5, "random_start": False},
    {"name": "square", "eps": [0.1], "queries": 10},
]


def _key(row: dict) -> tuple:
    return (row["member"], row["attack"], row["norm"], row["eps"])


def test_a_cell_gives_the_same_rows_batched_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole evaluation of a 3-member cell (fgsm and pgd batched, square not: it does not
    route rows): every row's counts, passes and flags, and the examples table, equal those of
    the per-target evaluation."""
    cell = _cell({"name": "mlp", "width": 16, "depth": 1}, CELL_ATTACKS)
    calls: list[str] = []
    real = evaluate.attack_targets

    def spy(s: Any, tgts: Any, b: evaluate.BuiltAttack) -> Any:
        calls.append(b.cfg.name)
        return real(s, tgts, b)

    monkeypatch.setattr(evaluate, "attack_targets", spy)
    batched = run_cell(cell)
    assert calls == ["fgsm", "pgd"]
    monkeypatch.setattr(evaluate, "BATCH_TARGETS_MAX", 0)  # the gate closed
    alone = run_cell(cell)
    assert calls == ["fgsm", "pgd"], "no batched call with the gate closed"
    fields = ("n_robust", "n_clean_correct", "n_forward", "n_backward", "flags", "robust_acc_lo")
    mine = {_key(r): tuple(str(r[f]) for f in fields) for r in batched.rows}
    theirs = {_key(r): tuple(str(r[f]) for f in fields) for r in alone.rows}
    assert mine == theirs
    assert {k[0] for k in mine} == {-1, 0, 1, 2}
    assert batched.examples == alone.examples


def test_the_gate() -> None:
    """Batched only for attacks that route rows, deterministic models, and batches (targets x
    positive eps x points) within the one-pass budget."""
    cell = _cell({"name": "linear"}, CELL_ATTACKS)
    ens = new_ensemble(cell.model, (1, 8, 8), 10, 3, 0)
    bundle = load(DigitsData(), 150, 80, 0)
    s = evaluate.Setting(cell, ens, bundle, bundle.x_test, bundle.y_test)
    built = evaluate.build_attacks(cell, ens, torch.device("cpu"))
    tgts = evaluate.targets(ens)
    assert [evaluate.batched_targets(s, b, tgts) for b in built] == [True, True, False]
    assert not evaluate.batched_targets(s, built[0], tgts[:1])  # one target: nothing to batch
    # 4 targets x 2 positive eps x 560 points x 64 inputs > 2^18
    x, y = bundle.x_test.repeat(7, 1, 1, 1), bundle.y_test.repeat(7)
    assert not evaluate.batched_targets(evaluate.Setting(cell, ens, bundle, x, y), built[0], tgts)
    x, y = bundle.x_test.repeat(6, 1, 1, 1), bundle.y_test.repeat(6)  # 480 points: within
    assert evaluate.batched_targets(evaluate.Setting(cell, ens, bundle, x, y), built[0], tgts)
    noisy = new_ensemble(cell.model, (1, 8, 8), 10, 3, 0, GaussianNoise(0.1))
    s_noisy = evaluate.Setting(cell, noisy, bundle, bundle.x_test, bundle.y_test)
    assert not evaluate.batched_targets(s_noisy, built[0], evaluate.targets(noisy))
