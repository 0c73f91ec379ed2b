"""Verdicts: for each claim, what the theory says, what was measured (with 95% intervals),
and whether the measurement agrees: ``pass``, ``fail`` or ``inconclusive``, with the reason.

A thin layer over ``analysis.claims`` / ``analysis.transitions`` (the estimates and their
intervals) and ``analysis.theory`` (the closed forms). Every function takes a collected metrics
frame with the dataset parameters attached (``analysis.load.with_dataset_params``) and returns
None when the rows a claim needs are absent, so a report can leave the claim out.

The decision rules, stated once:

- Sample complexity (Schmidt et al. 2018, THEORY.md section 2): on the Gaussian model with
  theta = +-1 and sigma = c d^(1/4), the robust transition n* (robust accuracy reaching 1/2)
  grows like d^(1/2), while standard accuracy needs n = 1 at every d (exponent 0). ``pass``:
  the robust exponent's interval lies above 0 and above the standard one's, and the robust
  exponent agrees with 1/2 (1/2 inside its interval, or within ``TOLERANCE``). ``fail``: the
  intervals exclude that. ``inconclusive``: an interval overlaps 0 (or the standard one), or a
  curve never crosses its threshold.
- Inevitability (dense weak-signal model, THEORY.md section 2): every classifier's linf robust
  accuracy is at most 1/2 once eps >= r / sqrt(d), so the eps breaking half of the points is at
  most r / sqrt(d) and shrinks like d^(-1/2). ``pass``: the measured exponent's interval lies
  below 0, agrees with -1/2 as above, and no measured eps* lies above the bound beyond its
  interval. ``fail``: a bound violation, or an exponent interval at or above 0 or away from
  -1/2. ``inconclusive``: the interval overlaps 0, or a curve never crosses.
- Closed form (THEORY.md section 1): for linear models on Gaussian data every cell carries its
  trained model's exact population robust accuracy; the measured 95% interval should cover it
  in about 95% of rows (``pass`` at >= 90%, ``fail`` below 80%, else ``inconclusive``).
- Sanity checks (STYLE 8): ``pass`` when no flag fired on an ok row, else ``fail`` naming them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from analysis import claims, theory
from analysis.transitions import ExponentFit

Status = Literal["pass", "fail", "inconclusive"]
TOLERANCE = 0.2  # exponent difference that still counts as agreeing with the closed form
ROBUST_THRESHOLD = 0.5  # the mean estimator's robust error crosses 1/2 at n* ~ eps^2 sigma^2
STANDARD_THRESHOLD = 0.75  # below Phi(1/c^2) = 0.84, the one-sample standard accuracy at c = 1
BREAK_FRACTION = 0.5  # "the eps that breaks most points": half of them, bound r / sqrt(d)


@dataclass(frozen=True)
class Estimate:
    """A measured value with its 95% interval (nan when there is none)."""

    value: float
    lo: float
    hi: float

    @classmethod
    def of(cls, fit: ExponentFit) -> Estimate:
        return cls(fit.exponent, fit.lo, fit.hi)

    def known(self) -> bool:
        return all(math.isfinite(v) for v in (self.value, self.lo, self.hi))

    def covers(self, x: float, tol: float = 0.0) -> bool:
        return self.lo - tol <= x <= self.hi + tol or abs(self.value - x) <= tol

    def __str__(self) -> str:
        if not math.isfinite(self.value):
            return "n/a"
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return f"{self.value:.2f}"
        return f"{self.value:.2f} [{self.lo:.2f}, {self.hi:.2f}]"


@dataclass(frozen=True)
class Verdict:
    """One claim: the theory's statement, the measurement, the decision and why. ``evidence``
    is the per-d table behind the measurement (measured value, interval, closed form)."""

    claim: str
    theory: str
    measured: str
    status: Status
    reason: str
    estimate: Estimate | None = None
    expected: float | None = None
    evidence: pl.DataFrame = field(default_factory=pl.DataFrame)
    details: dict[str, float] = field(default_factory=dict)  # e.g. the eps a transition used


def _decide_exponent(est: Estimate, expected: float, sign: int, what: str) -> tuple[Status, str]:
    """The exponent rule shared by both claims: ``sign`` +1 (must grow) or -1 (must shrink)."""
    if not est.known():
        return "inconclusive", f"no interval for the exponent of {what} (too few crossings)"
    if sign * est.lo > 0 and sign * est.hi > 0:
        if est.covers(expected, TOLERANCE):
            return (
                "pass",
                f"{what} {'grows' if sign > 0 else 'shrinks'} with d at the rate of the closed form",
            )
        return "fail", f"{what} moves with d, but its exponent {est} is away from {expected:g}"
    if sign * est.hi <= 0 and sign * est.lo <= 0:
        return "fail", f"{what} does not {'grow' if sign > 0 else 'shrink'} with d: {est}"
    return "inconclusive", f"the interval of the exponent of {what}, {est}, includes 0"


def _one_unit(table: pl.DataFrame) -> bool:
    """True when some d has a single seed: the bootstrap then has nothing to resample."""
    return "units" in table.columns and bool(table.height) and min(table["units"].to_list()) < 2


def _censored_note(table: pl.DataFrame) -> str:
    never = table.filter(pl.col("x_star").is_null())["d"].to_list() if table.height else []
    return f"; no crossing at d = {never}" if never else ""


def sample_complexity(df: pl.DataFrame) -> Verdict | None:
    """The robust transition n* against d next to the standard one (Gaussian, theta = +-1)."""
    rows = claims.one_config(claims.family(df, "gaussian", ds_theta="pm1"))
    if rows.is_empty():
        return None
    tr = claims.n_transitions(
        rows, robust_threshold=ROBUST_THRESHOLD, standard_threshold=STANDARD_THRESHOLD
    )
    if tr is None:
        return None
    rob, std = Estimate.of(tr.robust_fit), Estimate.of(tr.standard_fit)
    n_min = int(min(rows["n_train"].to_list()))
    std_flat = bool(tr.standard.height) and bool(tr.standard["censored"].all())
    std_text = f"reached at the smallest n ({n_min}) at every d" if std_flat else str(std)
    status, reason = _decide_exponent(rob, 0.5, +1, "the robust transition")
    if _one_unit(tr.robust):
        status, reason = "inconclusive", "one seed per d: no interval (run two or more seeds)"
    elif status == "pass" and not std_flat and std.hi >= rob.lo and not std.lo <= 0 <= std.hi:
        status, reason = "inconclusive", f"the standard transition also moves with d: {std}"
    if status == "pass":
        reason += "; standard accuracy does not need more data as d grows"
    evidence = _n_star_table(rows, tr)
    model, method = rows["model"][0], rows["train_method"][0]
    sens, extra = _sensitivity(rows, tr.eps)
    return Verdict(
        claim="Sample complexity: robust learning needs more data",
        theory=(
            "Gaussian model (theta = +-1, sigma = c d^(1/4)): standard accuracy is high from "
            "n = 1 at every d, robust accuracy needs n of order eps^2 sqrt(d); the mean "
            f"estimator's robust transition n* grows like d^0.5 (closed form at eps = {tr.eps:g})"
        ),
        measured=(
            f"{model} / {method}: exponent of n* in d, robust (eps = {tr.eps:g}, accuracy "
            f">= {ROBUST_THRESHOLD:g}): {rob}; standard (accuracy >= {STANDARD_THRESHOLD:g}): "
            f"{std_text}{sens}"
        ),
        status=status,
        reason=reason + _censored_note(tr.robust),
        estimate=rob,
        expected=0.5,
        evidence=evidence,
        details={"eps": tr.eps, **extra},
    )


def _sensitivity(rows: pl.DataFrame, eps: float) -> tuple[str, dict[str, float]]:
    """The exponent's sensitivity (its range over thresholds 0.3-0.8 at ``eps``) and the
    threshold-free collapse alpha with its seed-bootstrap interval (analysis.exponents)."""
    from analysis.exponents import collapse, exponent_grid, mean_estimator_curve

    sc = rows["ds_sigma_c"].drop_nulls() if "ds_sigma_c" in rows.columns else None
    curve = mean_estimator_curve(float(sc[0])) if sc is not None and sc.len() else None
    grid = exponent_grid(rows, eps_values=[eps], theory=curve, n_boot=200)
    col = collapse(rows, eps, theory=curve, n_boot=200)
    ks = grid["exponent"].drop_nulls()
    text, extra = "", dict[str, float]()
    if ks.len():
        lo_k, hi_k = float(ks.min()), float(ks.max())  # type: ignore[arg-type]
        text += f"; over thresholds 0.3-0.8 the robust exponent spans {lo_k:.2f} to {hi_k:.2f}"
        extra |= {"threshold_exponent_min": lo_k, "threshold_exponent_max": hi_k}
    if col is not None:
        text += f"; data collapse alpha {col.alpha:.2f} [{col.lo:.2f}, {col.hi:.2f}]"
        if col.theory_alpha is not None:
            text += f" (closed form at the same d: {col.theory_alpha:.2f})"
            extra["collapse_theory_alpha"] = col.theory_alpha
        extra |= {"collapse_alpha": col.alpha, "collapse_lo": col.lo, "collapse_hi": col.hi}
    return text, extra


def _n_star_table(rows: pl.DataFrame, tr: claims.TransitionResult) -> pl.DataFrame:
    ds = sorted(rows["d"].unique().to_list())
    robust = tr.robust.select(
        "d",
        pl.col("x_star").alias("robust_n_star"),
        pl.col("lo").alias("robust_lo"),
        pl.col("hi").alias("robust_hi"),
    )
    standard = tr.standard.select(
        "d",
        pl.col("x_star").alias("standard_n_star"),
        pl.col("lo").alias("standard_lo"),
        pl.col("hi").alias("standard_hi"),
    )
    out = robust.join(standard, on="d", how="left")
    sigma_c = rows["ds_sigma_c"].drop_nulls() if "ds_sigma_c" in rows.columns else None
    if sigma_c is not None and sigma_c.len():
        ref = theory.mean_estimator_n_star(ds, tr.eps, float(sigma_c[0]))
        out = out.join(ref.rename({"n_star": "closed_form_n_star"}), on="d", how="left")
    return out.sort("d")


def inevitability(df: pl.DataFrame) -> Verdict | None:
    """The eps breaking half of the points against d (dense model, the largest n_train)."""
    rows = claims.one_config(claims.family(df, "gaussian", ds_theta="dense"))
    if rows.is_empty():
        return None
    rows = rows.filter(pl.col("n_train") == rows["n_train"].max())
    res = claims.eps_transitions(rows, BREAK_FRACTION)
    if res is None:
        return None
    table, fit = res
    est = Estimate.of(fit)
    r = float(rows["ds_r"].drop_nulls()[0]) if "ds_r" in rows.columns else 3.0
    bound = theory.dense_eps_to_break(table["d"].to_list(), BREAK_FRACTION, r=r)
    evidence = table.select("d", pl.col("x_star").alias("eps_star"), "lo", "hi").join(
        bound.select("d", pl.col("eps_break").alias("bound_r_over_sqrt_d")), on="d"
    )
    above = _above_bayes(rows, r)
    status, reason = _decide_exponent(est, -0.5, -1, "the eps breaking half of the points")
    if above.height:
        status = "fail"
        reason = (
            f"robust accuracy above the Bayes-optimal one (which no classifier can beat) at "
            f"(d, eps) = {above.select('d', 'eps').rows()[:4]}: an attack too weak, or a bug"
        )
    elif _one_unit(table):
        status, reason = "inconclusive", "one seed per d: no interval (run two or more seeds)"
    elif status == "pass":
        reason += ", and never above the Bayes-optimal robust accuracy"
    model, method = rows["model"][0], rows["train_method"][0]
    n = int(rows["n_train"].to_list()[0])
    return Verdict(
        claim="Inevitability: the eps that breaks most points shrinks with d",
        theory=(
            f"dense model (theta_i = {r:g}/sqrt(d), sigma = 1): the same standard accuracy at "
            f"every d, yet every classifier's robust accuracy is at most 1/2 once eps >= "
            f"{r:g}/sqrt(d): the eps breaking half of the points shrinks like d^-0.5"
        ),
        measured=(
            f"{model} / {method}, n = {n}: exponent of eps* (robust accuracy < "
            f"{1 - BREAK_FRACTION:g}) in d: {est}"
        ),
        status=status,
        reason=reason + _censored_note(table),
        estimate=est,
        expected=-0.5,
        evidence=evidence.sort("d"),
    )


def _above_bayes(rows: pl.DataFrame, r: float) -> pl.DataFrame:
    """Curve points (seeds pooled) whose seed-level interval (analysis.curves: random effects
    over seeds) lies wholly above the dense model's Bayes-optimal robust accuracy, on the rows
    where the Bayes limit applies (claims.THEOREMS); points with fewer than 3 seeds are not
    judged (claims.bound_check: inconclusive)."""
    from analysis.curves import pooled

    curves = pooled(claims.applicable(rows, "bayes"), ["d", "eps"])
    if curves.is_empty():
        return curves
    bayes = theory.dense(
        sorted(curves["d"].unique().to_list()), sorted(curves["eps"].unique().to_list()), r=r
    ).select("d", "eps", pl.col("bayes_robust_acc").alias("bayes_acc"))
    checked = curves.drop("bayes_robust_acc").join(bayes, on=["d", "eps"], how="left")
    return claims.bound_violations(checked, "bayes_acc")


def closed_form(df: pl.DataFrame) -> Verdict | None:
    """Coverage of the trained linear models' exact population robust accuracy."""
    rows = df.filter(pl.col("theory_robust_acc").is_not_null() & (pl.col("status") == "ok"))
    if rows.is_empty():
        return None
    inside = (pl.col("theory_robust_acc") >= pl.col("robust_acc_lo") - 1e-12) & (
        pl.col("theory_robust_acc") <= pl.col("robust_acc_hi") + 1e-12
    )
    ev = rows.group_by("attack", "norm").agg(
        inside.mean().alias("coverage"), pl.len().alias("rows")
    )
    cov = float(rows.select(inside.mean()).item())
    status: Status = "pass" if cov >= 0.9 else "fail" if cov < 0.8 else "inconclusive"
    reason = {
        "pass": "the measured intervals cover the closed form about as often as 95% intervals should",
        "fail": "the measured intervals miss the closed form too often: an attack or the data is off",
        "inconclusive": "coverage is somewhat below 95%",
    }[status]
    return Verdict(
        claim="Attacks reach the closed form (linear models)",
        theory=(
            "for a linear model on Gaussian data the exact population robust accuracy is known; "
            "a 95% interval from n_eval points covers it in about 95% of rows"
        ),
        measured=f"coverage {cov:.1%} of {rows.height} rows",
        status=status,
        reason=reason,
        estimate=Estimate(cov, cov, cov),
        expected=0.95,
        evidence=ev.sort("attack", "norm"),
    )


def sanity(df: pl.DataFrame) -> Verdict | None:
    """Evaluation sanity checks (flags) that fired on ok rows."""
    rows = df.filter(pl.col("status") == "ok")
    if rows.is_empty():
        return None
    fired = (
        rows.explode("flags")
        .filter(pl.col("flags").is_not_null())
        .group_by("flags", "attack", "norm")
        .agg(pl.len().alias("rows"))
        .sort("rows", descending=True)
    )
    names = sorted(set(fired["flags"].to_list()))
    return Verdict(
        claim="Evaluation sanity checks",
        theory=(
            "robust <= clean, monotone in eps, eps = 0 equals clean, white-box attacks on "
            "linear models equal the closed form, no zero gradients"
        ),
        measured=(
            f"{len(names)} kind(s) of flag on {fired['rows'].sum()} of {rows.height} rows"
            if names
            else f"no flag on any of {rows.height} rows"
        ),
        status="fail" if names else "pass",
        reason=f"flags fired: {', '.join(names)}" if names else "no check fired",
        evidence=fired,
    )


CLAIMS = {
    "sample complexity": sample_complexity,
    "inevitability": inevitability,
    "closed form": closed_form,
    "sanity checks": sanity,
}


def all_verdicts(df: pl.DataFrame) -> tuple[dict[str, Verdict], list[str]]:
    """The verdicts whose rows are present (by name of ``CLAIMS``, in its order), and the
    names of those that are not."""
    found: dict[str, Verdict] = {}
    absent: list[str] = []
    for name, fn in CLAIMS.items():
        v = fn(df)
        if v is None:
            absent.append(name)
        else:
            found[name] = v
    return found, absent
