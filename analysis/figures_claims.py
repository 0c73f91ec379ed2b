"""Figures for the two claims: accuracy against n_train, d and eps with the closed forms
overlaid, transitions with their fitted exponents, and the convex-hull curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from analysis.figures import panel_grid
from analysis.transitions import ExponentFit


def _band(ax: Any, s: pl.DataFrame, x: str, y: str, color: str, label: str, style: str) -> None:
    ax.plot(s[x], s[y], style, color=color, label=label, ms=3)
    if f"{y}_lo" in s.columns:
        ax.fill_between(s[x], s[f"{y}_lo"], s[f"{y}_hi"], color=color, alpha=0.15)


def accuracy_vs_n(
    curves: pl.DataFrame,
    theory: pl.DataFrame | None = None,
    *,
    panel: str = "d",
    line: str = "eps",
    theory_cols: Sequence[str] = ("any_learner_robust_acc", "mean_estimator_robust_acc"),
    title: str = "",
) -> Any:
    """One panel per ``panel`` value: robust accuracy vs n_train (log x), one line per ``line``
    value with 95% bands; standard accuracy in black; closed forms from ``theory`` dashed."""
    keys = curves[panel].unique().sort().to_list()
    colour = {v: i for i, v in enumerate(curves[line].unique().sort().to_list())}
    fig, axes = panel_grid(len(keys), cols=4, size=(3.6, 3.0))
    for ax, key in zip(axes.flat, keys, strict=False):
        sub = curves.filter(pl.col(panel) == key)
        for val in sub[line].unique().sort().to_list():
            i = colour[val]
            s = sub.filter(pl.col(line) == val).sort("n_train")
            _band(ax, s, "n_train", "robust_acc", f"C{i}", f"robust {line}={val:g}", "o-")
            if theory is not None and len(theory):
                t = theory.filter((pl.col(panel) == key) & (pl.col(line) == val)).sort("n_train")
                for j, col in enumerate(c for c in theory_cols if c in t.columns):
                    if t[col].null_count() < len(t):
                        ax.plot(t["n_train"], t[col], ["--", ":"][j % 2], color=f"C{i}", lw=1)
        s0 = sub.group_by("n_train").agg(pl.col("clean_acc").mean()).sort("n_train")
        ax.plot(s0["n_train"], s0["clean_acc"], "k.-", lw=1, label="standard")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{panel}={key}", fontsize=9)
        ax.set_xlabel("n_train")
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel("accuracy")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title or "accuracy vs training-set size (dashed: closed forms)", fontsize=10)
    fig.tight_layout()
    return fig


def transitions_vs_d(
    tables: dict[str, pl.DataFrame], fits: dict[str, ExponentFit], ylabel: str = "n*"
) -> Any:
    """Log-log transition estimates against d with bootstrap intervals and fitted power laws,
    one series per entry of ``tables`` (e.g. robust and standard)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for i, (name, tab) in enumerate(tables.items()):
        t = tab.drop_nulls("x_star").sort("d")
        if t.is_empty():
            continue
        lo = (t["x_star"] - t["lo"].fill_null(t["x_star"])).clip(0).to_numpy()
        hi = (t["hi"].fill_null(t["x_star"]) - t["x_star"]).clip(0).to_numpy()
        fit = fits.get(name)
        label = name if fit is None else f"{name}: k={fit.exponent:.2f}"
        if fit is not None and np.isfinite(fit.lo):
            label += f" [{fit.lo:.2f}, {fit.hi:.2f}]"
        ax.errorbar(t["d"], t["x_star"], yerr=[lo, hi], fmt="o", color=f"C{i}", label=label)
        if fit is not None and np.isfinite(fit.exponent):
            d_arr = t["d"].cast(pl.Float64).to_numpy()
            xs = np.geomspace(d_arr.min(), d_arr.max(), 50)
            ax.plot(xs, np.exp(fit.intercept) * xs**fit.exponent, "-", color=f"C{i}", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("d")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("transition vs d (log-log; k = fitted exponent, 95% bootstrap)", fontsize=9)
    fig.tight_layout()
    return fig


def error_vs_scaled_eps(curves: pl.DataFrame, theory: pl.DataFrame, r: float) -> Any:
    """Dense model: robust error of trained models (markers, one colour per d) and of the
    Bayes-optimal classifier (black line) against eps sqrt(d); the curves collapse."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ds = curves["d"].unique().sort().to_list()
    for i, d in enumerate(ds):
        s = curves.filter(pl.col("d") == d).sort("eps")
        err = 1.0 - s["robust_acc"]
        x = s["eps"] * np.sqrt(d)
        axes[0].plot(x, err, "o-", ms=3, color=f"C{i}", label=f"d={d}")
        axes[1].plot(s["eps"], err, "o-", ms=3, color=f"C{i}", label=f"d={d}")
        t = theory.filter(pl.col("d") == d).sort("eps")
        axes[1].plot(t["eps"], 1.0 - t["bayes_robust_acc"], "--", color=f"C{i}", lw=1)
    t0 = theory.sort("eps_sqrt_d").unique("eps_sqrt_d", keep="first").sort("eps_sqrt_d")
    axes[0].plot(t0["eps_sqrt_d"], 1.0 - t0["bayes_robust_acc"], "k-", lw=1.5, label="Bayes")
    axes[0].axvline(r, color="grey", ls=":", lw=1)
    axes[0].set_xlim(0, 3 * r)
    axes[0].set_xlabel("eps * sqrt(d)")
    axes[1].set_xlabel("eps")
    axes[1].set_xscale("symlog", linthresh=1e-2)
    for ax in axes:
        ax.set_ylabel("robust error")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"dense weak-signal Gaussian (r={r:g}): error 1/2 for every classifier once eps >= r/sqrt(d)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def tsipras_tradeoff(points: pl.DataFrame, bound: pl.DataFrame, p: float) -> Any:
    """Measured (standard, robust) accuracy pairs against the Tsipras bound p delta / (1 - p)."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    ax.plot(bound["standard_acc"], bound["robust_acc_bound"], "k-", label="Thm 2.1 bound")
    for i, ((method,), s) in enumerate(points.group_by(["train_method"], maintain_order=True)):
        ax.errorbar(
            s["clean_acc"],
            s["robust_acc"],
            yerr=[
                (s["robust_acc"] - s["robust_acc_lo"]).to_numpy(),
                (s["robust_acc_hi"] - s["robust_acc"]).to_numpy(),
            ],
            fmt="o",
            color=f"C{i}",
            label=str(method),
        )
    ax.axhline(p, color="grey", ls=":", lw=1, label=f"p = {p:g}")
    ax.set_xlabel("standard accuracy")
    ax.set_ylabel("robust accuracy (eps >= 2 eta)")
    ax.set_xlim(0.45, 1.01)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Tsipras et al.: accuracy vs robustness", fontsize=9)
    fig.tight_layout()
    return fig


def hull_curve(frame: pl.DataFrame) -> Any:
    """Fraction of test points inside the training set's convex hull against d."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    agg = frame.group_by("d", "n_train").agg(pl.col("inside").mean()).sort("d")
    for i, n in enumerate(agg["n_train"].unique().sort().to_list()):
        s = agg.filter(pl.col("n_train") == n)
        ax.plot(s["d"], s["inside"], "o-", color=f"C{i}", label=f"n_train={n}")
        ax.axvline(np.log2(n), color=f"C{i}", ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("d (dotted: log2 n)")
    ax.set_ylabel("fraction of test points inside the hull")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("interpolation vanishes with d: learning is extrapolation", fontsize=9)
    fig.tight_layout()
    return fig
