"""Transition estimates and their scaling exponents, with bootstrap intervals.

A transition is where an accuracy curve crosses a threshold: the smallest ``n_train`` at which
robust (or standard) accuracy reaches it, or the ``eps`` at which robust accuracy falls below it.
Between grid points the crossing is interpolated linearly (in log x for n_train), so the
estimate moves smoothly with the data. A curve already past the threshold at the first grid
point is left-censored: the table reports the bound x* <= x_min (``censored``), and the exponent
fits leave such points out (a bound is not a value); one that never crosses gives null.

Intervals come from a cluster bootstrap: replicate units (seeds by default, or seed x member)
are resampled with replacement within each group, the pooled curve is recomputed, and the
crossing re-estimated. The log-log exponent of transition against d is fitted on every
replicate, so its interval reflects the joint uncertainty of all points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

COUNT_COLUMNS = {"robust": "n_robust", "clean": "n_clean_correct"}


def unit_counts(
    rows: pl.DataFrame,
    x: str,
    by: Sequence[str],
    metric: str = "robust",
    unit: Sequence[str] = ("seed",),
) -> pl.DataFrame:
    """Successes ``k`` and trials ``n`` per (by, unit, x) from ok metrics rows; ``metric`` is
    ``robust`` (n_robust) or ``clean`` (n_clean_correct)."""
    col = COUNT_COLUMNS[metric]
    keys = [*by, *unit, x]
    return (
        rows.filter(pl.col("status") == "ok")
        .group_by(keys)
        .agg(pl.col(col).sum().alias("k"), pl.col("n_eval").sum().alias("n"))
        .sort(keys)
    )


def crossing(
    xs: np.ndarray, acc: np.ndarray, threshold: float, direction: str, log_x: bool
) -> tuple[float, bool]:
    """First x where ``acc`` reaches ``threshold`` (direction ``up``: acc >= t; ``down``:
    acc < t), linearly interpolated between grid points; (value, left_censored). NaN if never."""
    hit = acc >= threshold if direction == "up" else acc < threshold
    idx = np.flatnonzero(hit)
    if idx.size == 0:
        return float("nan"), False
    i = int(idx[0])
    if i == 0:
        return float(xs[0]), True
    x0, x1 = (np.log(xs[i - 1]), np.log(xs[i])) if log_x else (xs[i - 1], xs[i])
    a0, a1 = acc[i - 1], acc[i]
    frac = 0.5 if a1 == a0 else (threshold - a0) / (a1 - a0)
    xt = x0 + float(np.clip(frac, 0.0, 1.0)) * (x1 - x0)
    return float(np.exp(xt) if log_x else xt), False


def _group_arrays(sub: pl.DataFrame, x: str, unit: Sequence[str]) -> tuple[np.ndarray, ...]:
    """(xs (X,), k (U, X), n (U, X)) for one group; missing (unit, x) cells count as zero."""
    xs = np.array(sorted(sub[x].unique().to_list()), dtype=float)
    units = sub.select(list(unit)).unique().sort(list(unit)).rows()
    pos = {u: i for i, u in enumerate(units)}
    xpos = {v: j for j, v in enumerate(xs)}
    k = np.zeros((len(units), len(xs)))
    n = np.zeros((len(units), len(xs)))
    for row in sub.iter_rows(named=True):
        i, j = pos[tuple(row[c] for c in unit)], xpos[float(row[x])]
        k[i, j] += row["k"]
        n[i, j] += row["n"]
    return xs, k, n


def transitions(
    counts: pl.DataFrame,
    x: str,
    by: Sequence[str],
    threshold: float,
    *,
    direction: str = "up",
    unit: Sequence[str] = ("seed",),
    n_boot: int = 1000,
    seed: int = 0,
    log_x: bool | None = None,
) -> tuple[pl.DataFrame, np.ndarray]:
    """Per group of ``by``: the crossing ``x_star`` of the pooled curve, its 95% bootstrap
    interval (``lo``, ``hi``), ``censored`` and ``never`` (fraction of replicates that never
    cross). Also returns the (groups, n_boot) replicate matrix for ``fit_exponent``."""
    rng = np.random.default_rng(seed)
    groups = counts.select(list(by)).unique().sort(list(by)).rows()
    out, boots = [], np.full((len(groups), n_boot), np.nan)
    for g, key in enumerate(groups):
        sub = counts.filter(
            pl.all_horizontal([pl.col(c) == v for c, v in zip(by, key, strict=True)])
        )
        xs, k, n = _group_arrays(sub, x, unit)
        lx = bool(log_x if log_x is not None else xs.min() > 0)
        acc = k.sum(0) / np.maximum(n.sum(0), 1)
        x_star, censored = crossing(xs, acc, threshold, direction, lx)
        pick = rng.integers(0, k.shape[0], size=(n_boot, k.shape[0]))
        vals, cens = np.full(n_boot, np.nan), np.zeros(n_boot, dtype=bool)
        for b in range(n_boot):
            kb, nb = k[pick[b]].sum(0), n[pick[b]].sum(0)
            vals[b], cens[b] = crossing(xs, kb / np.maximum(nb, 1), threshold, direction, lx)
        boots[g] = np.where(cens, np.nan, vals)  # a censored replicate is a bound, not a value
        finite = vals[np.isfinite(vals)]  # censored replicates sit at x_min: lo may be a bound
        lo, hi = np.quantile(finite, [0.025, 0.975]) if finite.size else (np.nan, np.nan)
        out.append(
            {
                **dict(zip(by, key, strict=True)),
                "x_star": x_star,
                "lo": float(lo),
                "hi": float(hi),
                "censored": censored,
                "bound": f"<= {xs[0]:g}" if censored else None,
                "censored_share": float(cens.mean()),
                "never": float(np.mean(~np.isfinite(vals))),
                "units": int(k.shape[0]),
            }
        )
    return pl.DataFrame(out).fill_nan(None), boots


@dataclass(frozen=True)
class ExponentFit:
    """log y = intercept + exponent * log x, with a 95% bootstrap interval for the exponent."""

    exponent: float
    lo: float
    hi: float
    intercept: float
    points: int
    replicates: int
    censored: int = 0  # points left out of the fit because they are bounds (x* <= x_min)

    def as_row(self, **labels: str | float) -> dict[str, str | float | int]:
        return {**labels, **self.__dict__}


def _slope(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(lx) & np.isfinite(ly)
    if ok.sum() < 2 or np.ptp(lx[ok]) == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(lx[ok], ly[ok], 1)
    return float(slope), float(intercept)


def fit_exponent(
    xs: Sequence[float],
    y: Sequence[float | None],
    boots: np.ndarray | None = None,
    censored: Sequence[bool] | None = None,
) -> ExponentFit:
    """Least-squares slope of log y against log x (points with null or non-positive y, and
    ``censored`` points, which are bounds and not values, are dropped); the interval is the
    2.5-97.5% range of the slopes fitted to each bootstrap replicate (columns of ``boots``,
    rows aligned with ``xs``; NaN entries are censored or never-crossing replicates)."""
    cens = np.zeros(len(xs), dtype=bool) if censored is None else np.asarray(censored, bool)
    lx = np.log(np.asarray(xs, dtype=float))
    yv = np.array([np.nan if v is None else v for v in y], dtype=float)
    yv[cens] = np.nan
    ly = np.log(np.where(yv > 0, yv, np.nan))
    slope, intercept = _slope(lx, ly)
    lo = hi = float("nan")
    reps = 0
    if boots is not None and boots.size and np.isfinite(slope):
        with np.errstate(divide="ignore", invalid="ignore"):
            lb = np.log(np.where(boots > 0, boots, np.nan))
        lb[cens] = np.nan
        slopes = np.array([_slope(lx, lb[:, b])[0] for b in range(boots.shape[1])])
        slopes = slopes[np.isfinite(slopes)]
        reps = int(slopes.size)
        if reps:
            lo, hi = (float(v) for v in np.quantile(slopes, [0.025, 0.975]))
    points = int(np.isfinite(ly).sum())
    return ExponentFit(slope, lo, hi, intercept, points, reps, int(cens.sum()))


def transition_exponent(
    rows: pl.DataFrame,
    threshold: float,
    *,
    x: str = "n_train",
    metric: str = "robust",
    direction: str = "up",
    over: str = "d",
    unit: Sequence[str] = ("seed",),
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pl.DataFrame, ExponentFit]:
    """Transitions in ``x`` per value of ``over`` (rows already filtered to one curve family:
    one dataset, model, method, attack, norm and, for n_train transitions, one eps) and the
    fitted exponent of x_star against ``over``."""
    counts = unit_counts(rows, x, [over], metric, unit)
    table, boots = transitions(
        counts, x, [over], threshold, direction=direction, unit=unit, n_boot=n_boot, seed=seed
    )
    fit = fit_exponent(
        table[over].to_list(), table["x_star"].to_list(), boots, table["censored"].to_list()
    )
    return table, fit
