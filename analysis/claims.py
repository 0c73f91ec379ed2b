"""The measurements each claim needs, as small functions the notebooks call: which rows form a
curve family, the transition exponents, the bound checks, the per-example sphere distances.

Functions take a collected metrics frame with the dataset parameters attached
(``analysis.load.with_dataset_params``) and return tidy frames; an absent dataset or attack
gives an empty frame, never an exception, so notebooks can say what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.transitions import ExponentFit, transition_exponent

PREFERRED_ATTACKS = ("exact", "min_norm", "apgd", "pgd", "fgsm")
IMAGE_DATASETS = ("digits", "mnist_5k", "mnist", "fashion_mnist", "cifar10")


def pick_attack(df: pl.DataFrame, norm: str = "linf") -> str | None:
    """The strongest white-box attack present for ``norm`` (exact first, fgsm last)."""
    present = set(df.filter(pl.col("norm") == norm)["attack"].unique().to_list())
    return next((a for a in PREFERRED_ATTACKS if a in present), None)


def family(
    df: pl.DataFrame,
    dataset: str | Sequence[str],
    *,
    norm: str = "linf",
    member: int | None = -1,
    **equal: object,
) -> pl.DataFrame:
    """ok rows of ``dataset`` under the strongest attack for ``norm``, with column filters
    ``equal`` (e.g. ``ds_theta="pm1"``, ``model="linear"``); empty if nothing matches."""
    names = [dataset] if isinstance(dataset, str) else list(dataset)
    sub = df.filter(pl.col("dataset").is_in(names) & (pl.col("status") == "ok"))
    for col, val in equal.items():
        sub = sub.filter(pl.col(col) == val)
    if member is not None:
        sub = sub.filter(pl.col("member") == member)
    attack = pick_attack(sub, norm)
    if attack is None:
        return sub.clear()
    return sub.filter((pl.col("attack") == attack) & (pl.col("norm") == norm))


@dataclass(frozen=True)
class TransitionResult:
    """Transition tables and exponent fits for robust and standard accuracy."""

    robust: pl.DataFrame
    standard: pl.DataFrame
    robust_fit: ExponentFit
    standard_fit: ExponentFit
    eps: float

    def summary(self) -> pl.DataFrame:
        return pl.DataFrame(
            [
                self.robust_fit.as_row(curve=f"robust (eps={self.eps:g})"),
                self.standard_fit.as_row(curve="standard"),
            ]
        )


def n_transitions(
    rows: pl.DataFrame,
    eps: float | None = None,
    robust_threshold: float = 0.5,
    standard_threshold: float = 0.8,
    n_boot: int = 1000,
) -> TransitionResult | None:
    """Robust (at ``eps``; default: the largest eps whose curves all cross the threshold) and
    standard transitions in n_train against d,
    with exponents; None when fewer than two d values or no eps > 0 are present."""
    if rows.is_empty() or rows["d"].n_unique() < 2:
        return None
    eps_pos = sorted(e for e in rows["eps"].unique().to_list() if e > 0)
    if not eps_pos:
        return None
    e = eps if eps is not None else _largest_crossing_eps(rows, eps_pos, robust_threshold)
    rob, rfit = transition_exponent(
        rows.filter(pl.col("eps") == e), robust_threshold, metric="robust", n_boot=n_boot
    )
    clean_rows = rows.filter(pl.col("eps") == min(rows["eps"].unique().to_list()))
    std, sfit = transition_exponent(
        clean_rows, standard_threshold, metric="clean", n_boot=n_boot, seed=1
    )
    return TransitionResult(rob, std, rfit, sfit, float(e))


def _largest_crossing_eps(rows: pl.DataFrame, eps_pos: list[float], threshold: float) -> float:
    """The largest eps at which every d's pooled robust accuracy reaches ``threshold`` at some
    n_train (so that each curve has a crossing); the smallest eps if none does."""
    acc = (
        rows.filter(pl.col("eps").is_in(eps_pos))
        .group_by("eps", "d", "n_train")
        .agg((pl.col("n_robust").sum() / pl.col("n_eval").sum()).alias("acc"))
        .group_by("eps", "d")
        .agg(pl.col("acc").max())
        .group_by("eps")
        .agg(pl.col("acc").min())
    )
    ok = acc.filter(pl.col("acc") >= threshold)["eps"].to_list()
    return float(max(ok)) if ok else float(eps_pos[0])


def eps_transitions(
    rows: pl.DataFrame, broken_fraction: float = 0.25, n_boot: int = 1000
) -> tuple[pl.DataFrame, ExponentFit] | None:
    """The eps at which robust accuracy falls below ``1 - broken_fraction`` (that fraction of
    points broken), per d, with its exponent in d (-1/2 for the dense Gaussian model)."""
    if rows.is_empty() or rows["d"].n_unique() < 2:
        return None
    return transition_exponent(
        rows, 1.0 - broken_fraction, x="eps", direction="down", n_boot=n_boot
    )


def bound_violations(curves: pl.DataFrame, ceiling: str) -> pl.DataFrame:
    """Curve points whose measured robust accuracy lies above the ``ceiling`` column (an upper
    bound on the accuracy of any classifier/learner) beyond the 95% interval."""
    return curves.filter(
        pl.col(ceiling).is_not_null() & (pl.col("robust_acc_lo") > pl.col(ceiling) + 1e-9)
    )


def sphere_distances(metrics: pl.DataFrame, examples: pl.DataFrame) -> pl.DataFrame:
    """Per spheres cell and l2 attack: the error rate mu on the inner sphere (label 0) and the
    median distance to the nearest error (0 for errors; min_distance, else the smallest
    breaking eps of the list) over inner points, times sqrt(d). ``exact`` is false where the
    distances are the grid's upper bounds (no per-example minimal distance)."""
    cells = (
        metrics.filter(pl.col("dataset") == "spheres")
        .select("cell_hash", "d", "model", "n_train")
        .unique()
    )
    if cells.is_empty() or examples.is_empty():
        return pl.DataFrame()
    ex = examples.filter(
        (pl.col("norm") == "l2") & (pl.col("member") == -1) & (pl.col("label") == 0)
    )
    dist = (
        pl.when(pl.col("clean_correct"))
        .then(pl.coalesce("min_distance", "broken_eps"))
        .otherwise(0.0)
    )
    out = (
        ex.join(cells, on="cell_hash")
        .with_columns(dist.alias("dist"))
        .group_by("cell_hash", "d", "model", "n_train", "attack")
        .agg(
            (1.0 - pl.col("clean_correct").cast(pl.Float64).mean()).alias("mu"),
            pl.col("dist").median().alias("distance"),
            pl.col("min_distance").is_not_null().all().alias("exact"),
            pl.len().alias("points"),
        )
        .with_columns(
            (pl.col("distance") * pl.col("d").cast(pl.Float64).sqrt()).alias("distance_sqrt_d")
        )
    )
    return out.filter(pl.col("mu") > 0).sort("d")


def tsipras_points(df: pl.DataFrame) -> pl.DataFrame:
    """Tsipras rows of the strongest linf attack at the smallest eps >= 2 eta (eta = the
    config's, else 3 / sqrt(d_weak)), clean and robust accuracy per (method, d, model) pooled
    over seeds."""
    rows = df.filter((pl.col("dataset") == "tsipras") & (pl.col("member") == -1))
    attack = pick_attack(rows, "linf")  # Thm 2.1 is about linf perturbations
    if attack is None:
        return rows.clear()
    rows = rows.filter((pl.col("attack") == attack) & (pl.col("norm") == "linf"))
    eta = pl.coalesce("ds_eta", 3.0 / pl.col("ds_d").cast(pl.Float64).sqrt())
    rows = rows.with_columns(eta.alias("eta")).filter(pl.col("eps") >= 2 * pl.col("eta") - 1e-9)
    if rows.is_empty():
        return rows
    from analysis.curves import pooled

    first = rows.sort("eps").group_by("train_method", "d", "model").agg(pl.col("eps").first())
    rows = rows.join(first, on=["train_method", "d", "model", "eps"])
    keys = ["train_method", "train_eps", "d", "model", "attack", "norm", "eps", "ds_p"]
    return pooled(rows, keys, member=-1)


def rescaled_n(curves: pl.DataFrame) -> pl.DataFrame:
    """Add ``n_scaled`` = n_train / (eps^2 sqrt(d)), the axis on which the Gaussian robust
    curves collapse (THEORY.md section 2)."""
    return curves.with_columns(
        (pl.col("n_train") / (pl.col("eps") ** 2 * pl.col("d").cast(pl.Float64).sqrt())).alias(
            "n_scaled"
        )
    )


def log_grid(lo: float, hi: float, points: int = 60) -> list[float]:
    return [float(v) for v in np.geomspace(lo, hi, points)]


def one_config(
    rows: pl.DataFrame, model: str = "linear", train_method: str = "standard"
) -> pl.DataFrame:
    """Rows of one (model, train_method): the preferred pair when present, else the first pair
    with the preferred training method, else the first pair."""
    if rows.is_empty():
        return rows
    pairs = rows.select("model", "train_method").unique().sort("model", "train_method").rows()
    same_method = [p for p in pairs if p[1] == train_method]
    m, t = (model, train_method) if (model, train_method) in pairs else (same_method or pairs)[0]
    return rows.filter((pl.col("model") == m) & (pl.col("train_method") == t))
