"""Loss traces of iterative attacks, recorded only when asked (for the ``not_converged`` flag).

``with recording() as rec: attack(...)`` collects, from every run of an iterative attack made
inside the block, the best loss so far at each iteration averaged over the examples the run
left robust (the ones whose number more iterations could change); ``rec.trace()`` is their
weighted mean over runs of the same length. Outside a block ``note`` does nothing, so attacks
stay stateless and pay nothing. A run on a model that routes rows to targets (an ensemble and
its members in one call) notes each target's rows apart: ``rec.trace(target)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

Key = tuple[int | None, int]  # (target or None, run length)


class LossTrace:
    def __init__(self) -> None:
        self.sums: dict[Key, torch.Tensor] = {}  # -> (T,) weighted sum
        self.weights: dict[Key, int] = {}

    def add(self, best: torch.Tensor, weight: int, target: int | None = None) -> None:
        key = (target, len(best))
        self.sums[key] = (
            self.sums.get(key, torch.zeros(len(best), dtype=torch.float64)) + best.double() * weight
        )
        self.weights[key] = self.weights.get(key, 0) + weight

    def trace(self, target: int | None = None) -> list[float]:
        """The mean trace of the longest runs that left anything robust ([] if none), of
        ``target``'s rows when the runs routed rows to targets."""
        lengths = [t for (g, t), w in self.weights.items() if w > 0 and g == target]
        if not lengths:
            return []
        key = (target, max(lengths))
        return (self.sums[key] / self.weights[key]).tolist()


_CURRENT: ContextVar[LossTrace | None] = ContextVar("loss_trace", default=None)


@contextmanager
def recording() -> Iterator[LossTrace]:
    rec = LossTrace()
    token = _CURRENT.set(rec)
    try:
        yield rec
    finally:
        _CURRENT.reset(token)


def active() -> bool:
    return _CURRENT.get() is not None


def note(
    losses: list[torch.Tensor], survivors: torch.Tensor, route: torch.Tensor | None = None
) -> None:
    """losses: one (A,) per-example loss per iteration (nan where an example had left the run);
    survivors (A,) bool: the examples the run left robust; route (A,): each example's target
    when the run's model routes rows (``counting.route_of``), noted per target."""
    rec = _CURRENT.get()
    if rec is None or not losses or not bool(survivors.any()):
        return
    hist = torch.stack(losses).detach().cpu()  # (T, A)
    keep, targets = survivors.cpu(), route.cpu() if route is not None else None
    for target in [None] if targets is None else targets[keep].unique().tolist():
        rows = keep if targets is None else keep & (targets == target)
        best = hist[:, rows].nan_to_num(float("-inf")).cummax(dim=0).values.mean(dim=1)
        rec.add(best, int(rows.sum()), target)
