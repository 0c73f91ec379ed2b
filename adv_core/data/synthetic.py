"""Synthetic data models of THEORY.md whose closed forms are exact.

Every model is binary with y in {-1, +1} (class 1 is y = +1, class 0 is y = -1) drawn uniformly.
The model's fixed parameters (theta) come from the ``theta`` generator of (cfg, seed); train,
test and unlabeled draws each have their own generator, so the test set of a cell does not
depend on n_train and the unlabeled pool never overlaps the labeled one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from adv_core.config.data import BernoulliData, GaussianData, SpheresData, TsiprasData
from adv_core.data.base import DataBundle, register
from adv_core.rng import generator

Draw = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
"""draw(n, gen) -> (x (n, D) float32, y (n,) int64 in {0, 1})."""


def _signs(n: int, g: torch.Generator) -> torch.Tensor:
    """(n,) uniform labels in {-1, +1} (int64)."""
    return torch.randint(0, 2, (n,), generator=g) * 2 - 1


def _bundle(
    cfg: Any,
    draw: Draw,
    n_train: int,
    n_eval: int,
    n_unlabeled: int,
    seed: int,
    meta: dict[str, Any],
) -> DataBundle:
    x_tr, y_tr = draw(n_train, generator("train", cfg, seed, n_train))
    x_te, y_te = draw(n_eval, generator("test", cfg, seed, n_eval))
    x_un = None
    if n_unlabeled > 0:
        x_un, _ = draw(n_unlabeled, generator("unlabeled", cfg, seed, n_unlabeled))
    return DataBundle(x_tr, y_tr, x_te, y_te, 2, cfg.bounds, x_un, meta)


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
    y_pm = _signs(n, g)  # (N,) in {-1, +1}
    x = y_pm[:, None].float() * theta[None, :] + sigma * torch.randn(n, theta.numel(), generator=g)
    return x, (y_pm > 0).long()


@register("gaussian")
def load_gaussian(
    cfg: GaussianData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    """x | y ~ N(y theta, sigma^2 I_d); meta carries theta (d,) and sigma."""
    theta = gaussian_theta(cfg, seed)
    sigma = cfg.noise_sigma

    def draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return _gaussian_draw(theta, sigma, n, g)

    meta = {"theta": theta, "sigma": sigma}
    return _bundle(cfg, draw, n_train, n_eval, n_unlabeled, seed, meta)


@register("bernoulli")
def load_bernoulli(
    cfg: BernoulliData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    """theta in {-1,+1}^d; x_j = y theta_j with probability (1 + tau)/2, else -y theta_j. The
    draws lie in {-1, +1}^d either way; ``cfg.box`` only sets the attack's box (cfg.bounds)."""
    theta = torch.randint(0, 2, (cfg.d,), generator=generator("theta", cfg, seed)) * 2 - 1

    def draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y_pm = _signs(n, g)
        keep = torch.rand(n, cfg.d, generator=g) < (1 + cfg.tau) / 2  # (N, d)
        flip = torch.where(keep, 1, -1)
        return (y_pm[:, None] * theta[None, :] * flip).float(), (y_pm > 0).long()

    meta = {"theta": theta.float(), "tau": cfg.tau, "box": cfg.box}
    return _bundle(cfg, draw, n_train, n_eval, n_unlabeled, seed, meta)


@register("tsipras")
def load_tsipras(
    cfg: TsiprasData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    """x_1 = y with probability p (else -y): the robust feature; x_2..x_{d+1} ~ N(eta y, 1)."""
    eta = cfg.weak_eta

    def draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y_pm = _signs(n, g).float()
        agree = torch.rand(n, generator=g) < cfg.p
        robust = torch.where(agree, y_pm, -y_pm)[:, None]  # (N, 1)
        weak = eta * y_pm[:, None] + torch.randn(n, cfg.d, generator=g)  # (N, d)
        return torch.cat([robust, weak], dim=1), (y_pm > 0).long()

    return _bundle(cfg, draw, n_train, n_eval, n_unlabeled, seed, {"p": cfg.p, "eta": eta})


@register("spheres")
def load_spheres(
    cfg: SpheresData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    """x uniform on the sphere of radius r_inner (y = -1) or r_outer (y = +1) in R^d."""

    def draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y_pm = _signs(n, g)
        u = torch.randn(n, cfg.d, generator=g)
        u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)  # uniform direction
        radius = torch.where(y_pm > 0, cfg.r_outer, cfg.r_inner)
        return u * radius[:, None], (y_pm > 0).long()

    meta = {"r_inner": cfg.r_inner, "r_outer": cfg.r_outer}
    return _bundle(cfg, draw, n_train, n_eval, n_unlabeled, seed, meta)
