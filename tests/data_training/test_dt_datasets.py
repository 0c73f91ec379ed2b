"""Every dataset: shapes, value ranges, determinism per seed, class balance, disjoint parts."""

from __future__ import annotations

import math

import pytest
import torch

from adv_core.config.data import (
    BernoulliData,
    DigitsData,
    GaussianData,
    Mnist5kData,
    SpheresData,
    TsiprasData,
)
from adv_core.cost import dataset_size
from adv_core.data import known, load

N_TRAIN, N_EVAL, N_UNLAB = 150, 100, 100  # fits the 362 examples of digits 3-vs-7

CONFIGS = [
    GaussianData(d=16),
    GaussianData(d=16, theta="normal", sigma_c=0.5),
    GaussianData(d=100, theta="dense", r=3.0),
    BernoulliData(d=20, tau=0.3),
    TsiprasData(d=20, p=0.8),
    SpheresData(d=12),
    DigitsData(),
    DigitsData(resolution=16, classes=(3, 7)),
    Mnist5kData(resolution=14),
    Mnist5kData(classes=(0, 1, 2)),
]
IDS = [f"{c.name}-{i}" for i, c in enumerate(CONFIGS)]


def _balanced(y: torch.Tensor, k: int) -> None:
    """Each class fraction within 4.5 binomial standard deviations of 1/k."""
    n = len(y)
    sd = math.sqrt((1 / k) * (1 - 1 / k) / n)
    frac = torch.bincount(y, minlength=k).double() / n
    assert len(frac) == k
    assert ((frac - 1 / k).abs() <= 4.5 * sd).all(), frac


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_shapes_ranges_balance(cfg: object) -> None:
    b = load(cfg, N_TRAIN, N_EVAL, seed=1, n_unlabeled=N_UNLAB)
    assert b.x_train.shape[0] == N_TRAIN and b.x_test.shape[0] == N_EVAL
    assert b.x_unlabeled is not None and b.x_unlabeled.shape[0] == N_UNLAB
    assert math.prod(b.input_shape) == cfg.input_dim  # type: ignore[attr-defined]
    assert b.x_test.shape[1:] == b.input_shape == b.x_unlabeled.shape[1:]
    assert b.x_train.dtype == torch.float32 and b.y_train.dtype == torch.int64
    assert b.n_classes == cfg.n_classes  # type: ignore[attr-defined]
    assert b.bounds == cfg.bounds  # type: ignore[attr-defined]
    for x in (b.x_train, b.x_test, b.x_unlabeled):
        assert torch.isfinite(x).all()
        if b.bounds is not None:
            assert x.min() >= b.bounds[0] and x.max() <= b.bounds[1]
    for y in (b.y_train, b.y_test):
        assert y.min() >= 0 and y.max() < b.n_classes
    _balanced(torch.cat([b.y_train, b.y_test]), b.n_classes)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_deterministic_per_seed(cfg: object) -> None:
    a = load(cfg, 50, 40, seed=3, n_unlabeled=20)
    b = load(cfg, 50, 40, seed=3, n_unlabeled=20)
    c = load(cfg, 50, 40, seed=4, n_unlabeled=20)
    for name in ("x_train", "y_train", "x_test", "y_test", "x_unlabeled"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.x_train, c.x_train)


@pytest.mark.parametrize("cfg", CONFIGS[6:], ids=IDS[6:])
def test_image_parts_are_disjoint_and_sized(cfg: object) -> None:
    b = load(cfg, 100, 100, seed=0, n_unlabeled=100)
    rows = [t.flatten(1) for t in (b.x_train, b.x_test, b.x_unlabeled)]
    assert rows[2] is not None
    allx = torch.cat(rows)
    # Distinct source images: no test image reappears in the training or unlabeled parts.
    dists = torch.cdist(rows[1], torch.cat([rows[0], rows[2]]))
    assert (dists.min(dim=1).values > 0).float().mean() > 0.97
    assert allx.shape[0] == 300
    size = dataset_size(cfg)
    assert size is not None and size >= 300


def test_image_size_table_matches_files() -> None:
    for cfg in (
        DigitsData(),
        DigitsData(classes=(3, 7)),
        Mnist5kData(),
        Mnist5kData(classes=(1, 2)),
    ):
        size = dataset_size(cfg)
        assert size is not None
        load(cfg, size - 10, 10, seed=0)  # exactly what is there fits
        with pytest.raises(ValueError, match="examples"):
            load(cfg, size - 9, 10, seed=0)


def test_distribution_parameters() -> None:
    g = load(GaussianData(d=8, sigma=0.5), 4000, 10, seed=0)
    y_pm = (2 * g.y_train - 1).float()
    assert torch.allclose((y_pm[:, None] * g.x_train).mean(0), g.meta["theta"], atol=0.05)
    assert abs(float((g.x_train - y_pm[:, None] * g.meta["theta"]).std()) - 0.5) < 0.02
    dense = load(GaussianData(d=400, theta="dense", r=3.0), 10, 10, seed=0)
    assert math.isclose(float(dense.meta["theta"].norm()), 3.0, rel_tol=1e-5)
    sc = GaussianData(d=256, sigma_c=2.0)
    assert load(sc, 5, 5, seed=0).meta["sigma"] == pytest.approx(2.0 * 256**0.25)

    bern = load(BernoulliData(d=50, tau=0.4), 4000, 10, seed=0)
    y_pm = (2 * bern.y_train - 1).float()
    agree = (bern.x_train * y_pm[:, None] * bern.meta["theta"]).eq(1).float().mean()
    assert abs(float(agree) - 0.7) < 0.01
    assert set(bern.x_train.unique().tolist()) == {-1.0, 1.0}

    ts = load(TsiprasData(d=30, p=0.85), 4000, 10, seed=0)
    y_pm = (2 * ts.y_train - 1).float()
    assert abs(float((ts.x_train[:, 0] == y_pm).float().mean()) - 0.85) < 0.02
    eta = 3 / math.sqrt(30)
    assert abs(float((ts.x_train[:, 1:] * y_pm[:, None]).mean()) - eta) < 0.02

    sp = load(SpheresData(d=10, r_inner=1.0, r_outer=1.3), 500, 10, seed=0)
    radius = sp.x_train.norm(dim=1)
    want = torch.where(sp.y_train == 1, 1.3, 1.0)
    assert torch.allclose(radius, want, atol=1e-5)


def test_test_set_does_not_depend_on_n_train() -> None:
    cfg = GaussianData(d=8)
    assert torch.equal(load(cfg, 5, 50, seed=2).x_test, load(cfg, 500, 50, seed=2).x_test)


def test_registry_is_loud() -> None:
    assert {"gaussian", "bernoulli", "tsipras", "spheres", "digits", "mnist_5k"} <= set(known())
    assert {"mnist", "fashion_mnist", "cifar10"} <= set(known())
    from adv_core.data.base import get_loader, register

    with pytest.raises(KeyError, match="known"):
        get_loader("imagenet")
    with pytest.raises(KeyError, match="twice"):
        register("gaussian")(lambda *a: None)  # type: ignore[arg-type,return-value]
