"""Spec -> cells. Deterministic order; each cell carries its two content hashes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from adv_core.config import Cell
from adv_core.cost import estimate_costs
from adv_core.results import rows_per_target
from sweeps.spec import SweepSpec


def plan(spec: SweepSpec) -> list[Cell]:
    """Every cell of the grid datasets x n_train x models x training x seeds.

    The first cell is validated in full; the others are built without re-validation
    (``model_construct``): every value comes from the validated spec (the same field
    constraints as Cell's) and differs from the first cell's only in which validated value of
    each list it takes. A 100k-cell plan is built in a fraction of the time."""
    attacks = tuple(spec.attacks)
    cells: list[Cell] = []
    for dataset, n_train, model, training, seed in itertools.product(
        spec.expanded_datasets(),
        spec.n_train,
        spec.expanded_models(),
        spec.expanded_training(),
        spec.seeds,
    ):
        fields = dict(
            sweep=spec.name, dataset=dataset, n_train=n_train, n_eval=spec.n_eval, model=model,
            training=training, ensemble_size=spec.ensemble_size, seed=seed, attacks=attacks,
        )  # fmt: skip
        cells.append(Cell.model_construct(**fields) if cells else Cell(**fields))
    return cells


@dataclass(frozen=True)
class PlanSummary:
    cells: int
    done: int
    pending: int
    unique_trainings: int
    estimated_cost: float
    rows_per_cell: int


def summarize(spec: SweepSpec, cells: list[Cell], done: set[str]) -> PlanSummary:
    pending = [c for c in cells if c.cell_hash not in done]
    targets = 1 + (spec.ensemble_size if spec.ensemble_size > 1 else 0)
    rows = targets * rows_per_target(spec.attacks)  # worst_case rows included
    return PlanSummary(
        cells=len(cells), done=len(cells) - len(pending), pending=len(pending),
        unique_trainings=len({c.train_hash for c in cells}),
        estimated_cost=sum(estimate_costs(pending)), rows_per_cell=rows,
    )  # fmt: skip
