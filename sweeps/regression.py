"""The nightly regression rule, shared by ``sweeps nightly`` and analysis/notebooks/nightly.ipynb.

Torch-free and Ray-free (polars, scipy, ruptures and sweeps.schema only) so the analysis layer
imports it: both report the same groups with the same verdicts.

Groups: (dataset, d, n_train, model, training method/norm/eps, attack, norm, eps, member) plus
the three config columns (a sigma or width beyond the names keeps groups apart); seeds pooled.

Night against the previous night, per group:
- paired, when both nights hold the same trained weights (same train_hash per seed) and the same
  test points (same example ids and labels, their per-example outcomes adding up to the counts):
  the exact binomial (McNemar) test on the discordant pairs (b robust before only, c robust now
  only; under no change c ~ Bin(b + c, 1/2)), and a Clopper-Pearson interval for the share of
  discordant pairs turned into one for the difference (b + c)/N (2 pi - 1);
- unpaired otherwise: the pooled two-proportion score test and Newcombe's hybrid interval.
Holm's step-down over the groups compared keeps the family-wise error at alpha. A group
regressed when Holm rejects AND the drop exceeds ``threshold``.

Across the whole ``nightly-*`` history, per group: the series of nightly accuracies (scaled to
unit binomial noise) goes through ruptures' PELT (piecewise-constant mean, BIC-like penalty).
The first change point is the night the change began; the nights before it are the baseline.
The last night is tested against the pooled baseline (score test, Holm over groups): a drift
regressed when Holm rejects AND the drop exceeds ``threshold``, so a slow drift that no single
night shows is still a regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import ruptures
from scipy.stats import beta, binomtest, norm

from sweeps.schema import METRICS_COLUMNS, Status

GROUP_KEYS = (
    "dataset", "d", "n_train", "model", "train_method", "train_norm", "train_eps",
    "attack", "norm", "eps", "member",
)  # fmt: skip
# Configs beyond the names (e.g. sigma of a dataset, width of an mlp) keep groups apart.
HIDDEN_KEYS = ("dataset_config", "model_config", "training_config")
KEYS = [*GROUP_KEYS, *HIDDEN_KEYS]
assert set(KEYS) <= set(METRICS_COLUMNS)
EXAMPLE_COLUMNS = ["run_id", "cell_hash", "member", "attack", "norm", "example", "label"]
EXAMPLE_COLUMNS += ["clean_correct", "broken_eps"]


def group_label(key: dict[str, Any]) -> str:
    """One line naming a group (the hidden config columns left out)."""
    train = str(key["train_method"])
    if key.get("train_eps") is not None:
        train += f"({key.get('train_norm')}, eps={key['train_eps']:g})"
    return (
        f"{key['dataset']} d={key['d']} n_train={key['n_train']} {key['model']} {train} "
        f"{key['attack']}/{key['norm']} eps={key['eps']:g} member={key['member']}"
    )


def group_counts(metrics: pl.DataFrame) -> pl.DataFrame:
    """Pooled binomial counts ``k`` (robust) of ``n`` per (run_id, group) of ok rows."""
    return (
        metrics.filter((pl.col("status") == Status.OK) & pl.col("n_robust").is_not_null())
        .group_by(["run_id", *KEYS])
        .agg(pl.col("n_robust").sum().alias("k"), pl.col("n_eval").sum().alias("n"))
        .sort(["run_id", *KEYS], nulls_last=True)
    )


def example_outcomes(metrics: pl.DataFrame, examples: pl.DataFrame) -> pl.DataFrame:
    """Per (run_id, group, seed, train_hash, example, label): ``robust`` (clean-correct and not
    broken at the group's eps: the smallest breaking eps is above it)."""
    cells = metrics.filter(pl.col("status") == Status.OK).select(
        "run_id", "cell_hash", "seed", "train_hash", *KEYS
    )
    ex = examples.select(EXAMPLE_COLUMNS)
    out = cells.join(ex, on=["run_id", "cell_hash", "member", "attack", "norm"], how="inner")
    robust = pl.col("clean_correct") & (pl.col("broken_eps") > pl.col("eps"))
    return out.select("run_id", *KEYS, "seed", "train_hash", "example", "label", robust.alias("r"))


@dataclass
class GroupTest:
    """One group, this night against the previous one."""

    key: dict[str, Any]
    n_prev: int
    n_now: int
    acc_prev: float
    acc_now: float
    diff: float
    lo: float
    hi: float
    p_value: float
    paired: bool
    discordant: tuple[int, int] | None  # (robust before only, robust now only) when paired
    level: float = 0.05  # the Holm level this group was judged at (interval: 1 - level)
    significant: bool = False
    regression: bool = False

    def label(self) -> str:
        return group_label(self.key)


def score_test(k1: int, n1: int, k0: int, n0: int) -> float:
    """Two-sided p-value of the pooled two-proportion score test of k1/n1 = k0/n0."""
    p = (k1 + k0) / (n1 + n0)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n0))
    if se == 0.0:
        return 1.0 if k1 * n0 == k0 * n1 else 0.0
    return float(2 * norm.sf(abs(k1 / n1 - k0 / n0) / se))


def newcombe(k1: int, n1: int, k0: int, n0: int, level: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for k1/n1 - k0/n0 at 1 - level."""
    from adv_core.stats import wilson  # stdlib-only module, no torch

    z = float(norm.isf(level / 2))
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1, z)
    l0, u0 = wilson(k0, n0, z)
    d = p1 - p0
    return d - math.hypot(p1 - l1, u0 - p0), d + math.hypot(u1 - p1, p0 - l0)


def mcnemar_interval(b: int, c: int, n: int, level: float) -> tuple[float, float]:
    """Interval for (c - b) / n given b + c discordant pairs: Clopper-Pearson for the share
    pi = c / (b + c) at 1 - level, mapped by (b + c)/n (2 pi - 1); (0, 0) with no discordance."""
    m = b + c
    if m == 0:
        return 0.0, 0.0
    lo = 0.0 if c == 0 else float(beta.ppf(level / 2, c, m - c + 1))
    hi = 1.0 if c == m else float(beta.isf(level / 2, c + 1, m - c))
    return m / n * (2 * lo - 1), m / n * (2 * hi - 1)


def holm(p_values: list[float], alpha: float) -> tuple[list[bool], list[float]]:
    """Holm's step-down: (rejected, level each hypothesis was judged at). Sorted ascending,
    the i-th p-value (0-based) is compared with alpha / (m - i) until the first acceptance."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    rejected, levels = [False] * m, [alpha / max(m, 1)] * m
    going = True
    for rank, i in enumerate(order):
        levels[i] = alpha / (m - rank)
        going = going and p_values[i] <= levels[i]
        rejected[i] = going
    return rejected, levels


def _paired_counts(ex_now: pl.DataFrame, ex_prev: pl.DataFrame) -> dict[tuple[Any, ...], Any]:
    """Per group: (pairs, b, c, k_now, k_prev) over examples matched on seed, train_hash,
    example id and label."""
    on = [*KEYS, "seed", "train_hash", "example", "label"]
    both = ex_now.drop("run_id").join(
        ex_prev.drop("run_id"), on=on, how="inner", suffix="_prev", nulls_equal=True
    )
    agg = both.group_by(KEYS).agg(
        pl.len().alias("pairs"),
        (pl.col("r_prev") & ~pl.col("r")).sum().alias("b"),
        (pl.col("r") & ~pl.col("r_prev")).sum().alias("c"),
        pl.col("r").sum().alias("k_now"),
        pl.col("r_prev").sum().alias("k_prev"),
    )
    return {tuple(r[c] for c in KEYS): r for r in agg.iter_rows(named=True)}


def _one_group(r: dict[str, Any], pairs: dict[str, Any] | None) -> GroupTest:
    k1, n1, k0, n0 = r["k"], r["n"], r["k_prev"], r["n_prev"]
    paired = (
        pairs is not None
        and pairs["pairs"] == n1 == n0
        and (pairs["k_now"], pairs["k_prev"]) == (k1, k0)
    )
    if paired:
        assert pairs is not None
        b, c = int(pairs["b"]), int(pairs["c"])
        p = 1.0 if b + c == 0 else float(binomtest(c, b + c, 0.5).pvalue)
    else:
        p = score_test(k1, n1, k0, n0)
    return GroupTest(
        {k: r[k] for k in GROUP_KEYS}, n0, n1, k0 / n0, k1 / n1, k1 / n1 - k0 / n0,
        0.0, 0.0, p, paired, (b, c) if paired else None,
    )  # fmt: skip


def compare_nights(
    now: pl.DataFrame,
    prev: pl.DataFrame,
    ex_now: pl.DataFrame | None = None,
    ex_prev: pl.DataFrame | None = None,
    *,
    threshold: float = 0.05,
    alpha: float = 0.05,
) -> tuple[list[GroupTest], list[dict[str, Any]], list[dict[str, Any]]]:
    """This night's metrics rows against the previous night's (examples rows, when given, allow
    the paired test): (tests, groups only now, groups only before)."""
    cn, cp = group_counts(now).drop("run_id"), group_counts(prev).drop("run_id")
    both = cn.join(cp, on=KEYS, how="inner", suffix="_prev", nulls_equal=True)
    both = both.filter((pl.col("n") > 0) & (pl.col("n_prev") > 0))
    pairs: dict[tuple[Any, ...], Any] = {}
    if ex_now is not None and ex_prev is not None and not ex_now.is_empty():
        pairs = _paired_counts(example_outcomes(now, ex_now), example_outcomes(prev, ex_prev))
    tests = [
        _one_group(r, pairs.get(tuple(r[c] for c in KEYS))) for r in both.iter_rows(named=True)
    ]
    rejected, levels = holm([t.p_value for t in tests], alpha)
    for t, rej, lvl in zip(tests, rejected, levels, strict=True):
        t.level, t.significant = lvl, rej
        k1, k0 = round(t.acc_now * t.n_now), round(t.acc_prev * t.n_prev)
        if t.paired and t.discordant is not None:
            t.lo, t.hi = mcnemar_interval(*t.discordant, t.n_now, lvl)
        else:
            t.lo, t.hi = newcombe(k1, t.n_now, k0, t.n_prev, lvl)
        t.regression = bool(rej and -t.diff > threshold)
    only_now = cn.join(cp, on=KEYS, how="anti", nulls_equal=True).select(GROUP_KEYS).to_dicts()
    only_prev = cp.join(cn, on=KEYS, how="anti", nulls_equal=True).select(GROUP_KEYS).to_dicts()
    return tests, only_now, only_prev


@dataclass
class Drift:
    """One group's history: where its accuracy series changed and the last night against the
    baseline before the change."""

    key: dict[str, Any]
    nights: int
    began: str | None  # the first night of the changed regime (None: no change point)
    change_points: list[str]
    baseline_acc: float
    last_acc: float
    diff: float
    p_value: float
    level: float = 0.05
    significant: bool = False
    regression: bool = False

    def label(self) -> str:
        return group_label(self.key)


def change_points(k: np.ndarray, n: np.ndarray, penalty: float | None = None) -> list[int]:
    """Indices where a new regime starts in the accuracy series k/n (ruptures PELT, l2 cost on
    the series scaled to unit binomial noise, penalty 3 log T by default)."""
    p = k / n
    pbar = float(np.clip(k.sum() / n.sum(), 1.0 / n.mean(), 1.0 - 1.0 / n.mean()))
    z = (p / np.sqrt(pbar * (1 - pbar) / n)).reshape(-1, 1)  # (T, 1)
    pen = 3.0 * math.log(len(p)) if penalty is None else penalty
    ends = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(z).predict(pen=pen)
    return [int(e) for e in ends[:-1]]


def _drift(key: dict[str, Any], runs: list[str], k: np.ndarray, n: np.ndarray) -> Drift:
    cps = change_points(k, n)
    start = cps[0] if cps else 0
    base = slice(0, start) if cps else slice(0, 1)
    kb, nb = int(k[base].sum()), int(n[base].sum())
    p = score_test(int(k[-1]), int(n[-1]), kb, nb)
    return Drift(
        key, len(runs), runs[start] if cps else None, [runs[i] for i in cps],
        kb / nb, float(k[-1] / n[-1]), float(k[-1] / n[-1] - kb / nb), p,
    )  # fmt: skip


def history(
    metrics: pl.DataFrame, *, threshold: float = 0.05, alpha: float = 0.05, min_nights: int = 3
) -> list[Drift]:
    """Change-point test on every group present in the last run of ``metrics`` (rows of all
    nightly runs, ``run_id`` sorting by date) with at least ``min_nights`` nights."""
    counts = group_counts(metrics).filter(pl.col("n") > 0)
    if counts.is_empty():
        return []
    last = max(counts["run_id"].to_list())
    drifts = []
    for key_vals, sub in counts.group_by(KEYS, maintain_order=True):
        sub = sub.sort("run_id")
        if sub.height < min_nights or sub["run_id"][-1] != last:
            continue
        key = dict(zip(KEYS, key_vals, strict=True))
        k, n = sub["k"].to_numpy().astype(float), sub["n"].to_numpy().astype(float)
        drifts.append(_drift({c: key[c] for c in GROUP_KEYS}, sub["run_id"].to_list(), k, n))
    rejected, levels = holm([d.p_value for d in drifts], alpha)
    for d, rej, lvl in zip(drifts, rejected, levels, strict=True):
        d.level, d.significant = lvl, rej
        d.regression = bool(rej and d.began is not None and -d.diff > threshold)
    return drifts
