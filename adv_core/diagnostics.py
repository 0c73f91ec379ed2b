"""Attack failures as data (issue 13, section 4): the evaluation-side work behind the flags
``unbounded_not_broken`` and ``not_converged``; the rules themselves are the pure functions
in ``adv_core.checks``.

``unbounded_not_broken`` needs the attack's robust count at the box's diameter. Cost: nothing
when the eps list reaches the diameter, or for minimum-norm attacks (read off their distances);
otherwise one extra call of the attack at eps = diameter on the examples still robust at the
largest eps only (nested balls: what broke already breaks there), and only for white-box
attacks (the check is about gradients). ``not_converged`` reads the loss trace the iterative
attacks record while ``adv_core.attacks.trace.recording`` is open: no extra passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from adv_core import checks
from adv_core.attacks.base import Attack, AttackResult, Bounds, Model


def robust_at_diameter(
    attack: Attack,
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    res: AttackResult,
    diameter: float,
    bounds: Bounds,
    generator: torch.Generator | None,
) -> int:
    """How many examples ``attack`` leaves robust at eps = ``diameter``."""
    if max(res.epsilons) >= diameter:
        k = max(i for i, e in enumerate(res.epsilons) if e >= diameter)
        return int((~res.success[k]).sum())
    alive = ~res.success[-1]  # (N,) robust at the largest eps
    if not bool(alive.any()):
        return 0
    base = getattr(attack, "base", None)  # a wrapper (min_norm) searches only up to max_eps
    if res.distances is not None and base is None:
        return int((res.distances[alive] > diameter).sum())
    runner = base if isinstance(base, Attack) else attack
    out = runner(model, x[alive], y[alive], [diameter], bounds=bounds, generator=generator)
    return int((~out.success[-1]).sum())


def attack_diagnostics(
    attack: Attack,
    norm: str,
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    res: AttackResult,
    bounds: Bounds,
    loss_trace: Sequence[float],
    generator: torch.Generator | None,
) -> list[str]:
    """The flags of section 4 that apply to this attack's evaluation of one target."""
    flags = checks.not_converged(loss_trace)
    if not (attack.white_box and attack.misclassification) or _closed_form(attack):
        return flags
    diameter = checks.box_diameter(norm, bounds, int(x[0].numel()))
    if diameter is None:
        return flags
    n_rob = robust_at_diameter(attack, model, x, y, res, diameter, bounds, generator)
    return flags + checks.unbounded_not_broken(n_rob, len(y))


def _closed_form(attack: Any) -> bool:
    from adv_core.attacks.exact import Exact

    return isinstance(attack, Exact)
