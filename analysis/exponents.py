"""Scaling exponents a referee cannot move by picking a threshold.

- ``exponent_grid``: the transition exponent of n* against d over a grid of thresholds x eps
  (each with its bootstrap interval over seeds, censored points left out as bounds), next to
  the same estimate on the closed form's curves at the same finite d, n grid and eps.
- ``collapse``: a threshold-free estimate. For each alpha the robust-accuracy curves of every d
  are drawn against log n - alpha log d; the quality of the collapse is the mean squared
  difference between each pair of curves (linear interpolation of one at the other's points,
  inside their common range). alpha* minimises it over a grid; its 95% interval comes from a
  cluster bootstrap over seeds (seeds resampled within each d). The closed form's own alpha* at
  the same finite d comes from the same procedure on its curves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from analysis.transitions import (
    ExponentFit,
    _group_arrays,
    crossing,
    transition_exponent,
    unit_counts,
)

ALPHAS = np.round(np.linspace(0.0, 1.5, 151), 4)
TheoryCurve = Callable[[int, np.ndarray, float], np.ndarray]
"""theory(d, n_values, eps) -> robust accuracy at each n."""


def collapse_quality(lx: np.ndarray, acc: np.ndarray, ld: np.ndarray, alpha: float) -> float:
    """Mean squared gap between the curves acc[i] (over log n ``lx``) of every pair of d once
    shifted to x = log n - alpha log d; pairs need 3 common points (NaN if none has)."""
    gaps: list[float] = []
    for i in range(len(ld)):
        xi = lx - alpha * ld[i]
        for j in range(len(ld)):
            if i == j:
                continue
            xj = lx - alpha * ld[j]
            inside = (xi >= xj[0]) & (xi <= xj[-1])
            if inside.sum() >= 3:
                gaps.append(
                    float(np.mean((acc[i][inside] - np.interp(xi[inside], xj, acc[j])) ** 2))
                )
    return float(np.mean(gaps)) if gaps else float("nan")


def best_alpha(
    lx: np.ndarray, acc: np.ndarray, ld: np.ndarray, alphas: np.ndarray = ALPHAS
) -> float:
    q = np.array([collapse_quality(lx, acc, ld, a) for a in alphas])
    return float(alphas[int(np.nanargmin(q))]) if np.isfinite(q).any() else float("nan")


@dataclass(frozen=True)
class CollapseFit:
    """alpha* with its bootstrap interval, and the closed form's alpha* at the same d."""

    alpha: float
    lo: float
    hi: float
    replicates: int
    theory_alpha: float | None
    eps: float
    dims: tuple[int, ...]

    def line(self) -> str:
        th = "n/a" if self.theory_alpha is None else f"{self.theory_alpha:.2f}"
        return (
            f"COLLAPSE alpha (eps={self.eps:g}, d={list(self.dims)}): {self.alpha:.2f} "
            f"[{self.lo:.2f}, {self.hi:.2f}] ({self.replicates} seed bootstraps); closed form "
            f"at the same d: {th}"
        )


def _per_d(rows: pl.DataFrame) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(n grid (X,), per d: k (U, X), n (U, X), d values) on the n grid common to every d."""
    counts = unit_counts(rows, "n_train", ["d"])
    dims = sorted(counts["d"].unique().to_list())
    grids = [set(counts.filter(pl.col("d") == d)["n_train"].to_list()) for d in dims]
    common = sorted(set.intersection(*grids))
    ks, ns = [], []
    for d in dims:
        sub = counts.filter((pl.col("d") == d) & pl.col("n_train").is_in(common))
        _, k, n = _group_arrays(sub, "n_train", ("seed",))
        ks.append(k)
        ns.append(n)
    return np.array(common, dtype=float), ks, ns, np.array(dims, dtype=float)


def collapse(
    rows: pl.DataFrame,
    eps: float,
    *,
    theory: TheoryCurve | None = None,
    n_boot: int = 200,
    seed: int = 0,
    alphas: np.ndarray = ALPHAS,
) -> CollapseFit | None:
    """The collapse estimate for rows of one curve family at ``eps`` (None with < 2 d or < 3
    common n values)."""
    sub = rows.filter(pl.col("eps") == eps)
    if sub.is_empty() or sub["d"].n_unique() < 2:
        return None
    ns, ks, nn, dims = _per_d(sub)
    if ns.size < 3:
        return None
    lx, ld = np.log(ns), np.log(dims)
    acc = np.array([k.sum(0) / np.maximum(n.sum(0), 1) for k, n in zip(ks, nn, strict=True)])
    alpha = best_alpha(lx, acc, ld, alphas)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        rb = []
        for k, n in zip(ks, nn, strict=True):
            pick = rng.integers(0, k.shape[0], k.shape[0])
            rb.append(k[pick].sum(0) / np.maximum(n[pick].sum(0), 1))
        reps.append(best_alpha(lx, np.array(rb), ld, alphas))
    r = np.array(reps)
    r = r[np.isfinite(r)]
    lo, hi = (float(v) for v in np.quantile(r, [0.025, 0.975])) if r.size else (np.nan, np.nan)
    th = None
    if theory is not None:
        curves = np.array([theory(int(d), ns, eps) for d in dims])
        th = best_alpha(lx, curves, ld, alphas)
    return CollapseFit(alpha, lo, hi, int(r.size), th, float(eps), tuple(int(d) for d in dims))


def _theory_exponent(
    theory: TheoryCurve, dims: Sequence[int], ns: np.ndarray, eps: float, threshold: float
) -> float:
    """The n*-vs-d slope of the closed form's curves on the same n grid (interpolated like the
    data; censored points left out)."""
    pts = []
    for d in dims:
        x, cens = crossing(ns, theory(int(d), ns, eps), threshold, "up", True)
        if np.isfinite(x) and not cens:
            pts.append((np.log(d), np.log(x)))
    if len(pts) < 2:
        return float("nan")
    a: np.ndarray = np.array(pts)
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def exponent_grid(
    rows: pl.DataFrame,
    thresholds: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    eps_values: Sequence[float] | None = None,
    *,
    theory: TheoryCurve | None = None,
    n_boot: int = 200,
) -> pl.DataFrame:
    """Transition exponent of n* in d for every (threshold, eps > 0): ``exponent``, ``lo``,
    ``hi``, ``points`` fitted, ``censored`` (bounds left out), ``never`` (d values whose curve
    never reaches the threshold), and ``theory_exponent`` on the closed form's curves."""
    eps_all = sorted(e for e in rows["eps"].unique().to_list() if e > 0)
    out = []
    for e in eps_values if eps_values is not None else eps_all:
        sub = rows.filter(pl.col("eps") == e)
        ns = np.array(sorted(sub["n_train"].unique().to_list()), dtype=float)
        dims = sorted(sub["d"].unique().to_list())
        for t in thresholds:
            table, fit = transition_exponent(sub, t, n_boot=n_boot)
            th = _theory_exponent(theory, dims, ns, e, t) if theory is not None else None
            out.append(
                {
                    "threshold": t, "eps": e, "exponent": fit.exponent, "lo": fit.lo,
                    "hi": fit.hi, "points": fit.points, "censored": fit.censored,
                    "never": int(table["x_star"].null_count()), "theory_exponent": th,
                }
            )  # fmt: skip
    schema: dict[str, Any] = {"threshold": pl.Float64, "eps": pl.Float64, "exponent": pl.Float64}
    schema |= {"lo": pl.Float64, "hi": pl.Float64, "points": pl.Int64, "censored": pl.Int64}
    schema |= {"never": pl.Int64, "theory_exponent": pl.Float64}
    return pl.DataFrame(out, schema=schema).fill_nan(None)


def mean_estimator_curve(sigma_c: float) -> TheoryCurve:
    """The mean estimator's robust accuracy (theta = +-1, sigma = sigma_c d^(1/4), linf)."""
    from adv_core import theory

    def curve(d: int, ns: np.ndarray, eps: float) -> np.ndarray:
        sigma = sigma_c * d**0.25
        return 1.0 - np.asarray(theory.mean_estimator_robust_error(ns, d, sigma, eps))

    return curve


@dataclass(frozen=True)
class ExponentEvidence:
    """Everything the sample-complexity verdict needs, as one typed record: the robust fit at
    the chosen eps and its statement, the standard statement (a bound when censored), the
    threshold x eps table and the collapse estimate (None with too few d or n values)."""

    eps: float
    robust_fit: ExponentFit
    robust_statement: str
    standard_statement: str
    standard_censored: bool  # every standard transition is a bound n* <= n_min
    grid: pl.DataFrame
    collapse: CollapseFit | None


def exponent_evidence(
    rows: pl.DataFrame,
    *,
    robust_threshold: float = 0.5,
    standard_threshold: float = 0.75,
    sigma_c: float | None = None,
    n_boot: int = 300,
) -> ExponentEvidence | None:
    """The record for one curve family (one model, training method and eps; e.g. the
    gaussian pm1 linear standard rows); None without two d values and an eps > 0."""
    from analysis.claims import n_transitions

    tr = n_transitions(
        rows, robust_threshold=robust_threshold, standard_threshold=standard_threshold,
        n_boot=n_boot,
    )  # fmt: skip
    if tr is None:
        return None
    theory = mean_estimator_curve(sigma_c) if sigma_c is not None else None
    return ExponentEvidence(
        eps=tr.eps,
        robust_fit=tr.robust_fit,
        robust_statement=tr.statement("robust"),
        standard_statement=tr.statement("standard"),
        standard_censored=bool(tr.standard.height and tr.standard["censored"].all()),
        grid=exponent_grid(rows, theory=theory, n_boot=n_boot),
        collapse=collapse(rows, tr.eps, theory=theory, n_boot=n_boot),
    )
