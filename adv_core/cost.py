"""Cheap, torch-free facts about cells: dataset sizes and a relative cost estimate used to
schedule the largest cells first and to print a plan's expected cost."""

from __future__ import annotations

import math
from collections.abc import Sequence

from adv_core.config import Cell, DatasetConfig
from adv_core.config.models import safetensors_params

# Examples per class of each real dataset, train and test files pooled (the loaders pool them).
_PER_CLASS: dict[str, tuple[int, ...]] = {
    "digits": (178, 182, 177, 183, 181, 182, 181, 179, 174, 180),
    "mnist_5k": (500,) * 10,
    "mnist": (6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958),
    "fashion_mnist": (7000,) * 10,
    "cifar10": (6000,) * 10,
}


def dataset_size(cfg: DatasetConfig) -> int | None:
    """Examples available for a dataset config (after its class selection), or None for
    synthetic (unbounded) data."""
    counts = _PER_CLASS.get(cfg.name)
    if counts is None:
        return None
    classes = getattr(cfg, "classes", None)
    return sum(counts[c] for c in classes) if classes is not None else sum(counts)


def model_params(cell: Cell) -> int:
    d, c = cell.dataset.input_dim, cell.dataset.n_classes
    m = cell.model
    if m.name == "linear":
        return (d + 1) * c
    if m.name == "mlp":
        return d * m.width + (m.depth - 1) * m.width * m.width + m.width * c
    if m.name == "external":
        return safetensors_params(m.weights) or d * c
    if m.name == "cnn":
        return 9 * m.channels * (1 + 2 * m.channels) * d + m.hidden * d
    return 20 * m.width * m.width * m.blocks * d // 9


def attack_steps(cell: Cell) -> int:
    total = 0
    for a in cell.attacks:
        steps = getattr(a, "steps", 1) * getattr(a, "restarts", 1)
        total += steps * max(1, len(a.eps))
    return total


def train_passes(cell: Cell) -> float:
    """Forward-backward passes per training example per epoch, summed over the helper models
    a method trains first (rst's teachers, ensemble_at's static sources)."""
    t = cell.training
    n_all = cell.n_train + t.unlabeled_pool
    total = float(n_all * t.passes_per_step * cell.ensemble_size)
    return total + cell.n_train * t.helper_models(cell.ensemble_size)


def estimate_cost(cell: Cell) -> float:
    """Relative cost ~ parameter-example passes for training plus evaluation."""
    train = train_passes(cell) * cell.training.epochs
    evaluate = (
        cell.n_eval
        * attack_steps(cell)
        * (cell.ensemble_size + (1 if cell.ensemble_size > 1 else 0))
    )
    return float(model_params(cell)) * (train + evaluate) / 1e9 + 1e-3 * math.log1p(cell.n_train)


def estimate_costs(cells: Sequence[Cell]) -> list[float]:
    """``estimate_cost`` of each cell, computed once per distinct configuration: a plan's cells
    differ mostly by seed, which the cost does not depend on (a 100k-cell plan has a few
    distinct costs). The key is the identity of the cell's config objects, which the cells of
    one plan share."""
    memo: dict[tuple[int, ...], float] = {}
    out = []
    for c in cells:
        key = (
            id(c.dataset), c.n_train, id(c.model), id(c.training), c.ensemble_size, c.n_eval,
            *map(id, c.attacks),
        )  # fmt: skip
        cost = memo.get(key)
        if cost is None:
            cost = memo[key] = estimate_cost(c)
        out.append(cost)
    return out
