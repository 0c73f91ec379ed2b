"""Convex-hull membership: is a test point a convex combination of the training points?

Point x is inside conv{x_1..x_n} iff the linear program
    find lambda >= 0 with sum(lambda) = 1 and X^T lambda = x
is feasible (scipy's HiGHS solves one LP per point). With n fixed, the fraction of test points
inside the hull falls to zero as d grows (once d is past about log2 n for Gaussian data), so a
model in high dimension is always extrapolating (Balestriero, Pesenti and LeCun 2021).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.optimize import linprog


def in_hull(train: np.ndarray, point: np.ndarray) -> bool:
    """True iff ``point`` (D,) lies in the convex hull of the rows of ``train`` (N, D)."""
    n = train.shape[0]
    a_eq = np.vstack([train.T, np.ones((1, n))])  # (D + 1, N)
    b_eq = np.concatenate([point, [1.0]])
    res = linprog(np.zeros(n), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    return bool(res.status == 0)


def hull_fraction(train: np.ndarray, test: np.ndarray) -> float:
    """Fraction of the rows of ``test`` inside the convex hull of the rows of ``train``."""
    if len(test) == 0:
        return float("nan")
    return float(np.mean([in_hull(train, p) for p in test]))


def gaussian_hull_curve(
    dims: Sequence[int],
    n_train: Sequence[int],
    n_test: int = 100,
    seeds: Sequence[int] = (0,),
) -> pl.DataFrame:
    """Fraction of standard-normal test points inside the hull of ``n`` standard-normal
    training points, per (d, n_train, seed): the extrapolation curve against d."""
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for d in dims:
            for n in n_train:
                train = rng.standard_normal((n, d))
                test = rng.standard_normal((n_test, d))
                rows.append(
                    {
                        "d": d,
                        "n_train": n,
                        "seed": seed,
                        "n_test": n_test,
                        "inside": hull_fraction(train, test),
                    }
                )
    return pl.DataFrame(rows)
