"""Figures for the threshold-robust exponents: the exponent over thresholds x eps, and the
data collapse at the fitted alpha (analysis.exponents)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from analysis.exponents import CollapseFit


def exponent_grid_figure(grid: pl.DataFrame, collapse: CollapseFit | None = None) -> Any:
    """Exponent of n* in d against the threshold, one colour per eps (bars: 95% seed
    bootstrap; dashed: the closed form's curves at the same d); the collapse alpha* as a band."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, e in enumerate(grid["eps"].unique().sort().to_list()):
        s = grid.filter((pl.col("eps") == e) & pl.col("exponent").is_not_null()).sort("threshold")
        if s.is_empty():
            continue
        yerr = np.vstack(
            [(s["exponent"] - s["lo"]).to_numpy(), (s["hi"] - s["exponent"]).to_numpy()]
        )
        ax.errorbar(s["threshold"], s["exponent"], yerr=np.nan_to_num(yerr), fmt="o-", ms=4,
                    capsize=3, color=f"C{i}", label=f"measured, eps={e:g}")  # fmt: skip
        t = s.filter(pl.col("theory_exponent").is_not_null())
        if t.height:
            ax.plot(t["threshold"], t["theory_exponent"], "--", color=f"C{i}", lw=1,
                    label=f"closed form, eps={e:g}")  # fmt: skip
    if collapse is not None:
        ax.axhspan(collapse.lo, collapse.hi, color="grey", alpha=0.2)
        ax.axhline(
            collapse.alpha, color="k", lw=1.5, label=f"collapse alpha* = {collapse.alpha:.2f}"
        )
        if collapse.theory_alpha is not None:
            ax.axhline(collapse.theory_alpha, color="k", ls=":", lw=1,
                       label=f"closed-form collapse = {collapse.theory_alpha:.2f}")  # fmt: skip
    ax.axhline(0.5, color="red", lw=0.8, alpha=0.6, label="0.5 (large-d theory)")
    ax.set_xlabel("threshold on robust accuracy")
    ax.set_ylabel("exponent of n* in d")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    ax.set_title("transition exponent: every threshold and eps", fontsize=9)
    fig.tight_layout()
    return fig


def collapse_figure(curves: pl.DataFrame, alpha: float, eps: float) -> Any:
    """Robust accuracy (seed-level bands) against n / d^alpha, one line per d."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    s_all = curves.with_columns(
        (pl.col("n_train") / pl.col("d").cast(pl.Float64).pow(alpha)).alias("x")
    )
    for i, d in enumerate(s_all["d"].unique().sort().to_list()):
        s = s_all.filter(pl.col("d") == d).sort("x")
        ax.plot(s["x"], s["robust_acc"], "o-", ms=3, color=f"C{i}", label=f"d={d}")
        ax.fill_between(s["x"], s["robust_acc_lo"], s["robust_acc_hi"], color=f"C{i}", alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel(f"n_train / d^{alpha:.2f}")
    ax.set_ylabel("robust accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"data collapse at alpha* = {alpha:.2f} (eps={eps:g})", fontsize=9)
    fig.tight_layout()
    return fig
