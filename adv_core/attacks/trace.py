"""Loss traces of iterative attacks, recorded only when asked (for the ``not_converged`` flag).

``with recording() as rec: attack(...)`` collects, from every run of an iterative attack made
inside the block, the best loss so far at each iteration averaged over the examples the run
left robust (the ones whose number more iterations could change); ``rec.trace()`` is their
weighted mean over runs of the same length. Outside a block ``note`` does nothing, so attacks
stay stateless and pay nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch


class LossTrace:
    def __init__(self) -> None:
        self.sums: dict[int, torch.Tensor] = {}  # length -> (T,) weighted sum
        self.weights: dict[int, int] = {}

    def add(self, best: torch.Tensor, weight: int) -> None:
        t = len(best)
        self.sums[t] = (
            self.sums.get(t, torch.zeros(t, dtype=torch.float64)) + best.double() * weight
        )
        self.weights[t] = self.weights.get(t, 0) + weight

    def trace(self) -> list[float]:
        """The mean trace of the longest runs that left anything robust ([] if none)."""
        lengths = [t for t, w in self.weights.items() if w > 0]
        if not lengths:
            return []
        t = max(lengths)
        return (self.sums[t] / self.weights[t]).tolist()


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


def note(losses: list[torch.Tensor], survivors: torch.Tensor) -> None:
    """losses: one (A,) per-example loss per iteration (nan where an example had left the run);
    survivors (A,) bool: the examples the run left robust."""
    rec = _CURRENT.get()
    if rec is None or not losses or not bool(survivors.any()):
        return
    hist = torch.stack(losses)[:, survivors].detach().cpu()  # (T, S)
    best = hist.nan_to_num(float("-inf")).cummax(dim=0).values.mean(dim=1)  # (T,)
    rec.add(best, int(survivors.sum()))
