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
