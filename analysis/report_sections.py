"""The figures and tables of the report, section by section, built from the analysis functions.

Each section builder takes the collected metrics frame (with dataset parameters) and the
verdicts, and returns a ``Section`` or None when its data is absent; the report lists the
absent ones once, at the end. Captions say what is drawn and what the closed form is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from analysis import claims, theory, verdicts
from analysis.curves import pooled, robustness_curve


@dataclass
class Figure:
    name: str  # file stem of the PNG
    caption: str
    fig: Any  # a matplotlib figure


@dataclass
class Table:
    title: str
    frame: pl.DataFrame
    caption: str = ""


@dataclass
class Section:
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def _num(value: Any) -> float:
    """A polars scalar (typed as any Python value) as a float."""
    return float(value)


Builder = Callable[[pl.DataFrame, dict[str, verdicts.Verdict]], Section | None]


def _sample_complexity(df: pl.DataFrame, found: dict[str, verdicts.Verdict]) -> Section | None:
    v = found.get("sample complexity")
    rows = claims.one_config(claims.family(df, "gaussian", ds_theta="pm1"))
    if v is None or rows.is_empty():
        return None
    from analysis.figures_claims import accuracy_vs_n, transitions_vs_d
    from analysis.transitions import ExponentFit

    curves = pooled(rows, ["d", "eps", "n_train"])
    sc = rows["ds_sigma_c"].drop_nulls()
    shown = curves.filter(pl.col("eps") == v.details["eps"])
    th = None
    if sc.len():
        ns: Any = claims.log_grid(1, _num(curves["n_train"].max()), 40)
        th = theory.gaussian(
            sorted(curves["d"].unique().to_list()),
            sorted(shown["eps"].unique().to_list()),
            ns,
            theta="pm1",
            sigma_c=float(sc[0]),
            sigma=float(rows["ds_sigma"].drop_nulls()[0]),
        )
    fig1 = accuracy_vs_n(
        shown, th, theory_cols=("mean_estimator_robust_acc",),
        title="accuracy vs n_train per d (black: standard; dashed: mean estimator, closed form)",
    )  # fmt: skip
    ev = v.evidence
    tables = {
        "robust": ev.select("d", pl.col("robust_n_star").alias("x_star"),
                            pl.col("robust_lo").alias("lo"), pl.col("robust_hi").alias("hi")),
        "standard": ev.select("d", pl.col("standard_n_star").alias("x_star"),
                              pl.col("standard_lo").alias("lo"), pl.col("standard_hi").alias("hi")),
    }  # fmt: skip
    fits: dict[str, ExponentFit] = {}
    if "closed_form_n_star" in ev.columns:
        c = pl.col("closed_form_n_star")
        tables["closed form (mean estimator)"] = ev.select("d", c.alias("x_star"), c.alias("lo"),
                                                           c.alias("hi"))  # fmt: skip
    fig2 = transitions_vs_d(tables, fits, ylabel="n* (transition in n_train)")
    return Section(
        "Sample complexity",
        "Gaussian model, theta = +-1, sigma = c d^(1/4); measured accuracy pooled over seeds "
        "with 95% Wilson bands.",
        [
            Figure(
                "sample-complexity-accuracy-vs-n",
                "Robust (colour) and standard (black) accuracy against the training-set size, "
                "one panel per d. The robust curve moves right as d grows while the standard "
                "one stays high from the smallest n; dashed: the mean estimator's robust "
                "accuracy (closed form).",
                fig1,
            ),
            Figure(
                "sample-complexity-transitions-vs-d",
                "Where each curve crosses its threshold (n*), against d on log-log axes, with "
                "95% bootstrap intervals over seeds, next to the closed form n* ~ d^0.5 of the "
                "mean estimator. " + v.measured + ".",
                fig2,
            ),
        ],
        [Table("Transitions n* per d (95% intervals) and the closed form", ev.sort("d"))],
    )


def _inevitability(df: pl.DataFrame, found: dict[str, verdicts.Verdict]) -> Section | None:
    v = found.get("inevitability")
    rows = claims.one_config(claims.family(df, "gaussian", ds_theta="dense"))
    if v is None or rows.is_empty():
        return None
    from analysis.figures_claims import error_vs_scaled_eps, transitions_vs_d

    r = float(rows["ds_r"].drop_nulls()[0])
    n_max = int(_num(rows["n_train"].max()))
    rows = rows.filter(pl.col("n_train") == n_max)
    curves = pooled(rows, ["d", "model", "train_method", "eps"])
    eps_fine = claims.log_grid(1e-3, _num(curves["eps"].max()), 80)
    dense_th = theory.dense(sorted(curves["d"].unique().to_list()), [0.0, *eps_fine], r=r)
    ev = v.evidence
    b = pl.col("bound_r_over_sqrt_d")
    tables = {
        "measured": ev.select("d", pl.col("eps_star").alias("x_star"), "lo", "hi"),
        f"bound {r:g}/sqrt(d) (every classifier)": ev.select("d", b.alias("x_star"),
                                                             b.alias("lo"), b.alias("hi")),
    }  # fmt: skip
    return Section(
        "Inevitability",
        f"Dense weak-signal Gaussian model (theta_i = {r:g}/sqrt(d), sigma = 1), n_train = "
        f"{n_max}; the same standard accuracy at every d.",
        [
            Figure(
                "inevitability-eps-break-vs-d",
                "The eps at which robust accuracy falls below 1/2, against d (log-log), with "
                f"95% bootstrap intervals over seeds, under the bound {r:g}/sqrt(d) that holds "
                "for every classifier. " + v.measured + ".",
                transitions_vs_d(tables, {}, ylabel="eps breaking half of the points"),
            ),
            Figure(
                "inevitability-error-vs-scaled-eps",
                "Robust error against eps sqrt(d) (left) and eps (right), one colour per d: "
                "the curves of all d collapse on the eps sqrt(d) axis; black/dashed: the "
                "Bayes-optimal robust error (closed form).",
                error_vs_scaled_eps(curves, dense_th, r),
            ),
        ],
        [Table("eps breaking half of the points per d (95% intervals) and the bound", ev)],
    )


def _overview(df: pl.DataFrame, found: dict[str, verdicts.Verdict]) -> Section | None:
    ok = df.filter(pl.col("status") == "ok")
    if ok.is_empty():
        return None
    from analysis.figures import robustness_vs_eps

    curves = robustness_curve(ok.lazy())
    figs = [
        Figure(
            f"robust-vs-eps-{attack}-{norm}",
            f"Robust accuracy under {attack} ({norm}) against eps, one panel per "
            "(dataset, d, model), one line per n_train, 95% bands; dashed: the exact "
            "population value of the trained linear model where theory gives one.",
            robustness_vs_eps(curves, attack, norm),
        )
        for attack, norm in curves.select("attack", "norm").unique().sort("attack", "norm").rows()
    ]
    return Section("Robust accuracy against eps", "", figs)


def _ensembles(df: pl.DataFrame, found: dict[str, verdicts.Verdict]) -> Section | None:
    from analysis.transfer import ensemble_vs_members

    evm = ensemble_vs_members(df)
    if evm.is_empty():
        return None
    from analysis.figures_misc import ensemble_vs_members as plot_evm

    summary = (
        evm.group_by("dataset", "model", "attack", "norm")
        .agg(
            (pl.col("ensemble") - pl.col("member_mean")).mean().alias("mean_gain"),
            (pl.col("ensemble") >= pl.col("member_max")).mean().alias("ensemble_beats_best"),
            pl.len().alias("points"),
        )
        .sort("dataset", "model", "attack", "norm")
    )
    return Section(
        "Ensembles against their members",
        "",
        [
            Figure(
                "ensemble-vs-members",
                "Robust accuracy of each ensemble (averaged logits) against the mean of its "
                "members, one point per (cell, attack, eps); above the diagonal the ensemble "
                "is more robust.",
                plot_evm(evm),
            )
        ],
        [Table("Ensemble gain over the mean member", summary)],
    )


def _transfer(df: pl.DataFrame, found: dict[str, verdicts.Verdict]) -> Section | None:
    rows = df.filter((pl.col("attack") == "transfer") & pl.col("source_member").is_not_null())
    if rows.is_empty():
        return None
    from analysis.figures_misc import transfer_matrix as plot_matrix
    from analysis.transfer import transfer_matrix

    tm = transfer_matrix(rows)
    top = tm.filter(pl.col("eps") == tm["eps"].max())
    figs = [
        Figure(
            f"transfer-{ds}-{model}-{method}-{norm}",
            f"{ds}, {model}, {method}: robust accuracy of each member (column) under examples "
            f"crafted on each member (row) at {norm} eps = {m['eps'][0]:g}; the diagonal is "
            "white-box.",
            plot_matrix(m, "source_member", "member", f"{ds} {model} {method}"),
        )
        for (ds, model, method, norm), m in top.group_by(
            ["dataset", "model", "train_method", "norm"], maintain_order=True
        )
    ]
    return Section("Transfer between members", "", figs)


SECTIONS: dict[str, Builder] = {
    "sample complexity (gaussian, theta = +-1)": _sample_complexity,
    "inevitability (dense gaussian)": _inevitability,
    "robust accuracy against eps": _overview,
    "ensembles of more than one member": _ensembles,
    "transfer attacks between members": _transfer,
}


def build_sections(
    df: pl.DataFrame, found: dict[str, verdicts.Verdict]
) -> tuple[list[Section], list[str]]:
    """The sections whose data is present, and the labels of those that are not."""
    out: list[Section] = []
    absent: list[str] = []
    for label, builder in SECTIONS.items():
        sec = builder(df, found)
        if sec is None:
            absent.append(label)
        else:
            out.append(sec)
    return out, absent
