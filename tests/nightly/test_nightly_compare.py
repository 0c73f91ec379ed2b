"""Nightly comparison: an injected drop in one group gives exit 3 and a report naming exactly
that group; a night that differs only by binomial noise gives exit 0."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from nightly_helpers import invoke, with_count, write_night

from sweeps.regression import holm, mcnemar_interval, newcombe, score_test
from sweeps.store import ResultStore

DROPPED = {"n_train": 16, "member": -1, "attack": "fgsm", "eps": 0.1}


def nightly(night: Path, date: str, *extra: str) -> Any:
    return invoke(
        "nightly", str(night / "spec.yaml"), "--results", str(night / "res"), "--date", date,
        "--workers", "0", "--no-html", *extra,
    )  # fmt: skip


def report(night: Path, run_id: str) -> tuple[dict[str, Any], str]:
    rep = json.loads((night / "res" / "reports" / f"{run_id}.json").read_text())
    return rep, (night / "res" / "reports" / f"{run_id}.md").read_text()


def test_injected_drop_in_one_group_is_named_and_exits_3(night: Path) -> None:
    def drop(row: dict[str, Any]) -> dict[str, Any]:
        if all(row[k] == v for k, v in DROPPED.items()):  # both seeds of one group
            return with_count(row, row["n_robust"] - 40)  # -20 points on 200 points
        return row

    store = ResultStore(str(night / "res"))
    write_night(store, "nightly-20261120", "nightly-20261121", drop)
    res = nightly(night, "2026-11-21")
    assert res.exit_code == 3, res.output
    rep, md = report(night, "nightly-20261121")
    assert rep["previous_run_id"] == "nightly-20261120" and rep["groups_compared"] == 12
    [bad] = rep["regressions"]
    assert {k: bad["key"][k] for k in DROPPED} == DROPPED
    assert bad["diff"] == pytest.approx(-0.2) and bad["hi"] < 0
    regress_section = md.split("## Regressions")[1].split("##")[0]
    rows = [line for line in regress_section.splitlines() if line.startswith("| gaussian")]
    assert rows == [line for line in rows if bad["label"] in line] and len(rows) == 1
    assert "REGRESSION in 1 of 12 groups" in md


def test_noise_alone_is_not_a_regression(night: Path) -> None:
    rng = random.Random(7)

    def noise(row: dict[str, Any]) -> dict[str, Any]:
        n, p = row["n_eval"], row["n_robust"] / row["n_eval"]
        return with_count(row, sum(rng.random() < p for _ in range(n)))  # a fresh Binomial(n, p)

    store = ResultStore(str(night / "res"))
    write_night(store, "nightly-20261120", "nightly-20261121", noise)
    assert nightly(night, "2026-11-19", "--report-only").exit_code == 1  # no cells that night
    res = nightly(night, "2026-11-21", "--report-only")  # as the Kubernetes CronJob runs it
    assert res.exit_code == 0, res.output
    rep, md = report(night, "nightly-20261121")
    assert rep["regressions"] == [] and "no regression (12 groups compared)" in md
    assert sum(abs(c["diff"]) > 0 for c in rep["changes"]) >= 10  # the nights do differ
    assert all(c["lo"] < c["diff"] < c["hi"] for c in rep["changes"] if c["diff"] != 0)


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Stat. Med. 17:873, Table II example (56/70 vs 48/80), method 10
    lo, hi = newcombe(56, 70, 48, 80, 0.05)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_score_test_matches_the_chi_square_test() -> None:
    # the pooled score test is Pearson's chi-square on the 2x2 table without correction
    from scipy.stats import chi2_contingency

    table = [[56, 14], [48, 32]]
    want = chi2_contingency(table, correction=False).pvalue
    assert score_test(56, 70, 48, 80) == pytest.approx(want, rel=1e-9)


def test_holm_step_down_by_hand() -> None:
    # m = 4, alpha 0.05: levels 0.0125, 0.0167, 0.025, 0.05 in p order; stops at the first miss
    rejected, levels = holm([0.01, 0.04, 0.015, 0.2], 0.05)
    assert rejected == [True, False, True, False]
    assert levels == pytest.approx([0.0125, 0.025, 0.05 / 3, 0.05])
    # Bonferroni (0.0125 each) would keep 0.015; Holm rejects it
    assert holm([0.011, 0.015], 0.05)[0] == [True, True]


def test_mcnemar_interval_agrees_with_the_exact_test() -> None:
    from scipy.stats import binomtest

    # 30 discordant pairs, 25 lost and 5 gained out of 200: exact p = 0.00032 < 0.01
    lo, hi = mcnemar_interval(25, 5, 200, 0.01)
    assert hi < 0 < binomtest(5, 30, 0.5).pvalue * 100 and lo < -0.1 < hi
    lo, hi = mcnemar_interval(10, 5, 200, 0.05)  # p = 0.30: the interval holds 0
    assert lo < 0 < hi and binomtest(5, 15, 0.5).pvalue > 0.05
    assert mcnemar_interval(0, 0, 200, 0.05) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("k_now", "n_now", "k_prev", "n_prev", "threshold", "regressed"),
    [
        (600, 1000, 800, 1000, 0.05, True),  # -20 points, clear
        (6, 10, 8, 10, 0.05, False),  # -20 points, but ten points cannot tell
        (97_000, 100_000, 98_000, 100_000, 0.05, False),  # clear but below the threshold
        (97_000, 100_000, 98_000, 100_000, 0.0, True),  # ... unless the threshold is 0
        (800, 1000, 600, 1000, 0.05, False),  # an improvement
    ],
    ids=["clear-drop", "tiny-n", "below-threshold", "zero-threshold", "improvement"],
)
def test_regression_rule(
    k_now: int, n_now: int, k_prev: int, n_prev: int, threshold: float, regressed: bool
) -> None:
    from nightly_helpers import one_group_frames

    from sweeps.regression import compare_nights

    now, prev = one_group_frames(k_now, n_now, k_prev, n_prev)
    [t], _, _ = compare_nights(now, prev, threshold=threshold)
    assert t.regression is regressed and not t.paired
