"""The in-memory form every dataset loader returns, and the loader registry (STYLE 5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from adv_core.registry import Registry


@dataclass(frozen=True)
class DataBundle:
    """Train/test tensors (on CPU) plus what the closed forms need.

    x_*: (N, *input_shape) float32; y_*: (N,) int64 class indices in [0, n_classes).
    For binary synthetic models class 1 is y = +1 and class 0 is y = -1.
    ``x_unlabeled``: an unlabeled pool from the same distribution (semi-supervised training).
    ``meta``: e.g. {"theta": (d,) tensor, "sigma": float} for the Gaussian model.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    bounds: tuple[float, float] | None
    x_unlabeled: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


Loader = Callable[[Any, int, int, int, int], DataBundle]
"""loader(cfg, n_train, n_eval, n_unlabeled, seed) -> DataBundle"""

DATASETS: Registry[Loader] = Registry("dataset")
register = DATASETS.register
get_loader = DATASETS.get
known = DATASETS.known
