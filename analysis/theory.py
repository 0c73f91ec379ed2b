"""The closed forms of THEORY.md evaluated on grids, as tidy polars frames.

Every number here comes from ``adv_core.theory`` (numpy + stdlib), the same functions the cells
use for ``theory_robust_acc``, ``bayes_robust_acc`` and ``any_learner_robust_acc``; this module
only lays them out on the grid of the data (or on a finer one for smooth reference curves).

Columns follow the metrics table (``d``, ``n_train``, ``eps``, accuracies in [0, 1]) so theory
frames join or overlay measured curves directly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import polars as pl

from adv_core import theory

ThetaKind = str  # "pm1" | "normal" | "dense", as in adv_core.config.data.GaussianData


def grid(**axes: Sequence[float] | Sequence[int]) -> pl.DataFrame:
    """The cartesian product of the named axes, one row per combination."""
    names = list(axes)
    rows = list(itertools.product(*(list(v) for v in axes.values())))
    return pl.DataFrame(rows, schema=names, orient="row")


def typical_theta(kind: ThetaKind, d: int, r: float = 3.0) -> np.ndarray:
    """A deterministic theta of each kind: +-1 entries (all +1: the closed forms depend on
    |theta_i| only), the d normal quantiles Phi^-1((i + 1/2) / d) standing for a N(0, I) draw,
    or the dense weak signal r / sqrt(d)."""
    if kind == "pm1":
        return np.ones(d)
    if kind == "normal":
        nd = NormalDist()
        return np.array([nd.inv_cdf((i + 0.5) / d) for i in range(d)])
    if kind == "dense":
        return np.full(d, r / np.sqrt(d))
    raise ValueError(f"unknown theta kind {kind!r}; known: pm1, normal, dense")


def noise_sigma(d: int, sigma: float = 1.0, sigma_c: float | None = None) -> float:
    """sigma_c d^(1/4) when sigma_c is given, else sigma (GaussianData.noise_sigma)."""
    return float(sigma_c * d**0.25) if sigma_c is not None else float(sigma)


def gaussian(
    d: Sequence[int],
    eps: Sequence[float],
    n_train: Sequence[int] = (1,),
    *,
    theta: ThetaKind = "pm1",
    sigma: float = 1.0,
    sigma_c: float | None = None,
    r: float = 3.0,
    norm: str = "linf",
) -> pl.DataFrame:
    """Gaussian model on the (d, n_train, eps) grid: ``bayes_robust_acc`` (any classifier,
    theta known), ``mean_estimator_robust_acc`` (theta = +-1, linf, large-d value) and
    ``any_learner_robust_acc`` (Schmidt Thm 11 bound, theta ~ N(0, I), linf); null where the
    closed form does not apply."""
    frames = []
    for di in d:
        s = noise_sigma(di, sigma, sigma_c)
        th = typical_theta(theta, di, r)
        e = np.asarray(eps, dtype=float)
        bayes = 1.0 - theory.bayes_robust_error(th, s, e, norm)
        for n in n_train:
            mean_est = (
                1.0 - theory.mean_estimator_robust_error(n, di, s, e)
                if theta == "pm1" and norm == "linf"
                else np.full(len(e), np.nan)
            )
            bound = (
                1.0 - theory.schmidt_lower_bound(n, di, s, e)
                if theta == "normal" and norm == "linf"
                else np.full(len(e), np.nan)
            )
            frames.append(
                pl.DataFrame(
                    {
                        "d": [di] * len(e),
                        "n_train": [n] * len(e),
                        "eps": e,
                        "sigma": [s] * len(e),
                        "bayes_robust_acc": bayes,
                        "mean_estimator_robust_acc": mean_est,
                        "any_learner_robust_acc": bound,
                    }
                ).fill_nan(None)
            )
    return pl.concat(frames)


def dense(d: Sequence[int], eps: Sequence[float], r: float = 3.0) -> pl.DataFrame:
    """Dense weak-signal model (theta_i = r / sqrt(d), sigma = 1): Bayes-optimal linf robust
    accuracy 1 - Phi(-(r - eps sqrt(d))_+), a function of eps sqrt(d) alone."""
    g = grid(d=list(d), eps=list(eps))
    err = theory.dense_bayes_robust_error(r, g["d"].to_numpy(), g["eps"].to_numpy())
    return g.with_columns(
        (pl.col("eps") * pl.col("d").cast(pl.Float64).sqrt()).alias("eps_sqrt_d"),
        pl.Series("bayes_robust_acc", 1.0 - err),
    )


def dense_eps_to_break(d: Sequence[int], error: float, r: float = 3.0) -> pl.DataFrame:
    """The eps at which the best classifier of the dense model has robust error ``error``:
    (r + Phi^-1(error)) / sqrt(d), the 1/sqrt(d) reference line."""
    dd = np.asarray(d, dtype=float)
    return pl.DataFrame(
        {"d": list(d), "eps_break": theory.dense_eps_to_break(r, dd, error), "error": error}
    )


def schmidt_bound(
    n_train: Sequence[int],
    d: Sequence[int],
    eps: Sequence[float],
    sigma_c: float | None,
    sigma: float = 1.0,
) -> pl.DataFrame:
    """Schmidt Thm 11 any-learner robust-accuracy ceiling (1 - lower bound on robust error)."""
    g = grid(d=list(d), n_train=list(n_train), eps=list(eps))
    sig = np.array([noise_sigma(int(x), sigma, sigma_c) for x in g["d"]])
    lb = theory.schmidt_lower_bound(g["n_train"].to_numpy(), g["d"].to_numpy(), sig, g["eps"])
    return g.with_columns(pl.Series("sigma", sig), pl.Series("any_learner_robust_acc", 1.0 - lb))


def mean_estimator_n_star(d: Sequence[int], eps: float, sigma_c: float) -> pl.DataFrame:
    """n at which the mean estimator's robust error crosses 1/2 (pm1 theta, sigma = c d^(1/4)):
    solve eps E|1 + s Z| = 1 for s by bisection; n* = sigma^2 / s^2, exactly ~ sqrt(d)."""
    lo, hi = 1e-6, 1e6
    for _ in range(200):
        mid = float(np.sqrt(lo * hi))
        val = float(theory._mean_abs_shifted_normal(np.asarray(mid)))
        lo, hi = (mid, hi) if eps * val < 1.0 else (lo, mid)
    s_star = float(np.sqrt(lo * hi))
    sig = np.array([noise_sigma(int(x), 1.0, sigma_c) for x in d])
    return pl.DataFrame({"d": list(d), "n_star": sig**2 / s_star**2})


def tsipras_tradeoff(p: float, standard_acc: Sequence[float]) -> pl.DataFrame:
    """Tsipras Thm 2.1 for eps >= 2 eta: robust accuracy <= p delta / (1 - p) where
    delta = 1 - standard accuracy."""
    std = np.asarray(standard_acc, dtype=float)
    return pl.DataFrame(
        {"standard_acc": std, "robust_acc_bound": theory.tsipras_robust_bound(p, 1.0 - std)}
    )


def spheres_distance(mu: Sequence[float], d: Sequence[int]) -> pl.DataFrame:
    """Gilmer et al.: typical l2 distance to the nearest error at error rate mu on the sphere,
    Phi^-1(1 - mu) / sqrt(d), and the same times sqrt(d) (the d-free curve)."""
    g = grid(d=list(d), mu=list(mu))
    dist = theory.spheres_cap_distance(g["mu"].to_numpy(), g["d"].to_numpy())
    return g.with_columns(
        pl.Series("distance", dist),
        pl.Series("distance_sqrt_d", dist * np.sqrt(g["d"].to_numpy().astype(float))),
    )


def sphere_robust_fraction(eps: Sequence[float], d: Sequence[int], u: float = 1.0) -> pl.DataFrame:
    """Shafahi et al.: at most U exp(-(d-1) eps^2 / 2) of the sphere is robust at l2 eps."""
    g = grid(d=list(d), eps=list(eps))
    b = theory.sphere_robust_fraction_bound(g["eps"].to_numpy(), g["d"].to_numpy(), u)
    return g.with_columns(pl.Series("robust_fraction_bound", b))
