"""The per-example table of one cell: one ``ExampleRow`` per (target, attack, example),
kept as columns (column name -> list, in ``ExampleRow`` field order)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from adv_core.results import ExampleRow

EXAMPLE_COLUMNS = tuple(f.name for f in dataclasses.fields(ExampleRow))


@dataclass(frozen=True)
class CleanFacts:
    """One target on the clean evaluation points (N of them)."""

    correct: torch.Tensor  # (N,) bool
    pred: torch.Tensor  # (N,) predicted class
    margin: torch.Tensor  # (N,) true logit minus the best other one
    flags: list[str]  # the target's own checks (softmax outputs, zero gradients)

    @property
    def n_correct(self) -> int:
        return int(self.correct.sum())


class ExampleColumns:
    """Columns of ``ExampleRow``s, appended block by block."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {k: [] for k in EXAMPLE_COLUMNS}

    def extend(self, other: ExampleColumns) -> None:
        for k, v in other.columns.items():
            self.columns[k] += v

    def add_block(
        self,
        member: int,
        attack: str,
        norm: str,
        y: torch.Tensor,
        clean: CleanFacts,
        broken: Broken,
    ) -> None:
        """N rows of one (target, attack): y (N,) labels; ``broken`` says when each broke."""
        n = len(y)
        c = self.columns
        c["member"] += [member] * n
        c["example"] += list(range(n))
        c["label"] += y.tolist()
        c["clean_correct"] += clean.correct.tolist()
        c["margin"] += clean.margin.tolist()
        c["attack"] += [attack] * n
        c["norm"] += [norm] * n
        c["broken_eps"] += first_broken_eps(broken.epsilons, broken.success).tolist()
        c["min_distance"] += (
            broken.distances.tolist() if broken.distances is not None else [None] * n
        )
        c["clean_pred"] += clean.pred.tolist()
        c["first_broken_by"] += broken.first_by if broken.first_by is not None else [None] * n


@dataclass(frozen=True)
class Broken:
    """When each of N examples broke: ``success`` (K, N) at sorted ``epsilons`` (K,);
    ``distances`` (N,) for minimum-norm attacks; ``first_by`` (N,) for the worst case."""

    epsilons: tuple[float, ...]
    success: torch.Tensor
    distances: torch.Tensor | None = None
    first_by: list[str | None] | None = None


def first_broken_eps(epsilons: tuple[float, ...], success: torch.Tensor) -> torch.Tensor:
    """(N,) the smallest eps of the list at which each example is broken (inf: at none)."""
    n, device = success.shape[1], success.device
    eps = torch.tensor(epsilons + (math.inf,), dtype=torch.float64, device=device)
    never = torch.ones(1, n, dtype=torch.bool, device=device)
    return eps[torch.cat([success, never]).float().argmax(dim=0)]
