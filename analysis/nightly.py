"""Nightly trends: one series per (dataset, d, n_train, model, method, attack, norm, eps), one
point per nightly run, with Wilson intervals; a drop flagged as a regression when a two-sample
z-test on the pooled counts against the previous run gives z <= -z_crit."""

from __future__ import annotations

import math

import polars as pl

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


def _z(k1: int, n1: int, k0: int, n0: int) -> float:
    """Two-proportion z statistic of (k1/n1) - (k0/n0) with the pooled variance."""
    if n1 == 0 or n0 == 0:
        return 0.0
    p = (k1 + k0) / (n1 + n0)
    se = math.sqrt(max(p * (1 - p) * (1 / n1 + 1 / n0), 1e-12))
    return (k1 / n1 - k0 / n0) / se


def regressions(tr: pl.DataFrame, z_crit: float = 3.0) -> pl.DataFrame:
    """Add ``prev_robust_acc``, ``z`` (against the previous run of the same series) and
    ``regression`` (z <= -z_crit) to a ``trend`` frame."""
    out = []
    for _, s in tr.sort("run").group_by("series", maintain_order=True):
        prev: tuple[int, int, float] | None = None
        for row in s.iter_rows(named=True):
            z = _z(row["robust"], row["n"], prev[0], prev[1]) if prev else 0.0
            out.append(
                {
                    **row,
                    "prev_robust_acc": prev[2] if prev else None,
                    "z": z,
                    "regression": bool(prev is not None and z <= -z_crit),
                }
            )
            prev = (row["robust"], row["n"], row["robust_acc"])
    if not out:
        return tr.with_columns(
            pl.lit(None, pl.Float64).alias("prev_robust_acc"),
            pl.lit(0.0).alias("z"),
            pl.lit(False).alias("regression"),
        )
    return pl.DataFrame(out, infer_schema_length=None)
