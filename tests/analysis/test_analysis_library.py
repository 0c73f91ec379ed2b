"""Library pieces: hull LP, pooled curves and envelope, dataset parameters, nightly
regressions, figures written as PNG, and no torch/ray behind ``import analysis``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from synthetic_results import SC_DIMS, SC_N, SEEDS

from analysis import claims, load, load_examples
from analysis.curves import accuracy_vs, pooled, upper_envelope
from analysis.figures import save_figure
from analysis.hull import gaussian_hull_curve, hull_fraction, in_hull
from analysis.load import with_dataset_params
from analysis.nightly import drifts, nightly_runs, regressions, trend

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frame(synthetic_results: Path) -> pl.DataFrame:
    lf = load(str(synthetic_results)).filter(pl.col("sweep") != "nightly")
    return with_dataset_params(lf).collect()


def test_in_hull_simplex_cases() -> None:
    simplex = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert in_hull(simplex, np.array([0.2, 0.2]))
    assert in_hull(simplex, np.array([1.0, 0.0]))  # a vertex
    assert not in_hull(simplex, np.array([0.6, 0.6]))
    assert hull_fraction(simplex, np.array([[0.1, 0.1], [2.0, 2.0]])) == 0.5


def test_hull_fraction_vanishes_with_d() -> None:
    curve = gaussian_hull_curve([1, 4, 32], [200], n_test=30, seeds=[0]).sort("d")
    inside = curve["inside"].to_list()
    assert inside[0] > 0.9 and inside[-1] == 0.0 and inside[0] >= inside[1] >= inside[2]


def test_pooled_counts_and_intervals(frame: pl.DataFrame) -> None:
    rows = claims.family(frame, "gaussian", ds_theta="pm1", train_method="standard")
    curves = accuracy_vs(rows, "n_train", by=["d", "eps"])
    assert curves.height == len(SC_DIMS) * len(SC_N) * 3
    one = curves.filter((pl.col("d") == 64) & (pl.col("n_train") == 4) & (pl.col("eps") == 0.6))
    raw = rows.filter((pl.col("d") == 64) & (pl.col("n_train") == 4) & (pl.col("eps") == 0.6))
    assert one["robust"][0] == raw["n_robust"].sum() and one["cells"][0] == len(SEEDS)
    assert one["robust_acc"][0] == pytest.approx(raw["n_robust"].sum() / raw["n_eval"].sum())
    tol = 1e-12  # Wilson's bounds at 0 or n successes are exact only up to rounding
    assert (curves["robust_acc_lo"] <= curves["robust_acc"] + tol).all()
    assert (curves["robust_acc"] <= curves["robust_acc_hi"] + tol).all()
    assert (curves["clean_acc_lo"] <= curves["clean_acc"] + tol).all()
    # seed level: 4 seeds, an interval that holds the Wilson one
    assert (curves["seeds"] == len(SEEDS)).all() and curves[
        "seed_note"
    ].null_count() == curves.height
    assert (curves["robust_acc_seed_lo"] <= curves["robust_acc_lo"] + tol).all()
    assert (curves["robust_acc_seed_hi"] >= curves["robust_acc_hi"] - tol).all()


def test_upper_envelope_takes_the_best_configuration() -> None:
    curves = pl.DataFrame(
        {
            "dataset": ["g"] * 4,
            "eps": [0.1, 0.1, 0.2, 0.2],
            "train_eps": [0.0, 0.1, 0.0, 0.1],
            "model": ["linear", "mlp", "mlp", "linear"],
            "robust_acc": [0.5, 0.7, 0.4, 0.3],
        }
    )
    env = upper_envelope(curves).sort("eps")
    assert env["robust_acc"].to_list() == [0.7, 0.4]
    assert env["best_model"].to_list() == ["mlp", "mlp"]
    assert env["best_train_eps"].to_list() == [0.1, 0.0]


def test_dataset_params_from_config(frame: pl.DataFrame) -> None:
    dense = frame.filter(pl.col("ds_theta") == "dense")
    assert dense["ds_r"].unique().to_list() == [3.0]
    pm1 = frame.filter((pl.col("ds_theta") == "pm1") & (pl.col("d") == 256))
    assert pm1["noise_sigma"].unique().to_list() == [pytest.approx(4.0)]
    ts = frame.filter(pl.col("dataset") == "tsipras")
    assert (ts["d"] == ts["ds_d"] + 1).all() and ts["ds_p"].unique().to_list() == [0.9]


def test_schmidt_bound_only_where_it_applies(frame: pl.DataFrame) -> None:
    rows = claims.family(frame, "gaussian", ds_theta="normal")
    keys = ["train_method", "d", "n_train", "eps"]
    every = pooled(rows, keys)  # rst (an unlabeled pool) sits far above the ceiling
    assert set(claims.bound_violations(every, "any_learner_robust_acc")["train_method"]) == {"rst"}
    normal = pooled(claims.applicable(rows, "schmidt_thm11"), keys)
    assert normal["train_method"].unique().to_list() == ["standard"] and normal.height == 8
    chk = claims.bound_check(normal, "any_learner_robust_acc")
    assert chk["bound_verdict"].to_list() == ["consistent"] * 8
    above = normal.with_columns((pl.col("robust_acc") - 0.1).alias("ceiling"))
    assert claims.bound_violations(above, "ceiling").height == normal.height
    voided = claims.without_void_bounds(rows)
    rst = voided.filter(pl.col("train_method") == "rst")
    assert rst["any_learner_robust_acc"].null_count() == rst.height > 0
    table = claims.applicability(rows, "schmidt_thm11")
    assert dict(zip(table["train_method"], table["applies"], strict=True)) == {
        "rst": False,
        "standard": True,
    }


def test_curve_families_never_pool_training_eps(frame: pl.DataFrame) -> None:
    bern = claims.family(frame, "bernoulli")
    labels = [label for label, _ in claims.curve_families(bern)]
    assert labels == ["linear pgd_at@0.1", "linear standard"]


def test_nightly_notebook_and_command_agree_on_every_group(synthetic_results: Path) -> None:
    from sweeps.nightly import compare_runs
    from sweeps.store import ResultStore

    lf = load(str(synthetic_results), sweep="nightly")
    runs = nightly_runs(lf)
    assert runs == ["nightly-20260101", "nightly-20260102", "nightly-20260103"]
    tests = regressions(lf, runs, load_examples(str(synthetic_results), sweep="nightly"))
    store = ResultStore(str(synthetic_results))
    for prev, now in zip(runs[:-1], runs[1:], strict=True):
        cmp = compare_runs(store, "nightly", now, prev)
        mine = tests.filter(pl.col("run") == now).sort("series")
        theirs = sorted(cmp.groups, key=lambda g: g.label())
        assert mine["series"].to_list() == [g.label() for g in theirs]
        assert mine["regression"].to_list() == [g.regression for g in theirs]
        assert mine["p_value"].to_list() == pytest.approx([g.p_value for g in theirs])
    bad = tests.filter(pl.col("regression"))
    assert bad["run"].to_list() == ["nightly-20260103"] and "eps=0.3" in bad["series"][0]
    assert bad["hi"][0] < 0
    hist = drifts(lf, runs)
    cmp = compare_runs(store, "nightly", runs[-1], runs[-2])
    assert hist.sort("series")["regression"].to_list() == [
        d.regression for d in sorted(cmp.drifts, key=lambda d: d.label())
    ]
    assert hist.filter(pl.col("regression"))["began"].to_list() == ["nightly-20260103"]
    assert trend(lf, runs).height == 2 * len(runs)


def test_sphere_distances_from_examples(frame: pl.DataFrame, synthetic_results: Path) -> None:
    ex = load_examples(str(synthetic_results)).collect()
    sph = claims.sphere_distances(frame, ex)
    assert sph.height == 1 and 0 < sph["mu"][0] < 0.2
    inner = ex.filter(pl.col("label") == 0)
    dist = inner.select(
        pl.when(pl.col("clean_correct")).then(pl.col("min_distance")).otherwise(0.0).median()
    ).item()
    assert sph["distance"][0] == pytest.approx(dist)


def test_figures_are_written_as_png(frame: pl.DataFrame, tmp_path: Path) -> None:
    from analysis import theory
    from analysis.figures_claims import accuracy_vs_n, error_vs_scaled_eps, hull_curve

    curves = pooled(claims.family(frame, "gaussian", ds_theta="pm1"), ["d", "eps", "n_train"])
    dense = pooled(claims.family(frame, "gaussian", ds_theta="dense"), ["d", "eps"])
    figs = {
        "vs-n": accuracy_vs_n(curves.filter(pl.col("eps") > 0)),
        "dense": error_vs_scaled_eps(dense, theory.dense([16, 64], [0.0, 0.1, 0.5]), 3.0),
        "hull": hull_curve(pl.DataFrame({"d": [1, 2], "n_train": [10, 10], "inside": [1.0, 0.5]})),
    }
    for name, fig in figs.items():
        path = save_figure(fig, name, tmp_path / "figs")
        assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert save_figure(figs["hull"], "x", None) is None


def test_importing_analysis_loads_neither_torch_nor_ray() -> None:
    mods = [
        "analysis", "analysis.load", "analysis.curves", "analysis.theory", "analysis.transitions",
        "analysis.hull", "analysis.claims", "analysis.figures", "analysis.figures_claims",
        "analysis.figures_misc", "analysis.nightly", "analysis.transfer", "analysis.report",
    ]  # fmt: skip
    code = f"import sys; [__import__(m) for m in {mods!r}]; print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_tsipras_points_use_linf_at_two_eta(frame: pl.DataFrame) -> None:
    ts = claims.tsipras_points(frame)
    assert set(ts["norm"].to_list()) == {"linf"} and ts.height == 4  # 2 methods x 2 d
    eta = 3 / np.sqrt(ts["d"].cast(pl.Float64) - 1)
    assert ((ts["eps"] - 2 * eta).abs() < 1e-5).all()


def test_one_config_prefers_the_standard_method() -> None:
    rows = pl.DataFrame(
        {"model": ["mlp", "mlp", "cnn"], "train_method": ["pgd_at", "standard", "pgd_at"]}
    )
    assert claims.one_config(rows).rows() == [("mlp", "standard")]
    assert claims.one_config(rows, "cnn", "pgd_at").rows() == [("cnn", "pgd_at")]


def test_polars_schema_mapped_by_hand_equals_polars_own_conversion() -> None:
    """analysis.load maps the results schema's arrow types to polars by hand (no arrow table,
    so no pandas import); it must equal what polars itself converts the empty tables to."""
    import polars as pl

    from analysis.load import _polars_schema
    from sweeps.schema import EXAMPLES_SCHEMA, METRICS_SCHEMA

    for schema in (METRICS_SCHEMA, EXAMPLES_SCHEMA):
        own = pl.from_arrow(schema.empty_table())
        assert isinstance(own, pl.DataFrame)
        assert _polars_schema(schema) == dict(own.schema)
