"""Nightly trends: one series per (dataset, d, n_train, model, method, attack, norm, eps), one
point per nightly run, with Wilson intervals; a drop against the previous run is a regression
by the same rule as ``sweeps nightly`` (Newcombe interval, Bonferroni, minimum drop)."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import polars as pl

from adv_core.stats import wilson
from analysis.curves import GROUP, pooled

SERIES = [*GROUP, "eps"]


def nightly_runs(frame: pl.LazyFrame | pl.DataFrame, prefix: str = "nightly-") -> list[str]:
    """Run ids that start with ``prefix``, in order (nightly-YYYYMMDD sorts by date)."""
    runs = frame.lazy().select(pl.col("run").unique()).collect()["run"].to_list()
    return sorted(r for r in runs if r.startswith(prefix))


def _label(row: dict[str, object]) -> str:
    parts = [f"{row['dataset']} d={row['d']} n={row['n_train']} {row['model']}"]
    method = str(row["train_method"])
    if row.get("train_eps") is not None:
        method += f"@{row['train_eps']:g}"
    parts.append(f"{method} {row['attack']} {row['norm']} eps={row['eps']:g}")
    return " | ".join(parts)


def trend(frame: pl.LazyFrame | pl.DataFrame, runs: list[str] | None = None) -> pl.DataFrame:
    """Pooled robust accuracy per series and run (``run`` column), sorted by run."""
    lf = frame.lazy()
    if runs is not None:
        lf = lf.filter(pl.col("run").is_in(runs))
    df = pooled(lf, [*SERIES, "run"], member=-1)
    labels = [_label(r) for r in df.select(SERIES).iter_rows(named=True)]
    return df.with_columns(pl.Series("series", labels)).sort("series", "run")


def diff_interval(k1: int, n1: int, k0: int, n0: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for k1/n1 - k0/n0 from the two Wilson intervals (the
    rule ``sweeps nightly`` applies, restated here because analysis reads Parquet only)."""
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1, z)
    l0, u0 = wilson(k0, n0, z)
    d = p1 - p0
    return d - math.hypot(p1 - l1, u0 - p0), d + math.hypot(u1 - p1, p0 - l0)


def regressions(tr: pl.DataFrame, threshold: float = 0.05, alpha: float = 0.05) -> pl.DataFrame:
    """Compare each run of each series with the previous run: ``diff`` and its Newcombe
    interval (``diff_lo``, ``diff_hi``) at family-wise level 1 - alpha (Bonferroni over the
    series compared between the two runs); ``regression`` when the drop exceeds ``threshold``
    and the whole interval is below zero."""
    runs = sorted(tr["run"].unique().to_list())
    prev_of = dict(zip(runs[1:], runs[:-1], strict=True))
    idx = {(r["series"], r["run"]): r for r in tr.iter_rows(named=True)}
    compared = {
        run: sum(1 for (s, r) in idx if r == run and (s, prev_of.get(run)) in idx) for run in runs
    }
    out = []
    for row in tr.sort("series", "run").iter_rows(named=True):
        prev = idx.get((row["series"], prev_of.get(row["run"], "")))
        extra: dict[str, object] = {"prev_robust_acc": None, "diff": None}
        extra |= {"diff_lo": None, "diff_hi": None, "regression": False}
        if prev is not None and row["n"] > 0 and prev["n"] > 0:
            z = NormalDist().inv_cdf(1 - alpha / (2 * max(1, compared[row["run"]])))
            lo, hi = diff_interval(row["robust"], row["n"], prev["robust"], prev["n"], z)
            diff = row["robust_acc"] - prev["robust_acc"]
            extra = {
                "prev_robust_acc": prev["robust_acc"],
                "diff": diff,
                "diff_lo": lo,
                "diff_hi": hi,
                "regression": bool(-diff > threshold and hi < 0.0),
            }
        out.append({**row, **extra})
    schema: dict[str, Any] = {**tr.schema, "prev_robust_acc": pl.Float64, "diff": pl.Float64}
    schema |= {"diff_lo": pl.Float64, "diff_hi": pl.Float64, "regression": pl.Boolean}
    return pl.DataFrame(out, schema=schema)
