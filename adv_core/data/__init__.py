"""Dataset loaders. ``load(cfg, n_train, n_eval, seed)`` returns a DataBundle."""

from __future__ import annotations

from adv_core.config.data import DatasetConfig
from adv_core.data import images, local, synthetic  # noqa: F401  (registers loaders)
from adv_core.data.base import DataBundle, get_loader, known


def load(
    cfg: DatasetConfig, n_train: int, n_eval: int, seed: int, n_unlabeled: int = 0
) -> DataBundle:
    return get_loader(cfg.name)(cfg, n_train, n_eval, n_unlabeled, seed)


__all__ = ["DataBundle", "known", "load"]
