"""Real image datasets, all offline, values in [0, 1], shape (C, R, R)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from adv_core.config.data import DigitsData, _ImageData
from adv_core.data.base import DataBundle, register
from adv_core.rng import generator


@lru_cache(maxsize=4)
def _digits_raw() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    y = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return x, y


def select_classes(
    x: torch.Tensor, y: torch.Tensor, classes: tuple[int, ...] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep ``classes`` and relabel them 0..k-1 in the order given."""
    if classes is None:
        return x, y
    keep = torch.zeros_like(y, dtype=torch.bool)
    new_y = torch.full_like(y, -1)
    for i, c in enumerate(classes):
        keep |= y == c
        new_y[y == c] = i
    return x[keep], new_y[keep]


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """(N, C, R, R) -> (N, C, side, side), antialiased, clamped to [0, 1]."""
    if x.shape[-1] == side:
        return x
    out = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp(0.0, 1.0)


def split_images(
    cfg: _ImageData,
    x: torch.Tensor,
    y: torch.Tensor,
    n_train: int,
    n_eval: int,
    n_unlabeled: int,
    seed: int,
) -> DataBundle:
    """Shuffle with the cell's generator; disjoint test, train and unlabeled parts."""
    x, y = select_classes(x, y, cfg.classes)
    need = n_train + n_eval + n_unlabeled
    if need > len(y):
        raise ValueError(
            f"dataset {cfg.name} has {len(y)} examples, but n_train + n_eval + n_unlabeled = {need}"
        )
    perm = torch.randperm(len(y), generator=generator("split", cfg, seed))
    te, tr = perm[:n_eval], perm[n_eval : n_eval + n_train]
    un = perm[n_eval + n_train : need]
    x = resize(x, cfg.side)
    x_un = x[un] if n_unlabeled > 0 else None
    return DataBundle(x[tr], y[tr], x[te], y[te], cfg.n_classes, (0.0, 1.0), x_un)


@register("digits")
def load_digits(
    cfg: DigitsData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    x, y = _digits_raw()
    return split_images(cfg, x, y, n_train, n_eval, n_unlabeled, seed)
