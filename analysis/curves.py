"""Tidy curves with confidence intervals, pooled over seeds by binomial counts."""

from __future__ import annotations

import polars as pl

from adv_core.stats import wilson

GROUP = ["dataset", "d", "n_train", "model", "train_method", "train_eps", "attack", "norm"]


def robustness_curve(
    lf: pl.LazyFrame, by: list[str] | None = None, member: int = -1
) -> pl.DataFrame:
    """Robust accuracy vs eps per group, pooled over seeds: counts summed, Wilson 95% interval."""
    keys = (by or GROUP) + ["eps"]
    df = (
        lf.filter((pl.col("status") == "ok") & (pl.col("member") == member))
        .group_by(keys)
        .agg(
            pl.col("n_robust").sum().alias("robust"),
            pl.col("n_clean_correct").sum().alias("clean"),
            pl.col("n_eval").sum().alias("n"),
            pl.col("theory_robust_acc").mean().alias("theory_robust_acc"),
            pl.col("bayes_robust_acc").mean().alias("bayes_robust_acc"),
            pl.len().alias("cells"),
        )
        .sort(keys)
        .collect()
    )
    lo_hi = [wilson(r, n) for r, n in zip(df["robust"], df["n"], strict=True)]
    return df.with_columns(
        (pl.col("robust") / pl.col("n")).alias("robust_acc"),
        (pl.col("clean") / pl.col("n")).alias("clean_acc"),
        pl.Series("robust_acc_lo", [a for a, _ in lo_hi], dtype=pl.Float64),
        pl.Series("robust_acc_hi", [b for _, b in lo_hi], dtype=pl.Float64),
    )


def _wilson_columns(df: pl.DataFrame, k: str, n: str, prefix: str) -> pl.DataFrame:
    lo_hi = [wilson(int(a), int(b)) for a, b in zip(df[k], df[n], strict=True)]
    return df.with_columns(
        (pl.col(k) / pl.col(n)).alias(f"{prefix}_acc"),
        pl.Series(f"{prefix}_acc_lo", [a for a, _ in lo_hi], dtype=pl.Float64),
        pl.Series(f"{prefix}_acc_hi", [b for _, b in lo_hi], dtype=pl.Float64),
    )


def pooled(
    frame: pl.LazyFrame | pl.DataFrame, keys: list[str], member: int | None = -1
) -> pl.DataFrame:
    """Robust and standard (clean) accuracy per ``keys``, pooled over everything else (seeds,
    and members when ``member`` is None): counts summed, Wilson 95% intervals for both, the
    mean of the closed-form columns, and the number of cells pooled."""
    lf = frame.lazy().filter(pl.col("status") == "ok")
    if member is not None:
        lf = lf.filter(pl.col("member") == member)
    df = (
        lf.group_by(keys)
        .agg(
            pl.col("n_robust").sum().alias("robust"),
            pl.col("n_clean_correct").sum().alias("clean"),
            pl.col("n_eval").sum().alias("n"),
            pl.col("theory_robust_acc").mean(),
            pl.col("bayes_robust_acc").mean(),
            pl.col("any_learner_robust_acc").mean(),
            pl.col("cell_hash").n_unique().alias("cells"),
        )
        .filter(pl.col("n") > 0)
        .sort(keys)
        .collect()
    )
    return _wilson_columns(_wilson_columns(df, "robust", "n", "robust"), "clean", "n", "clean")


def accuracy_vs(
    frame: pl.LazyFrame | pl.DataFrame,
    x: str,
    by: list[str] | None = None,
    member: int | None = -1,
) -> pl.DataFrame:
    """Tidy curve of robust and standard accuracy against ``x`` (``eps``, ``n_train`` or
    ``d``), one curve per combination of ``by`` (default: GROUP plus eps, minus ``x``)."""
    base = by if by is not None else [c for c in [*GROUP, "eps"] if c != x]
    return pooled(frame, [*base, x], member)


def upper_envelope(
    curves: pl.DataFrame,
    over: tuple[str, ...] = ("train_eps", "model"),
    value: str = "robust_acc",
) -> pl.DataFrame:
    """For each curve point, the best ``value`` over the ``over`` columns (e.g. the adversarial
    training eps and the model capacity), the way Schmidt et al. report image results. The
    winning configuration's columns are kept as ``best_<col>``."""
    keys = [c for c in curves.columns if c in [*GROUP, "eps", "member"] and c not in over]
    best = curves.sort(value, descending=True, nulls_last=True).group_by(keys).first()
    return best.rename({c: f"best_{c}" for c in over if c in best.columns}).sort(keys)
