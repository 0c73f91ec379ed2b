"""The reference side of the AutoAttack comparisons (tests and benchmarks only): the AutoAttack
package from PyPI (``pip install pyautoattack``, imported as ``pyautoattack``) and ours, on the
same model and points, with the same iteration and query counts."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from adv_core import attacks
from adv_core.attacks.base import predict_correct
from adv_core.config.attacks import AutoAttackConfig
from adv_core.rng import generator

REF_NORM = {"linf": "Linf", "l2": "L2", "l1": "L1"}


def reference_autoattack(
    model: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    eps: float,
    *,
    steps: int = 100,
    square_queries: int = 5000,
    seed: int = 0,
) -> tuple[float, float]:
    """(robust accuracy, seconds) of pyautoattack's ``standard`` version."""
    from pyautoattack import AutoAttack

    logging.getLogger("auto-attack").setLevel(logging.ERROR)
    adv = AutoAttack(model, norm=REF_NORM[norm], eps=eps, version="standard", seed=seed)  # type: ignore[arg-type]
    adv.apgd.n_iter = adv.apgd_targeted.n_iter = adv.fab.n_iter = steps
    adv.square.n_queries = square_queries
    t0 = time.perf_counter()
    x_adv, _ = adv.run_standard_evaluation(x, y, batch_size=len(y))
    seconds = time.perf_counter() - t0
    return float(predict_correct(model, x_adv, y).float().mean()), seconds


def ours_autoattack(
    model: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    eps: float,
    *,
    steps: int = 100,
    square_queries: int = 5000,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> tuple[float, float, attacks.AttackResult]:
    """(robust accuracy, seconds, result) of our ``autoattack`` standard."""
    cfg = AutoAttackConfig(norm=norm, eps=(eps,), steps=steps, square_queries=square_queries)  # type: ignore[arg-type]
    attack = attacks.build(cfg)
    t0 = time.perf_counter()
    res = attack(model, x, y, bounds=bounds, generator=generator("aa-ref", norm, eps))
    return float(res.robust_acc()[0]), time.perf_counter() - t0, res
