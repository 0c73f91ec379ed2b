"""Loaders for MNIST / Fashion-MNIST (idx-ubyte) and CIFAR-10 (pickle batches) read small files
in torchvision's layout that the test writes; nothing is downloaded."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from adv_core.config.data import Cifar10Data, FashionMnistData, MnistData
from adv_core.data import load
from adv_core.data.local import CIFAR_FILES, CIFAR_FOLDER, SafeUnpickler, read_cifar_batch


def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    n, r, c = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 0x803, n, r, c) + images.astype(np.uint8).tobytes()
    )
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes()
    )


def _fake_images(n: int, seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Label k images have mean brightness about 20 k, so labels and pixels stay paired."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 20, (n, *shape)) + 20 * labels.reshape(-1, *([1] * len(shape)))
    return images.astype(np.uint8), labels


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("data")
    for name, seed in (("MNIST", 0), ("FashionMNIST", 1)):
        raw = base / name / "raw"
        raw.mkdir(parents=True)
        for prefix, n in (("train", 60), ("t10k", 40)):
            _write_idx(raw, prefix, *_fake_images(n, seed + n, (28, 28)))
    folder = base / CIFAR_FOLDER
    folder.mkdir()
    for i, f in enumerate(CIFAR_FILES):
        images, labels = _fake_images(20, 10 + i, (3, 32, 32))
        entry = {b"batch_label": f.encode(), b"labels": labels.tolist(),
                 b"data": images.reshape(20, -1), b"filenames": [b"x.png"] * 20}  # fmt: skip
        (folder / f).write_bytes(pickle.dumps(entry, protocol=2))
    return base


@pytest.mark.parametrize(
    "make, n_total, shape",
    [
        (lambda r: MnistData(data_root=r), 100, (1, 28, 28)),
        (lambda r: FashionMnistData(data_root=r, resolution=14), 100, (1, 14, 14)),
        (lambda r: Cifar10Data(data_root=r), 120, (3, 32, 32)),
        (lambda r: Cifar10Data(data_root=r, resolution=16, classes=(3, 5)), 24, (3, 16, 16)),
    ],
    ids=["mnist", "fashion-14px", "cifar10", "cifar10-3v5-16px"],
)
def test_reads_torchvision_layout(root: Path, make: object, n_total: int, shape: tuple) -> None:
    cfg = make(str(root))  # type: ignore[operator]
    n_eval = n_total // 4
    b = load(cfg, n_total - n_eval, n_eval, seed=0)
    assert b.input_shape == shape and b.n_classes == cfg.n_classes
    x, y = torch.cat([b.x_train, b.x_test]), torch.cat([b.y_train, b.y_test])
    assert x.min() >= 0 and x.max() <= 1
    assert sorted(torch.bincount(y).tolist()) == [n_total // cfg.n_classes] * cfg.n_classes
    if cfg.classes is None and cfg.resolution is None:  # pixels still match their labels
        level = (x.flatten(1).mean(1) * 255 - 9.5) / 20
        assert torch.allclose(level, y.float(), atol=0.3)
    with pytest.raises(ValueError, match="examples"):
        load(cfg, n_total, 1, seed=0)


def test_missing_files_name_the_path_and_never_download(tmp_path: Path) -> None:
    for cfg in (MnistData(data_root=str(tmp_path)), Cifar10Data(data_root=str(tmp_path))):
        with pytest.raises(FileNotFoundError, match="download: true"):
            load(cfg, 5, 5, seed=0)
    assert os.listdir(tmp_path) in ([], ["MNIST"])  # torchvision may create the folder only
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_cifar_reader_refuses_code_in_pickles(tmp_path: Path) -> None:
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_cifar_batch(bad)
    ok = tmp_path / "ok"
    ok.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2]}))
    data, labels = read_cifar_batch(ok)
    assert data.shape == (2, 3, 32, 32) and labels.tolist() == [1, 2]
    assert issubclass(SafeUnpickler, pickle.Unpickler)
