"""Dataset loaders. ``load(cfg, n_train, n_eval, seed)`` returns a DataBundle."""

from __future__ import annotations

from typing import Any

from adv_core.data import images, local, synthetic  # noqa: F401  (registers loaders)
from adv_core.data.base import DataBundle, get_loader, known


def load(cfg: Any, n_train: int, n_eval: int, seed: int, n_unlabeled: int = 0) -> DataBundle:
    return get_loader(cfg.name)(cfg, n_train, n_eval, n_unlabeled, seed)


__all__ = ["DataBundle", "known", "load"]
