"""The paired night-to-night test and the change-point test over the whole nightly history
(sweeps/regression.py): a drop only the pairing can see, and a planted slow drift over 10 nights
that the history test flags and the night-to-night test does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from nightly_helpers import example_frame, group_frame, invoke, with_count, write_night

from sweeps.regression import change_points, compare_nights, history
from sweeps.store import ResultStore

NIGHTS = [f"nightly-202611{day:02d}" for day in range(20, 30)]  # 10 nights


def test_paired_test_sees_a_drop_the_unpaired_one_cannot() -> None:
    # 1000 test points; 30 points that were robust are broken now, none gained (-3 pp)
    before = [i < 800 for i in range(1000)]
    after = [i < 770 for i in range(1000)]
    now, prev = group_frame("nightly-2", 770, 1000), group_frame("nightly-1", 800, 1000)
    ex_now, ex_prev = example_frame("nightly-2", after), example_frame("nightly-1", before)
    [paired], _, _ = compare_nights(now, prev, ex_now, ex_prev, threshold=0.02)
    assert paired.paired and paired.discordant == (30, 0)
    assert paired.p_value < 1e-8 and paired.hi < 0 and paired.regression
    [unpaired], _, _ = compare_nights(now, prev, threshold=0.02)  # no examples: unpaired
    assert not unpaired.paired and unpaired.p_value > 0.1 and not unpaired.regression
    # other test points (a different label order) cannot be paired
    other = example_frame("nightly-2", after).with_columns((1 - pl.col("label")).alias("label"))
    [t], _, _ = compare_nights(now, prev, other, ex_prev, threshold=0.02)
    assert not t.paired


def _series(rng: np.random.Generator, p: list[float], n: int, **key: Any) -> pl.DataFrame:
    return pl.concat(
        [group_frame(r, int(rng.binomial(n, q)), n, **key) for r, q in zip(NIGHTS, p, strict=True)]
    )


def test_planted_slow_drift_is_flagged_by_history_not_by_night_to_night() -> None:
    rng = np.random.default_rng(3)
    drift = [0.80] * 4 + [0.80 - 0.025 * i for i in range(1, 7)]  # -2.5 pp a night from night 5
    frames = [_series(rng, drift, 2000, d=8)]
    frames += [_series(rng, [0.8] * 10, 2000, d=d) for d in (16, 32, 64)]  # flat, noisy
    allrows = pl.concat(frames)
    for prev, now in zip(NIGHTS[:-1], NIGHTS[1:], strict=True):
        tests, _, _ = compare_nights(
            allrows.filter(pl.col("run_id") == now), allrows.filter(pl.col("run_id") == prev)
        )
        assert len(tests) == 4 and not any(t.regression for t in tests), now
    drifts = history(allrows)
    assert len(drifts) == 4
    [bad] = [d for d in drifts if d.regression]
    assert bad.key["d"] == 8 and bad.diff < -0.1
    assert bad.began in NIGHTS[3:6]  # the change began at night 5 (index 4)


def test_flat_noisy_series_has_no_change_point() -> None:
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(50):
        n = np.full(10, 1000.0)
        found += bool(change_points(rng.binomial(1000, 0.7, 10).astype(float), n))
    assert found <= 5  # the penalty keeps false change points rare (about 1 in 20 here)


def test_nightly_cli_names_the_drifting_group_and_the_night(night: Path) -> None:
    store = ResultStore(str(night / "res"))
    target = {"n_train": 16, "member": -1, "attack": "fgsm", "eps": 0.1}
    for i, run in enumerate(NIGHTS[1:], start=1):
        steps = max(0, i - 3)  # flat for four nights, then -4 points (8 of 200) a night

        def mutate(row: dict[str, Any], steps: int = steps) -> dict[str, Any]:
            if all(row[k] == v for k, v in target.items()):
                return with_count(row, max(0, row["n_robust"] - 8 * steps))
            return row

        write_night(store, NIGHTS[0], run, mutate)
    res = invoke(
        "nightly", str(night / "spec.yaml"), "--results", str(night / "res"), "--date",
        "2026-11-29", "--workers", "0", "--no-html", "--report-only",
    )  # fmt: skip
    assert res.exit_code == 3, res.output
    reports = night / "res" / "reports"
    rep = json.loads((reports / "nightly-20261129.json").read_text())
    assert rep["regressions"] == [] and len(rep["nights"]) == 10
    [bad] = rep["drift_regressions"]
    assert {k: bad["key"][k] for k in target} == target and bad["began"] in NIGHTS[3:6]
    md = (reports / "nightly-20261129.md").read_text()
    assert "## Drifts over the nightly history" in md and bad["label"] in md
    assert bad["began"] in md.split("## Drifts over the nightly history")[1]
    assert f"drift {bad['label']}" in res.output and bad["began"] in res.output


def test_a_real_second_night_is_compared_paired(night: Path) -> None:
    # the same spec again: trained weights reused (same train_hash), same test points, so
    # every group pairs through the real examples table (outcomes adding up to the counts)
    res = invoke(
        "nightly", str(night / "spec.yaml"), "--results", str(night / "res"), "--date",
        "2026-11-21", "--workers", "0", "--no-html",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads((night / "res" / "reports" / "nightly-20261121.json").read_text())
    assert rep["groups_compared"] == 12 and rep["groups_paired"] == 12
    assert all(c["paired"] and c["discordant"] == [0, 0] for c in rep["changes"])
