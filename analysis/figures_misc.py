"""Figures for transfer, ensembles, concentration on spheres and nightly trends."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from analysis.figures import panel_grid


def lines(
    df: pl.DataFrame,
    x: str,
    y: str,
    line: str,
    *,
    panel: str | None = None,
    logx: bool = False,
    title: str = "",
) -> Any:
    """``y`` (with ``y``_lo/_hi bands when present) against ``x``, one line per ``line``."""
    keys = df[panel].unique().sort().to_list() if panel else [None]
    fig, axes = panel_grid(len(keys), cols=3, size=(4.0, 3.1))
    for ax, key in zip(axes.flat, keys, strict=False):
        sub = df.filter(pl.col(panel) == key) if panel else df
        for i, val in enumerate(sub[line].unique().sort().to_list()):
            s = sub.filter(pl.col(line) == val).sort(x)
            ax.plot(s[x], s[y], "o-", ms=3, color=f"C{i}", label=f"{line}={val}")
            if f"{y}_lo" in s.columns:
                ax.fill_between(s[x], s[f"{y}_lo"], s[f"{y}_hi"], color=f"C{i}", alpha=0.15)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        if panel:
            ax.set_title(f"{panel}={key}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def spheres_distance(measured: pl.DataFrame, theory: pl.DataFrame) -> Any:
    """Distance to the nearest error times sqrt(d) against the error rate mu: the isoperimetric
    curve Phi^-1(1 - mu) (black) and measured models (one colour per d)."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    t = theory.unique("mu").sort("mu")
    ax.plot(t["mu"], t["distance_sqrt_d"], "k-", label="cap (extremal): Phi^-1(1-mu)")
    for i, d in enumerate(measured["d"].unique().sort().to_list()):
        s = measured.filter(pl.col("d") == d)
        exact = "exact" not in s.columns or bool(s["exact"].all())
        label = f"d={d}" if exact else f"d={d} (upper bound: smallest breaking eps of the grid)"
        ax.plot(s["mu"], s["distance_sqrt_d"], "o" if exact else "v", color=f"C{i}", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("error rate mu (inner sphere)")
    ax.set_ylabel("median l2 distance to an error x sqrt(d)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("concentric spheres: small error implies nearby errors", fontsize=9)
    fig.tight_layout()
    return fig


def transfer_matrix(matrix: pl.DataFrame, source: str, target: str, title: str) -> Any:
    """Heat map of robust accuracy of ``target`` (columns) under examples crafted on ``source``
    (rows); the diagonal is white-box."""
    srcs = matrix[source].unique().sort().to_list()
    tgts = matrix[target].unique().sort().to_list()
    grid = np.full((len(srcs), len(tgts)), np.nan)
    for row in matrix.iter_rows(named=True):
        grid[srcs.index(row[source]), tgts.index(row[target])] = row["robust_acc"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(tgts), 0.8 + 0.5 * len(srcs)))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
    for i in range(len(srcs)):
        for j in range(len(tgts)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(tgts)), [str(t) for t in tgts], fontsize=7)
    ax.set_yticks(range(len(srcs)), [str(s) for s in srcs], fontsize=7)
    ax.set_xlabel(f"target {target}")
    ax.set_ylabel(f"source {source}")
    fig.colorbar(im, ax=ax, label="robust accuracy")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def ensemble_vs_members(df: pl.DataFrame) -> Any:
    """Robust accuracy of the ensemble (averaged logits) against the mean of its members, one
    point per (cell, attack, eps); points above the diagonal: the ensemble is more robust."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for i, ((attack, norm), s) in enumerate(df.group_by(["attack", "norm"], maintain_order=True)):
        ax.plot(s["member_mean"], s["ensemble"], "o", ms=3, color=f"C{i}", label=f"{attack} {norm}")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("mean robust accuracy of members")
    ax.set_ylabel("robust accuracy of the ensemble")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def nightly_trend(trend: pl.DataFrame, label: str = "series") -> Any:
    """Robust accuracy per nightly run (x: run order) with 95% intervals, one line per series;
    regressions (``regression`` column true) circled in red."""
    series = trend[label].unique().sort().to_list()
    runs = trend.select("run").unique().sort("run")["run"].to_list()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(runs) + 3), 3.8))
    for i, key in enumerate(series[:10]):
        s = trend.filter(pl.col(label) == key).sort("run")
        xs = [runs.index(r) for r in s["run"]]
        ax.plot(xs, s["robust_acc"], "o-", ms=3, color=f"C{i}", label=str(key))
        ax.fill_between(xs, s["robust_acc_lo"], s["robust_acc_hi"], color=f"C{i}", alpha=0.12)
        bad = s.with_columns(pl.Series("x", xs)).filter(pl.col("regression"))
        ax.plot(bad["x"], bad["robust_acc"], "o", ms=10, mfc="none", mec="red", mew=2)
    ax.set_xticks(range(len(runs)), runs, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("robust accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left")
    ax.set_title("nightly trend (red circles: regressions)", fontsize=9)
    fig.tight_layout()
    return fig
