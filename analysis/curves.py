"""Tidy curves with confidence intervals at two levels.

- Test-point level: counts summed over seeds, Wilson 95% interval (``robust_acc_lo``/``_hi``).
  It covers the sampling of test points only.
- Seed level: each seed draws a new theta, training set and model, so the claim "this method
  reaches accuracy p" lives at the level of seeds. Per-seed accuracies p_s (s = 1..S) are
  treated as draws of a random-effects model p_s = p + u_s + e_s (between-seed effect u_s,
  binomial error e_s); the interval for p is mean +- t_{S-1, 0.975} sd(p_s) / sqrt(S)
  (``robust_acc_seed_lo``/``_hi``), widened to contain the Wilson interval. It needs S >= 3
  seeds (MIN_SEEDS): with fewer it is null and ``seed_note`` says so; ``per_seed`` gives the
  per-seed points to show instead.
"""

from __future__ import annotations

import polars as pl
from scipy.stats import t as student_t

from adv_core.stats import wilson

MIN_SEEDS = 3
FEW_SEEDS = f"fewer than {MIN_SEEDS} seeds: no seed-level interval, see the per-seed points"

GROUP = ["dataset", "d", "n_train", "model", "train_method", "train_eps", "attack", "norm"]


def robustness_curve(
    lf: pl.LazyFrame, by: list[str] | None = None, member: int = -1
) -> pl.DataFrame:
    """Robust accuracy vs eps per group, pooled over seeds: counts summed, Wilson 95% interval,
    and the seed-level interval (``robust_acc_seed_lo``/``_hi``, see the module docstring)."""
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
    df = df.with_columns(
        (pl.col("robust") / pl.col("n")).alias("robust_acc"),
        (pl.col("clean") / pl.col("n")).alias("clean_acc"),
        pl.Series("robust_acc_lo", [a for a, _ in lo_hi], dtype=pl.Float64),
        pl.Series("robust_acc_hi", [b for _, b in lo_hi], dtype=pl.Float64),
    )
    seeds = seed_level(lf.filter(pl.col("status") == "ok"), keys, member)
    df = df.join(seeds.drop("clean_half"), on=keys, how="left", nulls_equal=True)
    return _seed_columns(df, "robust").drop("robust_half")


def per_seed(
    frame: pl.LazyFrame | pl.DataFrame, keys: list[str], member: int | None = -1
) -> pl.DataFrame:
    """Robust and clean accuracy per (``keys``, seed): the points behind a pooled curve."""
    lf = frame.lazy().filter(pl.col("status") == "ok")
    if member is not None:
        lf = lf.filter(pl.col("member") == member)
    return (
        lf.group_by([*keys, "seed"])
        .agg(
            (pl.col("n_robust").sum() / pl.col("n_eval").sum()).alias("robust_acc"),
            (pl.col("n_clean_correct").sum() / pl.col("n_eval").sum()).alias("clean_acc"),
            pl.col("n_eval").sum().alias("n"),
        )
        .filter(pl.col("n") > 0)
        .sort([*keys, "seed"])
        .collect()
    )


def _t_half(sd: str, seeds: str = "seeds") -> pl.Expr:
    """t_{S-1, 0.975} sd / sqrt(S); null below MIN_SEEDS."""
    t = pl.col(seeds).map_elements(
        lambda s: float(student_t.ppf(0.975, s - 1)) if s >= MIN_SEEDS else None,
        return_dtype=pl.Float64,
    )
    return t * pl.col(sd) / pl.col(seeds).cast(pl.Float64).sqrt()


def seed_level(
    frame: pl.LazyFrame | pl.DataFrame, keys: list[str], member: int | None = -1
) -> pl.DataFrame:
    """Per ``keys``: ``seeds`` (S) and the half-widths ``robust_half``/``clean_half`` of the
    random-effects t interval over the per-seed accuracies (null when S < MIN_SEEDS)."""
    ps = per_seed(frame, keys, member)
    return (
        ps.group_by(keys)
        .agg(
            pl.len().cast(pl.Int64).alias("seeds"),
            pl.col("robust_acc").std().alias("robust_sd"),
            pl.col("clean_acc").std().alias("clean_sd"),
        )
        .with_columns(
            _t_half("robust_sd").alias("robust_half"), _t_half("clean_sd").alias("clean_half")
        )
        .with_columns(
            pl.when(pl.col("seeds") >= MIN_SEEDS)
            .then(pl.col("robust_sd") / pl.col("seeds").cast(pl.Float64).sqrt())
            .alias("robust_se_seed")
        )
        .drop("robust_sd", "clean_sd")
    )


def _seed_columns(df: pl.DataFrame, prefix: str) -> pl.DataFrame:
    acc, half = pl.col(f"{prefix}_acc"), pl.col(f"{prefix}_half")
    lo = pl.min_horizontal(acc - half, pl.col(f"{prefix}_acc_lo")).clip(0.0, 1.0)
    hi = pl.max_horizontal(acc + half, pl.col(f"{prefix}_acc_hi")).clip(0.0, 1.0)
    return df.with_columns(
        pl.when(half.is_not_null()).then(lo).alias(f"{prefix}_acc_seed_lo"),
        pl.when(half.is_not_null()).then(hi).alias(f"{prefix}_acc_seed_hi"),
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
    and members when ``member`` is None): counts summed, Wilson 95% intervals for both
    (``*_acc_lo``/``_hi``), seed-level intervals (``*_acc_seed_lo``/``_hi``, null with fewer
    than MIN_SEEDS seeds; ``seeds``, ``seed_note``), the mean of the closed-form columns, and
    the number of cells pooled."""
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
    df = _wilson_columns(_wilson_columns(df, "robust", "n", "robust"), "clean", "n", "clean")
    if df.is_empty():
        return df.with_columns(
            pl.lit(0, pl.Int64).alias("seeds"),
            *(
                pl.lit(None, pl.Float64).alias(f"{m}_acc_seed_{e}")
                for m in ("robust", "clean")
                for e in ("lo", "hi")
            ),
            pl.lit(None, pl.String).alias("seed_note"),
        )
    df = df.join(seed_level(lf, keys, None), on=keys, how="left", nulls_equal=True)
    df = _seed_columns(_seed_columns(df, "robust"), "clean").drop("robust_half", "clean_half")
    return df.with_columns(
        pl.when(pl.col("seeds") < MIN_SEEDS).then(pl.lit(FEW_SEEDS)).alias("seed_note")
    )


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


def seed_bands(curves: pl.DataFrame) -> pl.DataFrame:
    """The curves with ``robust_acc_lo``/``_hi`` (and clean) replaced by the seed-level
    interval where there is one, so figures draw the bands at the level the claim lives;
    points with fewer than MIN_SEEDS seeds keep the Wilson band (see ``seed_note``)."""
    out = curves
    for m in ("robust", "clean"):
        if f"{m}_acc_seed_lo" in out.columns:
            out = out.with_columns(
                pl.coalesce(f"{m}_acc_seed_lo", f"{m}_acc_lo").alias(f"{m}_acc_lo"),
                pl.coalesce(f"{m}_acc_seed_hi", f"{m}_acc_hi").alias(f"{m}_acc_hi"),
            )
    return out
