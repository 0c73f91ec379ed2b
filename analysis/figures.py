"""Matplotlib figures over tidy curve frames (no torch, no ray)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import polars as pl


def robustness_vs_eps(
    curves: pl.DataFrame,
    attack: str,
    norm: str,
    *,
    panel: tuple[str, ...] = ("dataset", "d", "model"),
    line: str = "n_train",
) -> Any:
    """One panel per (dataset, d, model); one line per n_train with its 95% band; the closed
    form (dashed) where the cells carry one."""
    df = curves.filter((pl.col("attack") == attack) & (pl.col("norm") == norm))
    panels = df.select(list(panel)).unique().sort(list(panel)).rows()
    if not panels:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.text(0.5, 0.5, f"no rows for {attack} {norm}", ha="center")
        return fig
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharey=True
    )
    for ax, key in zip(axes.flat, panels, strict=False):
        sub = df.filter(
            pl.all_horizontal([pl.col(c) == v for c, v in zip(panel, key, strict=True)])
        )
        for i, (val,) in enumerate(sub.select(line).unique().sort(line).rows()):
            s = sub.filter(pl.col(line) == val).sort("eps")
            color = f"C{i}"
            ax.plot(s["eps"], s["robust_acc"], "o-", color=color, label=f"{line}={val}", ms=3)
            ax.fill_between(
                s["eps"], s["robust_acc_lo"], s["robust_acc_hi"], color=color, alpha=0.15
            )
            if s["theory_robust_acc"].null_count() < len(s):
                ax.plot(s["eps"], s["theory_robust_acc"], "--", color=color, lw=1)
        ax.set_title(", ".join(f"{c}={v}" for c, v in zip(panel, key, strict=True)), fontsize=9)
        ax.set_xlabel(f"eps ({norm})")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("robust accuracy")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(
        f"{attack} ({norm}): robust accuracy vs eps; dashed = exact population value", fontsize=10
    )
    fig.tight_layout()
    return fig


def panel_grid(n: int, cols: int = 3, size: tuple[float, float] = (4.2, 3.2)) -> tuple[Any, Any]:
    """A figure with ``n`` panels in rows of ``cols``; unused axes are switched off."""
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, axes


def empty_figure(message: str) -> Any:
    """A small figure that says why there is nothing to plot (a missing dataset or attack)."""
    fig, ax = plt.subplots(figsize=(5, 1.2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9)
    ax.axis("off")
    return fig


def save_figure(fig: Any, name: str, out_dir: str | Path | None) -> Path | None:
    """Write ``fig`` as ``out_dir/<name>.png`` (when ``out_dir`` is set); returns the path."""
    if not out_dir:
        return None
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def show(fig: Any, name: str, out_dir: str | Path | None = None) -> Path | None:
    """Save (see ``save_figure``) and display ``fig`` inline, then close it."""
    path = save_figure(fig, name, out_dir)
    plt.show()
    plt.close(fig)
    return path
