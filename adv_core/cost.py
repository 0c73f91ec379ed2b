"""Cheap, torch-free facts about cells: dataset sizes and a relative cost estimate used to
schedule the largest cells first and to print a plan's expected cost."""

from __future__ import annotations

import math
from typing import Any

from adv_core.config import Cell

# Examples available per class-free real dataset (train + test files together).
_SIZES = {
    "digits": 1797,
    "mnist_5k": 5000,
    "mnist": 70000,
    "fashion_mnist": 70000,
    "cifar10": 60000,
}
_DIGITS_PER_CLASS = 180  # about 1797 / 10; exact counts differ slightly per class


def dataset_size(cfg: Any) -> int | None:
    """Examples available for a dataset config, or None for synthetic (unbounded) data."""
    size = _SIZES.get(cfg.name)
    if size is None:
        return None
    classes = getattr(cfg, "classes", None)
    if classes is not None:
        per_class = _DIGITS_PER_CLASS if cfg.name == "digits" else size // 10 - size // 100
        return per_class * len(classes)
    return size


def model_params(cell: Cell) -> int:
    d, c = cell.dataset.input_dim, cell.dataset.n_classes
    m = cell.model
    if m.name == "linear":
        return (d + 1) * c
    if m.name == "mlp":
        return d * m.width + (m.depth - 1) * m.width * m.width + m.width * c
    if m.name == "cnn":
        return 9 * m.channels * (1 + 2 * m.channels) * d + m.hidden * d
    return 20 * m.width * m.width * m.blocks * d // 9


def attack_steps(cell: Cell) -> int:
    total = 0
    for a in cell.attacks:
        steps = getattr(a, "steps", 1) * getattr(a, "restarts", 1)
        total += steps * max(1, len(a.eps))
    return total


def estimate_cost(cell: Cell) -> float:
    """Relative cost ~ parameter-example passes for training plus evaluation."""
    t = cell.training
    train_mult = 1 + getattr(t, "steps", 1 if t.method != "standard" else 0)
    n_train = cell.n_train + getattr(t, "n_unlabeled", 0)
    train = n_train * t.epochs * train_mult * cell.ensemble_size
    evaluate = (
        cell.n_eval
        * attack_steps(cell)
        * (cell.ensemble_size + (1 if cell.ensemble_size > 1 else 0))
    )
    return float(model_params(cell)) * (train + evaluate) / 1e9 + 1e-3 * math.log1p(cell.n_train)
