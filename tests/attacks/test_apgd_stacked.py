"""APGD's targeted runs stacked into one run (``apgd._stacks``, ``Apgd._run_stacked``): each
example repeated once per target, one run over all of them, and per example the first target's
adversarial point (else the last target's), as running the targets in turn keeps."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from adv_core import attacks
from adv_core.attacks import apgd
from adv_core.config.attacks import ApgdAttack
from adv_core.rng import generator

BOX = (0.0, 1.0)


def test_consecutive_targeted_runs_stack_up_to_the_row_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(apgd, "STACK_ROWS", 1000)
    ce = object()
    targets = [partial(apgd._targeted_at, torch.tensor([k])) for k in range(9)]
    runs = [ce, *targets]
    assert [len(s) for s in apgd._stacks(runs, 100)] == [1, 9]  # type: ignore[arg-type]
    assert [len(s) for s in apgd._stacks(runs, 300)] == [1, 3, 3, 3]  # type: ignore[arg-type]
    assert [len(s) for s in apgd._stacks(runs, 2000)] == [1] * 10  # type: ignore[arg-type]
    assert apgd._stacks(runs, 100)[1] == targets  # type: ignore[arg-type]


def test_stacked_runs_keep_the_first_targets_adversarial_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stand-in run moves example i to i + 1000 t for target t, and calls that adversarial
    when (i + t) % 3 == 0: the answer is the first such t in the targets' order, else the
    last target's point."""
    n, order = 12, [4, 1, 7, 2]
    x = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 4)
    y = torch.zeros(n, dtype=torch.long)
    monkeypatch.setattr(apgd, "targeted_dlr", lambda target: target)

    def fake_run(self: object, model: object, x0: torch.Tensor, *args: object) -> torch.Tensor:
        target = args[-1]
        assert isinstance(target, torch.Tensor)
        return x0 + 1000.0 * target[:, None].to(x0.dtype)

    def fake_hits(self: object, model: object, xa: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        i, t = xa[:, 0] % 1000, xa[:, 0] // 1000
        return (i + t) % 3 == 0

    monkeypatch.setattr(apgd.Apgd, "_run", fake_run)
    monkeypatch.setattr(apgd.Apgd, "hits", fake_hits)
    atk = attacks.build(ApgdAttack(norm="linf", eps=(0.1,), loss="dlr_targeted", n_targets=4))
    stack = [partial(apgd._targeted_at, torch.full((n,), t)) for t in order]
    got = atk._run_stacked(  # type: ignore[attr-defined]
        lambda z: z, x, y, torch.full((n,), 0.1), BOX, None, stack, slice(None)
    )
    for i in range(n):
        t = next((t for t in order if (i + t) % 3 == 0), order[-1])
        assert float(got[i, 0]) == i + 1000 * t, i


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.05), ("l2", 0.5)])
def test_stacked_and_sequential_targets_are_equally_strong(
    digits_mlp: tuple, norm: str, eps: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same attack with its 9 targets stacked and run in turn (STACK_ROWS = 1): the same
    robust accuracy up to the random starts (measured: equal on these 200 points)."""
    model, x, y = digits_mlp
    cfg = ApgdAttack(norm=norm, eps=(eps,), steps=30, loss="dlr_targeted", n_targets=9)  # type: ignore[arg-type]

    def robust() -> float:
        res = attacks.build(cfg)(model, x, y, cfg.eps, bounds=BOX, generator=generator("stk"))
        return float(res.robust_acc()[0])

    stacked = robust()
    monkeypatch.setattr(apgd, "STACK_ROWS", 1)
    in_turn = robust()
    assert abs(stacked - in_turn) <= 1 / len(y), (stacked, in_turn)
    assert stacked < 0.9  # the attack does break examples
