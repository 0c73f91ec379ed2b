"""Issue 17 item 7: the small-problem paths give the per-example results of the plain ones.

- ``Attack.all_eps`` (every budget of a call in one batched pass) against the cascade (one pass
  per eps on what is still robust), forced by ``ALL_EPS_MAX``;
- PGD looking at the iterates every ``CHECK_EVERY`` steps against looking every step (``LARGE``).

Deterministic attacks must agree example by example (success and the adversarial points);
PGD with a random start draws differently on the two paths, so there the robust counts must be
statistically equal.
"""

from __future__ import annotations

import pytest
import torch

from adv_core import attacks
from adv_core.attacks import base, gradient
from adv_core.attacks.base import AttackResult, predict_correct
from adv_core.config import attacks as ac
from adv_core.rng import generator
from tests.attacks.conftest import linear_problem

BOX = (0.0, 1.0)
EPS = (0.0, 0.02, 0.05, 0.1, 0.2)


def _run(cfg: ac.AttackConfig, model: object, x: torch.Tensor, y: torch.Tensor) -> AttackResult:
    attack = attacks.build(cfg)
    return attack(model, x, y, cfg.eps, bounds=BOX, generator=generator("batched", 0))  # type: ignore[arg-type]


def _both(
    monkeypatch: pytest.MonkeyPatch,
    cfg: ac.AttackConfig,
    model: object,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[AttackResult, AttackResult]:
    """(batched over eps and looking every CHECK_EVERY steps, per eps and looking every step)."""
    monkeypatch.setattr(base, "ALL_EPS_MAX", 1 << 40)
    monkeypatch.setattr(gradient, "LARGE", 1 << 40)
    fast = _run(cfg, model, x, y)
    monkeypatch.setattr(base, "ALL_EPS_MAX", 0)
    monkeypatch.setattr(gradient, "LARGE", 0)
    plain = _run(cfg, model, x, y)
    return fast, plain


DETERMINISTIC = [
    pytest.param(ac.FgsmAttack(eps=EPS), id="fgsm-linf"),
    pytest.param(ac.FgsmAttack(norm="l2", eps=tuple(4 * e for e in EPS)), id="fgsm-l2"),
    pytest.param(ac.PgdAttack(eps=EPS, steps=12, random_start=False), id="pgd-linf-no-start"),
    pytest.param(
        ac.PgdAttack(norm="l2", eps=tuple(4 * e for e in EPS), steps=12, random_start=False),
        id="pgd-l2-no-start",
    ),
]


@pytest.mark.parametrize("cfg", DETERMINISTIC)
def test_deterministic_attacks_agree_example_by_example(
    monkeypatch: pytest.MonkeyPatch, cfg: ac.AttackConfig, digits_mlp: tuple
) -> None:
    model, x, y = digits_mlp
    fast, plain = _both(monkeypatch, cfg, model, x, y)
    assert torch.equal(fast.success, plain.success)
    for k in range(len(EPS)):
        assert torch.equal(fast.x_adv[k], plain.x_adv[k]), k
    # the curve is not trivial: some examples break, at different eps
    n_rob = (~plain.success).sum(dim=1)
    assert n_rob[0] > n_rob[-1] and len(set(n_rob.tolist())) >= 3


def test_linear_pgd_agrees_example_by_example(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x, y = linear_problem(3, n=300)
    cfg = ac.PgdAttack(eps=EPS, steps=10, random_start=False)
    fast, plain = _both(monkeypatch, cfg, model, x, y)
    assert torch.equal(fast.success, plain.success)
    assert all(torch.equal(a, b) for a, b in zip(fast.x_adv, plain.x_adv, strict=True))


def test_adversarial_points_are_inside_ball_and_box(
    monkeypatch: pytest.MonkeyPatch, digits_mlp: tuple
) -> None:
    model, x, y = digits_mlp
    fast, _ = _both(monkeypatch, ac.PgdAttack(eps=EPS, steps=10), model, x, y)
    for k, eps in enumerate(EPS):
        xa = fast.x_adv[k]
        assert float((xa - x).abs().amax()) <= eps + 1e-6
        assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0
        # every example counted broken is misclassified at its point (or clean)
        clean_ok = predict_correct(model, x, y)
        broken_by_attack = fast.success[k] & clean_ok
        assert not bool(predict_correct(model, xa[broken_by_attack], y[broken_by_attack]).any())


def test_random_start_pgd_is_statistically_equal(
    monkeypatch: pytest.MonkeyPatch, digits_mlp: tuple
) -> None:
    model, x, y = digits_mlp
    fast, plain = _both(monkeypatch, ac.PgdAttack(eps=EPS, steps=10), model, x, y)
    n = len(y)
    for k in range(len(EPS)):
        a, b = int(fast.success[k].sum()), int(plain.success[k].sum())
        p = (a + b) / (2 * n)
        sd = (2 * p * (1 - p) / n) ** 0.5 * n
        assert abs(a - b) <= max(4 * sd, 2), (k, a, b)


class _OnlyAt(base.Attack):
    """Breaks an example only at the one budget written in its third input (x[:, 2]), so its
    outcome is not monotone in eps: what broke at a smaller eps must still count as broken."""

    def project(
        self, x0: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, bounds: base.Bounds
    ) -> torch.Tensor:
        return x

    def perturb(
        self,
        model: base.Model,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        bounds: base.Bounds,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        at = (x[:, 2] - eps).abs() < 1e-6
        return torch.where(at[:, None], x + torch.tensor([0.0, 2.0, 0.0]), x)


@pytest.mark.parametrize("batched", [True, False], ids=["all-eps", "cascade"])
def test_broken_stays_broken_at_larger_eps(monkeypatch: pytest.MonkeyPatch, batched: bool) -> None:
    monkeypatch.setattr(base, "ALL_EPS_MAX", 1 << 40 if batched else 0)
    eps = (0.0, 0.05, 0.1, 0.2)
    x = torch.tensor([[1.0, 0.0, e] for e in (0.05, 0.1, 0.2, 0.3)])  # (4, 3)
    x = torch.cat([x, torch.tensor([[0.0, 1.0, 0.1]])])  # misclassified clean
    y = torch.zeros(5, dtype=torch.long)
    res = _OnlyAt(ac.FgsmAttack(eps=eps))(lambda z: z[:, :2], x, y, eps, bounds=None)
    expected = torch.tensor(
        [[0, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 1, 0, 0, 1], [1, 1, 1, 0, 1]], dtype=torch.bool
    )
    assert torch.equal(res.success, expected)
    assert torch.equal(res.x_adv[3][0], torch.tensor([1.0, 2.0, 0.05]))  # the 0.05 point kept
    assert torch.equal(res.x_adv[1][1], x[1])
