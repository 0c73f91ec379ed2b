"""Verdicts decide from the data: synthetic curves with a known transition exponent pass, the
same curves with the exponent removed (or a bound broken) fail, and too little data is
inconclusive. Rows are drawn binomially around known curves (no training)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest
from synthetic_results import make_row

from adv_core.config.data import GaussianData
from analysis import verdicts
from analysis.load import with_dataset_params
from sweeps.rows import RunInfo
from sweeps.schema import metrics_table

RUN = RunInfo("v", "r1", "test")
DIMS = (16, 64, 256, 1024)
NS = (1, 2, 4, 8, 16, 32, 64, 128)


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    table = pl.from_arrow(metrics_table(rows))
    assert isinstance(table, pl.DataFrame)
    return with_dataset_params(table.lazy()).collect()


def gaussian_rows(exponent: float, seeds: int = 4) -> pl.DataFrame:
    """pm1 Gaussian rows whose robust transition (accuracy 1/2 at eps 0.8) is at
    n* = 8 (d / 16)^exponent, inside the n grid; standard accuracy 0.95 at every n and d."""
    rng = np.random.default_rng(0)
    rows = []
    for d in DIMS:
        ds = GaussianData(d=d, theta="pm1", sigma_c=1.0)
        for n in NS:
            p = 0.95 / (1 + (n_star(d, exponent) / n) ** 2)
            for seed in range(seeds):
                for eps, rp in ((0.0, 0.95), (0.8, p)):
                    rows.append(make_row(RUN, ds, rng, n_train=n, seed=seed, eps=eps,
                                         robust_p=rp, clean_p=0.95))  # fmt: skip
    return frame(rows)


def n_star(d: int, exponent: float) -> float:
    return 8.0 * (d / 16) ** exponent


def dense_rows(scale: float) -> pl.DataFrame:
    """Dense-model rows of the linear classifier w = theta, whose robust accuracy
    Phi(r - eps sqrt(d)) equals the Bayes-optimal one up to eps = r/sqrt(d) and falls below 1/2
    after it, evaluated at eps / scale: scale 1 sits on the bound, scale 2 breaks it (robust
    where no classifier can be)."""
    rng = np.random.default_rng(1)
    eps_grid = [round(float(e), 4) for e in np.geomspace(0.02, 1.5, 16)]
    rows = []
    for d in DIMS:
        ds = GaussianData(d=d, theta="dense", r=3.0)
        for seed in range(3):
            for eps in (0.0, *eps_grid):
                acc = NormalDist().cdf(3.0 - eps / scale * math.sqrt(d))
                rows.append(make_row(RUN, ds, rng, n_train=512, seed=seed, eps=eps,
                                     robust_p=acc, clean_p=0.998))  # fmt: skip
    return frame(rows)


def test_sample_complexity_passes_with_the_closed_form_exponent() -> None:
    v = verdicts.sample_complexity(gaussian_rows(0.5))
    assert v is not None and v.status == "pass", v
    assert v.estimate is not None and abs(v.estimate.value - 0.5) < 0.1
    assert v.estimate.lo < 0.5 < v.estimate.hi
    # the evidence table: one row per d with the measured n* and the closed form beside it
    assert v.evidence["d"].to_list() == list(DIMS)
    n_stars = v.evidence["robust_n_star"].to_numpy()
    assert np.allclose(n_stars, [n_star(d, 0.5) for d in DIMS], rtol=0.35)
    assert v.evidence["closed_form_n_star"].null_count() == 0
    assert "[" in v.measured and "eps = 0.8" in v.measured
    assert "reached at the smallest n (1) at every d" in v.measured  # standard: flat


@pytest.mark.parametrize(
    ("exponent", "status"), [(0.0, "fail"), (1.0, "fail")], ids=["flat", "too-steep"]
)
def test_sample_complexity_fails_when_the_transition_does_not_scale(
    exponent: float, status: str
) -> None:
    v = verdicts.sample_complexity(gaussian_rows(exponent))
    assert v is not None and v.status == status, v


def test_inevitability_passes_on_the_bound_and_fails_above_it() -> None:
    good = verdicts.inevitability(dense_rows(1.0))
    assert good is not None and good.status == "pass", good
    assert good.estimate is not None and abs(good.estimate.value + 0.5) < 0.1
    bound = good.evidence["bound_r_over_sqrt_d"].to_numpy()
    assert np.allclose(bound, [3.0 / math.sqrt(d) for d in DIMS])
    bad = verdicts.inevitability(dense_rows(2.0))
    assert bad is not None and bad.status == "fail" and "above the Bayes-optimal" in bad.reason


def test_one_seed_and_absent_claims() -> None:
    one = verdicts.sample_complexity(gaussian_rows(0.5, seeds=1))
    assert one is not None and one.status == "inconclusive"  # no interval from one seed
    found, absent = verdicts.all_verdicts(dense_rows(1.0))
    assert "inevitability" in found and "sample complexity" in absent
    assert verdicts.inevitability(gaussian_rows(0.5)) is None


def test_closed_form_and_sanity_checks() -> None:
    df = dense_rows(1.0)
    assert verdicts.closed_form(df) is None  # no theory column in these rows
    covered = df.with_columns(pl.col("robust_acc").alias("theory_robust_acc"))
    v = verdicts.closed_form(covered)
    assert v is not None and v.status == "pass"
    off = df.with_columns((pl.col("robust_acc_hi") + 0.2).alias("theory_robust_acc"))
    v = verdicts.closed_form(off)
    assert v is not None and v.status == "fail"
    s = verdicts.sanity(df)
    assert s is not None and s.status == "pass"
    flagged = df.with_columns(
        pl.when(pl.col("eps") == 0.0).then(pl.lit(["eps0_not_clean"])).otherwise(pl.col("flags"))
        .alias("flags")
    )  # fmt: skip
    s = verdicts.sanity(flagged)
    assert s is not None and s.status == "fail" and "eps0_not_clean" in s.reason
