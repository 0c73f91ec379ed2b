"""Synthetic data models of THEORY.md whose closed forms are exact."""

from __future__ import annotations

import math

import torch

from adv_core.config.data import GaussianData
from adv_core.data.base import DataBundle, register
from adv_core.rng import generator


def gaussian_theta(cfg: GaussianData, seed: int) -> torch.Tensor:
    """theta (d,): +-1 entries, N(0, I), or r / sqrt(d) everywhere (dense weak signal)."""
    g = generator("theta", cfg, seed)
    if cfg.theta == "pm1":
        return torch.randint(0, 2, (cfg.d,), generator=g).float() * 2 - 1
    if cfg.theta == "normal":
        return torch.randn(cfg.d, generator=g)
    return torch.full((cfg.d,), cfg.r / math.sqrt(cfg.d))


def _gaussian_draw(
    theta: torch.Tensor, sigma: float, n: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    y_pm = torch.randint(0, 2, (n,), generator=g) * 2 - 1  # (N,) in {-1, +1}
    x = y_pm[:, None].float() * theta[None, :] + sigma * torch.randn(n, theta.numel(), generator=g)
    return x, (y_pm > 0).long()


@register("gaussian")
def load_gaussian(
    cfg: GaussianData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    theta = gaussian_theta(cfg, seed)
    sigma = cfg.noise_sigma
    x_tr, y_tr = _gaussian_draw(theta, sigma, n_train, generator("train", cfg, seed, n_train))
    x_te, y_te = _gaussian_draw(theta, sigma, n_eval, generator("test", cfg, seed, n_eval))
    x_un = None
    if n_unlabeled > 0:
        x_un, _ = _gaussian_draw(
            theta, sigma, n_unlabeled, generator("unlabeled", cfg, seed, n_unlabeled)
        )
    return DataBundle(x_tr, y_tr, x_te, y_te, 2, None, x_un, {"theta": theta, "sigma": sigma})
