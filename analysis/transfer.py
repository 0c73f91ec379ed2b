"""Transfer matrices and ensemble-vs-member summaries from the metrics table."""

from __future__ import annotations

import polars as pl

from analysis.curves import pooled


def transfer_matrix(
    frame: pl.LazyFrame | pl.DataFrame, source: str = "source_member", target: str = "member"
) -> pl.DataFrame:
    """Robust accuracy of each ``target`` under examples crafted on each ``source`` (rows of
    attacks that record a source), pooled over seeds, per (dataset, model, norm, eps)."""
    lf = frame.lazy().filter(pl.col(source).is_not_null())
    keys = ["dataset", "d", "model", "train_method", "attack", "norm", "eps", source, target]
    return pooled(lf, keys, member=None)


def ensemble_vs_members(frame: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Per (cell, attack, norm, eps) without a source: the ensemble's robust accuracy
    (member -1) next to the mean, min and max over its members."""
    lf = frame.lazy().filter((pl.col("status") == "ok") & pl.col("source_member").is_null())
    keys = [
        "cell_hash",
        "dataset",
        "d",
        "n_train",
        "model",
        "train_method",
        "attack",
        "norm",
        "eps",
    ]
    ens = lf.filter(pl.col("member") == -1).select(*keys, pl.col("robust_acc").alias("ensemble"))
    mem = (
        lf.filter(pl.col("member") >= 0)
        .group_by(keys)
        .agg(
            pl.col("robust_acc").mean().alias("member_mean"),
            pl.col("robust_acc").min().alias("member_min"),
            pl.col("robust_acc").max().alias("member_max"),
            pl.len().alias("members"),
        )
    )
    return ens.join(mem, on=keys, how="inner").sort(keys).collect()
