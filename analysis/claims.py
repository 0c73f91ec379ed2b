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

from analysis.curves import pooled
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
    """Transition tables and exponent fits for robust and standard accuracy. Censored
    transitions (already past the threshold at the smallest n) are bounds n* <= n_min, left out
    of the fits; ``standard_evidence`` holds, per d, the clean accuracy at the smallest n with
    its seed-level interval (the evidence for "n* <= n_min at every d")."""

    robust: pl.DataFrame
    standard: pl.DataFrame
    robust_fit: ExponentFit
    standard_fit: ExponentFit
    eps: float
    standard_evidence: pl.DataFrame | None = None

    def statement(self, which: str = "standard") -> str:
        """The exponent with its interval, or the bound when every transition is censored."""
        table, fit = (
            (self.standard, self.standard_fit)
            if which == "standard"
            else (self.robust, self.robust_fit)
        )
        return transition_statement(table, fit)

    def summary(self) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    **self.robust_fit.as_row(curve=f"robust (eps={self.eps:g})"),
                    "statement": self.statement("robust"),
                },
                {
                    **self.standard_fit.as_row(curve="standard"),
                    "statement": self.statement("standard"),
                },
            ]
        )


def transition_statement(table: pl.DataFrame, fit: ExponentFit, x: str = "n_train") -> str:
    """``exponent [lo, hi]`` from the uncensored points, or ``n* <= x_min at every d`` when all
    transitions are censored (a bound, not an exponent), naming the censored d otherwise."""
    if table.is_empty():
        return "no transitions"
    cens = table.filter(pl.col("censored"))
    if cens.height == table.height:
        bounds = sorted(set(cens["bound"].to_list()))
        return f"n* {' / '.join(bounds)} at every d ({cens['d'].to_list()}): censored, no exponent"
    if fit.points < 2:  # not enough values for a slope: say what each d gives
        per_d = [
            f"d={r['d']}: " + (f"n* {r['bound']}" if r["censored"] else f"n*={r['x_star']:.3g}")
            for r in table.iter_rows(named=True)
            if r["censored"] or r["x_star"] is not None
        ]
        return "no exponent (fewer than 2 uncensored d values): " + "; ".join(per_d)
    text = f"{fit.exponent:.3f} [{fit.lo:.3f}, {fit.hi:.3f}] from {fit.points} d values"
    if cens.height:
        text += f"; censored (bounds, not fitted): d = {cens['d'].to_list()}"
    return text


def n_transitions(
    rows: pl.DataFrame,
    eps: float | None = None,
    robust_threshold: float = 0.5,
    standard_threshold: float = 0.8,
    n_boot: int = 1000,
) -> TransitionResult | None:
    """Robust (at ``eps``; default: the largest eps whose curves all cross the threshold) and
    standard transitions in n_train against d, with exponents; None when fewer than two d
    values or no eps > 0 are present. ``rows`` must be one curve family (one training method
    and training eps: see ``curve_families``)."""
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
    n_min = clean_rows["n_train"].min()
    evidence = pooled(clean_rows.filter(pl.col("n_train") == n_min), ["d", "n_train"]).select(
        "d",
        "n_train",
        "seeds",
        "clean_acc",
        "clean_acc_lo",
        "clean_acc_seed_lo",
        "clean_acc_seed_hi",
    )
    return TransitionResult(rob, std, rfit, sfit, float(e), evidence)


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


def bound_check(curves: pl.DataFrame, ceiling: str, alpha: float = 0.05) -> pl.DataFrame:
    """Every curve point with a ``ceiling`` (an upper bound on the robust accuracy of any
    classifier or learner), judged at seed level with family-wise error ``alpha`` over the m
    points checked (Bonferroni): ``bound_lo`` = min(acc - t_{1 - alpha/m, S-1} se_seed, the
    Wilson lower bound at z_{1 - alpha/m}); ``bound_verdict`` is ``violation`` when it lies
    above the ceiling, ``consistent`` otherwise, ``inconclusive`` when the point has fewer than
    MIN_SEEDS seeds (no seed-level interval: pooled counts would mistake seed noise for a
    violation)."""
    from scipy.stats import norm
    from scipy.stats import t as student_t

    from adv_core.stats import wilson

    pts = curves.filter(pl.col(ceiling).is_not_null())
    m = max(pts.height, 1)
    z = float(norm.isf(alpha / m))
    lo: list[float | None] = []
    rows = pts.iter_rows(named=True)
    for r in rows:
        se, s = r.get("robust_se_seed"), r.get("seeds") or 0
        if se is None or s < 3:
            lo.append(None)
            continue
        t_lo = r["robust_acc"] - float(student_t.isf(alpha / m, s - 1)) * se
        lo.append(min(t_lo, wilson(int(r["robust"]), int(r["n"]), z)[0]))
    pts = pts.with_columns(pl.Series("bound_lo", lo, dtype=pl.Float64))
    verdict = (
        pl.when(pl.col("bound_lo").is_null())
        .then(pl.lit("inconclusive"))
        .when(pl.col("bound_lo") > pl.col(ceiling) + 1e-9)
        .then(pl.lit("violation"))
        .otherwise(pl.lit("consistent"))
    )
    return pts.with_columns(verdict.alias("bound_verdict"))


def bound_violations(curves: pl.DataFrame, ceiling: str) -> pl.DataFrame:
    """Curve points whose family-wise seed-level lower bound lies above the ``ceiling``."""
    return bound_check(curves, ceiling).filter(pl.col("bound_verdict") == "violation")


def bound_summary(curves: pl.DataFrame, ceiling: str) -> str:
    """One line: how many points were checked and the verdict counts."""
    chk = bound_check(curves, ceiling)
    counts = dict(chk.group_by("bound_verdict").len().iter_rows())
    parts = [f"{counts.get(v, 0)} {v}" for v in ("consistent", "violation", "inconclusive")]
    return f"{chk.height} curve points under {ceiling}: " + ", ".join(parts)


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


# Where each closed form applies: (dataset filter, training filter, why), read by the notebooks
# and the report. "labeled only" = trained on n labeled draws of the model's own distribution,
# no unlabeled pool (rst) and no other data: Schmidt's Thm 11 bounds learners that see n
# labeled samples and nothing else, so an unlabeled pool voids it.
LABELED_ONLY = (pl.col("train_method") != "rst") & (pl.col("ds_n_unlabeled").fill_null(0) == 0)
THEOREMS: dict[str, tuple[pl.Expr, str]] = {
    "schmidt_thm11": (
        (pl.col("dataset") == "gaussian") & (pl.col("ds_theta") == "normal")
        & (pl.col("norm") == "linf") & LABELED_ONLY,
        "Gaussian model with theta ~ N(0, I), linf, learners trained on the n labeled samples "
        "alone (not rst / unlabeled pools)",
    ),
    "bayes": (
        (pl.col("dataset") == "gaussian") & pl.col("norm").is_in(["linf", "l2"]) & LABELED_ONLY,
        "Gaussian model (theta known to the Bayes classifier), linf or l2, rows trained on "
        "labeled data of the model's distribution alone",
    ),
    "mean_estimator": (
        (pl.col("dataset") == "gaussian") & (pl.col("ds_theta") == "pm1")
        & (pl.col("model") == "linear") & (pl.col("train_method") == "standard")
        & (pl.col("norm") == "linf") & LABELED_ONLY,
        "Gaussian model with theta = +-1, a linear model trained by plain (standard) learning",
    ),
    "tsipras": (
        (pl.col("dataset") == "tsipras") & (pl.col("norm") == "linf"),
        "the Tsipras et al. data model only (robust feature x_1, weak Gaussian features), linf",
    ),
}  # fmt: skip


def applicable(rows: pl.DataFrame, theorem: str) -> pl.DataFrame:
    """The rows where ``theorem`` (a key of THEOREMS) applies."""
    if rows.is_empty():
        return rows
    return rows.filter(THEOREMS[theorem][0])


def applicability(rows: pl.DataFrame, theorem: str) -> pl.DataFrame:
    """Per (dataset, training method, training eps, unlabeled pool): rows, and whether
    ``theorem`` applies to them; the table each notebook prints next to a bound."""
    cond, _ = THEOREMS[theorem]
    if rows.is_empty():
        return pl.DataFrame()
    keys = ["dataset", "ds_theta", "model", "train_method", "train_eps", "ds_n_unlabeled", "norm"]
    return (
        rows.with_columns(cond.fill_null(False).alias("applies"))
        .group_by(keys)
        .agg(pl.len().alias("rows"), pl.col("applies").all())
        .sort(keys, nulls_last=True)
    )


def without_void_bounds(rows: pl.DataFrame) -> pl.DataFrame:
    """``any_learner_robust_acc`` and ``bayes_robust_acc`` nulled on rows where Thm 11 or the
    Bayes limit does not apply (the cells attach them to every gaussian row)."""
    if rows.is_empty():
        return rows
    return rows.with_columns(
        pl.when(THEOREMS["schmidt_thm11"][0]).then(pl.col("any_learner_robust_acc")),
        pl.when(THEOREMS["bayes"][0]).then(pl.col("bayes_robust_acc")),
    )


CURVE_KEYS = ["model", "train_method", "train_eps"]


def curve_families(rows: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
    """Rows split by (model, training method, training eps, unlabeled pool): one curve family
    each, never pooled across them. (label, rows) in a stable order."""
    if rows.is_empty():
        return []
    keys = [*CURVE_KEYS, "ds_n_unlabeled"] if "ds_n_unlabeled" in rows.columns else CURVE_KEYS
    out = []
    for vals, sub in rows.group_by(keys, maintain_order=True):
        model, method, teps = vals[0], vals[1], vals[2]
        label = f"{model} {method}" + (f"@{teps:g}" if teps is not None else "")
        if len(vals) > 3 and vals[3]:
            label += f" (unlabeled={vals[3]})"
        out.append((label, sub))
    return sorted(out, key=lambda p: p[0])
