"""Nightly trends and verdicts for the notebook, by the rule ``sweeps nightly`` applies.

The grouping, the paired / unpaired night-to-night test with Holm over groups, and the
change-point test over the history all come from ``sweeps.regression`` (torch- and Ray-free), so
the notebook and the command report the same groups with the same verdicts.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import polars as pl

from adv_core.stats import wilson
from sweeps.regression import GROUP_KEYS, KEYS, compare_nights, group_label, history


def nightly_runs(frame: pl.LazyFrame | pl.DataFrame, prefix: str = "nightly-") -> list[str]:
    """Run ids that start with ``prefix``, in order (nightly-YYYYMMDD sorts by date)."""
    runs = frame.lazy().select(pl.col("run_id").unique()).collect()["run_id"].to_list()
    return sorted(r for r in runs if r.startswith(prefix))


def _collect(frame: pl.LazyFrame | pl.DataFrame, runs: list[str]) -> pl.DataFrame:
    return frame.lazy().filter(pl.col("run_id").is_in(runs)).collect()


def trend(frame: pl.LazyFrame | pl.DataFrame, runs: list[str]) -> pl.DataFrame:
    """Pooled robust accuracy per group (``series`` label) and run, with Wilson intervals."""
    df = (
        _collect(frame, runs)
        .filter((pl.col("status") == "ok") & pl.col("n_robust").is_not_null())
        .group_by(["run_id", *KEYS])
        .agg(pl.col("n_robust").sum().alias("robust"), pl.col("n_eval").sum().alias("n"))
        .filter(pl.col("n") > 0)
    )
    labels = [group_label(r) for r in df.select(GROUP_KEYS).iter_rows(named=True)]
    ci = [wilson(k, n) for k, n in zip(df["robust"], df["n"], strict=True)]
    return df.with_columns(
        pl.Series("series", labels),
        (pl.col("robust") / pl.col("n")).alias("robust_acc"),
        pl.Series("robust_acc_lo", [a for a, _ in ci], dtype=pl.Float64),
        pl.Series("robust_acc_hi", [b for _, b in ci], dtype=pl.Float64),
        pl.col("run_id").alias("run"),
    ).sort("series", "run")


_TEST_SCHEMA: dict[str, Any] = {
    "run": pl.String, "previous": pl.String, "series": pl.String, "acc_prev": pl.Float64,
    "acc_now": pl.Float64, "diff": pl.Float64, "lo": pl.Float64, "hi": pl.Float64,
    "p_value": pl.Float64, "paired": pl.Boolean, "level": pl.Float64,
    "regression": pl.Boolean,
}  # fmt: skip


def regressions(
    frame: pl.LazyFrame | pl.DataFrame,
    runs: list[str],
    examples: pl.LazyFrame | pl.DataFrame | None = None,
    threshold: float = 0.05,
    alpha: float = 0.05,
) -> pl.DataFrame:
    """Every run against the run before it (paired on ``examples`` where the weights and test
    points are the same), one row per group compared."""
    out = []
    for prev, now in zip(runs[:-1], runs[1:], strict=True):
        m_now, m_prev = _collect(frame, [now]), _collect(frame, [prev])
        e_now = _collect(examples, [now]) if examples is not None else None
        e_prev = _collect(examples, [prev]) if examples is not None else None
        tests, _, _ = compare_nights(m_now, m_prev, e_now, e_prev, threshold=threshold, alpha=alpha)
        for t in tests:
            row = {k: v for k, v in asdict(t).items() if k in _TEST_SCHEMA}
            out.append({**row, "run": now, "previous": prev, "series": t.label()})
    return pl.DataFrame(out, schema=_TEST_SCHEMA)


def drifts(
    frame: pl.LazyFrame | pl.DataFrame, runs: list[str], threshold: float = 0.05,
    alpha: float = 0.05,
) -> pl.DataFrame:  # fmt: skip
    """The change-point test over ``runs`` (the last one is judged), one row per group."""
    rows = [
        {
            "series": d.label(),
            "nights": d.nights,
            "began": d.began,
            "change_points": ", ".join(d.change_points),
            "baseline_acc": d.baseline_acc,
            "last_acc": d.last_acc,
            "diff": d.diff,
            "p_value": d.p_value,
            "level": d.level,
            "regression": d.regression,
        }  # fmt: skip
        for d in history(_collect(frame, runs), threshold=threshold, alpha=alpha)
    ]
    schema = {"series": pl.String, "nights": pl.Int64, "began": pl.String}
    schema |= {"change_points": pl.String, "baseline_acc": pl.Float64, "last_acc": pl.Float64}
    schema |= {"diff": pl.Float64, "p_value": pl.Float64, "level": pl.Float64}
    return pl.DataFrame(rows, schema={**schema, "regression": pl.Boolean})
