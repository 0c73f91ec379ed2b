"""The worst case over the attacks of one cell (DESIGN.md, additions to the contract).

For one target and one norm, an example counts as robust at eps only if no misclassification
attack of that norm broke it at that eps. It is computed from the attacks' per-example
successes, so it costs no extra attack run. ``adv_core.evaluate`` writes it for each norm with
two or more misclassification attacks (with one, it would repeat that attack's rows, and every
repeated group would cost the nightly comparison power). Budgets: only the eps values that *every* attack of
the norm evaluated get a worst case (an attack that never ran at an eps cannot vouch for it);
the others get no ``worst_case`` row.

``first_by`` names, per example, the attack that broke it at the smallest such eps (the
cell's attack order breaks ties). By the success convention of ``adv_core.attacks``, an
example misclassified clean counts as broken by every attack, so its ``first_by`` is the
first attack of the norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from adv_core.results import common_epsilons

NAME = "worst_case"


@dataclass(frozen=True)
class Broken:
    """One attack's per-example outcome: ``success`` (K, N) bool at ``epsilons`` (K,), and the
    model passes the attack spent (per example, docs/attacks.md)."""

    name: str
    epsilons: tuple[float, ...]
    success: torch.Tensor
    n_forward: int = 0
    n_backward: int = 0


@dataclass(frozen=True)
class WorstCase:
    """``success`` (K, N): some attack broke example n at ``epsilons[k]``; ``first_by`` (N,):
    the attack that broke it first (None: none did at any of these eps). ``n_forward``,
    ``n_backward``: the passes of every attack combined (the worst case costs them all)."""

    epsilons: tuple[float, ...]
    success: torch.Tensor
    first_by: list[str | None]
    n_forward: int = 0
    n_backward: int = 0

    @property
    def n_robust(self) -> list[int]:
        return [int((~s).sum()) for s in self.success]


def worst_case(runs: Sequence[Broken]) -> WorstCase | None:
    """Combine the attacks of one (target, norm); None when they share no eps."""
    eps = common_epsilons([r.epsilons for r in runs])
    if not eps:
        return None
    rows = [[r.epsilons.index(e) for e in eps] for r in runs]
    stacked = torch.stack([r.success[k] for r, k in zip(runs, rows, strict=True)])  # (A, K, N)
    success = stacked.any(dim=0)  # (K, N)
    k_n = stacked.shape[2]
    never = torch.ones(1, k_n, dtype=torch.bool, device=success.device)
    first_k = torch.cat([success, never]).float().argmax(dim=0)  # (N,) K where never broken
    broken = first_k < len(eps)
    at_first = stacked[:, first_k.clamp(max=len(eps) - 1), torch.arange(k_n)]  # (A, N)
    first_a = at_first.float().argmax(dim=0)  # (N,) the first attack that broke it there
    first_by = [
        runs[a].name if b else None for a, b in zip(first_a.tolist(), broken.tolist(), strict=True)
    ]
    n_fwd, n_bwd = sum(r.n_forward for r in runs), sum(r.n_backward for r in runs)
    return WorstCase(eps, success, first_by, n_fwd, n_bwd)
