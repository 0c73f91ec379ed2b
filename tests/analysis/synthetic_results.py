"""Synthetic results for the analysis tests, written through the real schema
(sweeps.schema.metrics_table / examples_table) and the store's atomic writer, so the notebooks
and the library read exactly what a sweep would write. No training: accuracies are drawn
binomially around known curves (a known transition exponent, the closed forms)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
from typing import Any

import numpy as np

from adv_core import theory
from adv_core.config import canonical_json
from adv_core.config.data import BernoulliData, GaussianData, SpheresData, TsiprasData
from adv_core.results import CellColumns, MetricsRow, Provenance
from sweeps.rows import RunInfo, full_row
from sweeps.schema import SCHEMA_VERSION, examples_table, metrics_table
from sweeps.store import ResultStore

KNOWN_EXPONENT = 0.5  # robust transition n*(d) = 0.3 * d ** KNOWN_EXPONENT (times a seed effect)
SEED_SPREAD = (
    0.25  # log n* of each (seed, d) shifts by SEED_SPREAD * N(0, 1): between-seed variation
)
SC_DIMS = (64, 256, 1024, 4096)
SC_N = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
SEEDS = (0, 1, 2, 3)
N_EVAL = 1000
DENSE_R = 3.0
DENSE_DIMS = (16, 64, 256, 1024)
DENSE_EPS = tuple(float(e) for e in np.round(np.geomspace(0.01, 1.0, 15), 4))


def slope(d: int) -> float:
    """The logistic's steepness falls with d (3 at d = 64, 2 at d = 4096): the curve's shape
    changes with d, so a threshold-based exponent depends on the threshold."""
    return 3.0 - math.log(d / 64) / math.log(64)


def robust_curve(n: float, d: int, shift: float = 0.0) -> float:
    """Logistic in log n around n*(d) = 0.3 d^k exp(shift) (k = KNOWN_EXPONENT)."""
    n_star = 0.3 * d**KNOWN_EXPONENT * math.exp(shift)
    return 0.95 / (1.0 + math.exp(-slope(d) * math.log(n / n_star)))


def make_row(run: RunInfo, ds: Any, rng: np.random.Generator, **kw: Any) -> dict[str, Any]:
    """A complete metrics row: counts drawn around ``robust_p``/``clean_p``, built from the
    records of adv_core.results (so a new column needs no change here); ``kw`` overrides."""
    n = kw.pop("n_eval", N_EVAL)
    clean = int(rng.binomial(n, kw.pop("clean_p")))
    robust = min(clean, int(rng.binomial(n, min(1.0, max(0.0, kw.pop("robust_p"))))))
    seed, member, n_train = kw.get("seed", 0), kw.get("member", -1), kw.get("n_train", 8)
    model = kw.pop("model_name", "linear")
    training = kw.pop("training", {"method": "standard"})
    cell = f"{canonical_json(ds)}-{n_train}-{model}-{training}-{seed}"
    digest = hashlib.sha256(cell.encode()).hexdigest()
    prov = Provenance(
        SCHEMA_VERSION, run.sweep, run.run_id, "test", dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        node="test", model_reused=False, attempt=1,
    )  # fmt: skip
    columns = CellColumns(
        cell_hash=digest[:16], train_hash=digest[16:32], dataset=ds.name, d=ds.input_dim,
        n_train=n_train, n_eval=n, model=model, train_method=training["method"],
        train_norm=training.get("norm"), train_eps=training.get("eps"), ensemble_size=2,
        seed=seed, config="{}", dataset_config=canonical_json(ds),
        model_config=canonical_json({"name": model}), training_config=canonical_json(training),
    )  # fmt: skip
    measured = MetricsRow.measured(
        member, "exact", "linf", 0.0, n_clean=clean, n_robust=robust, n=n, flags=[]
    )
    metrics = dataclasses.replace(measured, wall_s=0.1, device="cpu")
    return {**full_row(prov, columns, metrics), **kw}


def sample_complexity_rows(run: RunInfo, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for d in SC_DIMS:
        ds = GaussianData(d=d, theta="pm1", sigma_c=1.0)
        for seed in SEEDS:
            shift = SEED_SPREAD * float(rng.standard_normal())  # this seed's theta and data
            for n in SC_N:
                p = robust_curve(n, d, shift)
                clean = 0.97 - 0.1 / n
                for member in (-1, 0, 1):
                    for eps, rp in ((0.0, clean), (0.6, p), (1.0, 0.0)):
                        rows.append(
                            make_row(run, ds, rng, n_train=n, seed=seed, member=member, eps=eps,
                                     robust_p=rp, clean_p=clean)
                        )  # fmt: skip
    rows += schmidt_rows(run, rng) + rst_rows(run, rng) + bernoulli_rows(run, rng)
    return rows


RST = {"method": "rst", "norm": "linf", "eps": 0.6, "n_unlabeled": 4000}
PGD_AT = {"method": "pgd_at", "norm": "linf", "eps": 0.6}


def schmidt_rows(run: RunInfo, rng: np.random.Generator) -> list[dict[str, Any]]:
    """theta ~ N(0, I), 4 seeds: standard rows below Thm 11's ceiling, and rst rows (an
    unlabeled pool voids the theorem) far above it."""
    rows = []
    for d in (64, 256):
        ds = GaussianData(d=d, theta="normal", sigma_c=1.0)
        sigma = d**0.25
        for n in (1, 4, 16, 64):
            bound = 1.0 - float(
                theory.schmidt_lower_bound(n, d, sigma, 1.0)
            )  # non-trivial at eps 1
            for seed in SEEDS:
                for training, rp in (({"method": "standard"}, 0.9 * bound), (RST, 0.97)):
                    rows.append(
                        make_row(run, ds, rng, n_train=n, seed=seed, eps=1.0, robust_p=rp,
                                 clean_p=0.97, any_learner_robust_acc=bound, training=training)
                    )  # fmt: skip
    return rows


def rst_rows(run: RunInfo, rng: np.random.Generator) -> list[dict[str, Any]]:
    """theta = +-1: pgd_at needs ~4x more labels than rst for the same robust accuracy."""
    rows = []
    for d in (64, 256):
        ds = GaussianData(d=d, theta="pm1", sigma_c=1.0)
        for training, factor in ((PGD_AT, 1.0), (RST, 0.25)):
            for seed in SEEDS[:3]:
                for n in (1, 4, 16, 64):
                    p = robust_curve(n / factor, d)
                    for eps, rp in ((0.0, 0.95), (0.6, p)):
                        rows.append(
                            make_row(run, ds, rng, n_train=n, seed=seed, eps=eps, robust_p=rp,
                                     clean_p=0.95, training=training)
                        )  # fmt: skip
    return rows


BERN_TAU = 0.25


def bernoulli_rows(run: RunInfo, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Bernoulli model (paper's, no box): standard and pgd_at@0.1 linear models; robust
    accuracy approaches sign(<theta, x>)'s exact value once n passes a d-dependent point."""
    rows = []
    for d in (64, 256, 1024):
        ds = BernoulliData(d=d, tau=BERN_TAU)
        for training, n0 in (({"method": "standard"}, 0.5), ({"method": "pgd_at", "norm": "linf", "eps": 0.1}, 0.25)):  # fmt: skip
            for seed in SEEDS:
                for n in (1, 2, 4, 8, 16, 32):
                    learn = 1.0 - math.exp(-n / (n0 * d**0.5))
                    for eps in (0.0, 0.1, 0.2):
                        best = 1.0 - float(theory.bernoulli_robust_error(BERN_TAU, d, eps))
                        rows.append(
                            make_row(run, ds, rng, n_train=n, seed=seed, eps=eps,
                                     robust_p=best * learn, clean_p=0.5 + 0.5 * learn,
                                     training=training)
                        )  # fmt: skip
    return rows


def inevitability_rows(run: RunInfo, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for d in DENSE_DIMS:
        ds = GaussianData(d=d, theta="dense", r=DENSE_R)
        bayes = 1.0 - theory.dense_bayes_robust_error(DENSE_R, d, np.array(DENSE_EPS))
        for seed in SEEDS[:2]:
            for eps, b in zip((0.0, *DENSE_EPS), (bayes[0], *bayes), strict=True):
                rows.append(
                    make_row(run, ds, rng, n_train=2048, seed=seed, eps=eps, robust_p=b * 0.98,
                             clean_p=bayes[0] * 0.98, bayes_robust_acc=float(b),
                             theory_robust_acc=float(b * 0.98))
                )  # fmt: skip
    for d in (20, 100):
        ds = TsiprasData(d=d, p=0.9)
        eta = ds.weak_eta
        for method, clean, robust in (("standard", 0.99, 0.05), ("pgd_at", 0.9, 0.88)):
            training = {"method": method, "norm": "linf", "eps": 2 * eta}
            if method == "standard":
                training = {"method": "standard"}
            for eps, rp in ((0.0, clean), (round(2 * eta, 6), robust)):
                rows.append(
                    make_row(run, ds, rng, n_train=512, eps=eps, robust_p=rp, clean_p=clean,
                             model_name="mlp", training=training)
                )  # fmt: skip
    return rows


def transfer_rows(run: RunInfo, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    ds = SpheresData(d=32)
    base = {"n_train": 256, "model_name": "mlp", "norm": "l2"}
    for seed in SEEDS[:2]:
        for eps in (0.0, 0.1, 0.3):
            p = 0.98 - eps
            for member in (-1, 0, 1):
                rows.append(make_row(run, ds, rng, seed=seed, member=member, attack="pgd",
                                     eps=eps, robust_p=p * (1.05 if member < 0 else 1.0),
                                     clean_p=0.99, **base))  # fmt: skip
                for src in (0, 1):
                    if member >= 0:
                        rows.append(make_row(run, ds, rng, seed=seed, member=member,
                                             source_member=src, attack="transfer", eps=eps,
                                             robust_p=p if src == member else 0.9, clean_p=0.99,
                                             **base))  # fmt: skip
        rows.append(make_row(run, ds, rng, seed=seed, attack="fooling", eps=0.0, robust_p=0.6,
                             clean_p=0.99, **base))  # fmt: skip
    return rows


def spheres_examples(run: RunInfo, rows: list[dict[str, Any]], rng: np.random.Generator) -> Any:
    """Per-example min_distance for the spheres pgd rows (inner sphere = label 0)."""
    cell = next(r for r in rows if r["attack"] == "pgd")
    n = 200
    label = rng.integers(0, 2, n)
    correct = rng.random(n) > 0.05
    dist = np.where(correct, np.abs(rng.normal(0.1, 0.05, n)), 0.0)
    return examples_table(
        {
            "schema_version": [SCHEMA_VERSION] * n,
            "sweep": [run.sweep] * n,
            "run_id": [run.run_id] * n,
            "cell_hash": [cell["cell_hash"]] * n,
            "member": [-1] * n,
            "example": list(range(n)),
            "label": label.tolist(),
            "clean_correct": correct.tolist(),
            "margin": dist.tolist(),
            "attack": ["pgd"] * n,
            "norm": ["l2"] * n,
            "broken_eps": np.where(correct, 0.3, 0.0).tolist(),
            "min_distance": dist.tolist(),
            "clean_pred": np.where(correct, label, 1 - label).tolist(),
            "first_broken_by": [None] * n,
        }
    )


def nightly_rows(run: RunInfo, rng: np.random.Generator, drop: float) -> list[dict[str, Any]]:
    ds = GaussianData(d=64, sigma_c=1.0)
    return [
        make_row(run, ds, rng, n_train=32, eps=eps, robust_p=p - drop * (eps > 0), clean_p=0.97)
        for eps, p in ((0.0, 0.97), (0.3, 0.8))
    ]


def write(
    store: ResultStore, run: RunInfo, rows: list[dict[str, Any]], examples: Any = None
) -> None:
    """One Parquet file per cell_hash, like a sweep would write."""
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_cell.setdefault(r["cell_hash"], []).append(r)
    for h, rs in by_cell.items():
        store.write_table(store.cell_file("metrics", run.sweep, run.run_id, h), metrics_table(rs))
    if examples is not None:
        h = examples.column("cell_hash")[0].as_py()
        store.write_table(store.cell_file("examples", run.sweep, run.run_id, h), examples)
