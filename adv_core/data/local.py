"""MNIST, Fashion-MNIST and CIFAR-10 read from local files in torchvision's layout.

Layout under the config's ``data_root`` (exactly what torchvision writes):

    MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
    FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
    cifar-10-batches-py/{data_batch_1..5,test_batch}

Nothing is downloaded unless the config sets ``download: true``; then torchvision fetches the
files (checking their md5 sums) into that layout. torchvision is imported lazily, only here.
The train and test files are pooled; ``split_images`` draws the cell's disjoint parts.

Safety: MNIST files are parsed by torchvision's idx reader (no pickle). CIFAR-10 batches are
Python pickles. torchvision unpickles them only after their md5 sums match the official
release; we read them with ``SafeUnpickler``, which resolves no global except the few numpy
array constructors (and ``_codecs.encode`` for Python-2 byte strings) that a CIFAR batch needs,
so a crafted file cannot run code, whatever its checksum.
"""

from __future__ import annotations

import io
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adv_core.config.data import Cifar10Data, FashionMnistData, MnistData
from adv_core.data.base import DataBundle, register
from adv_core.data.images import split_images

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_TV_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}

_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global outside ``_SAFE_GLOBALS`` (Python docs,
    "Restricting Globals"): plain containers, numbers, strings and numpy arrays only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def safe_unpickle(data: bytes) -> Any:
    return SafeUnpickler(io.BytesIO(data), encoding="latin1").load()


def _missing(path: Path, name: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{name}: {path} not found; put the files there in torchvision's layout "
        "or set download: true in the dataset config"
    )


@lru_cache(maxsize=2)
def _idx_raw(name: str, root: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 28, 28) in [0, 1], (N,) int64: train then test files of MNIST / Fashion-MNIST."""
    from torchvision import datasets

    cls = getattr(datasets, _TV_NAMES[name])
    raw = Path(root) / _TV_NAMES[name] / "raw"
    xs, ys = [], []
    for train in (True, False):
        try:
            ds = cls(root, train=train, download=download)
        except RuntimeError as exc:  # torchvision's "Dataset not found"
            raise _missing(raw, name) from exc
        xs.append(ds.data.float().div(255.0)[:, None])
        ys.append(ds.targets.long())
    return torch.cat(xs), torch.cat(ys)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> (uint8 (N, 3, 32, 32), int64 (N,))."""
    entry = safe_unpickle(path.read_bytes())
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: not a CIFAR batch (a dict was expected)")
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(entry["labels"], dtype=np.int64)
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


@lru_cache(maxsize=1)
def _cifar_raw(root: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    folder = Path(root) / CIFAR_FOLDER
    if download and not all((folder / f).is_file() for f in CIFAR_FILES):
        from torchvision import datasets

        datasets.CIFAR10(root, train=True, download=True)
    xs, ys = [], []
    for f in CIFAR_FILES:
        if not (folder / f).is_file():
            raise _missing(folder / f, "cifar10")
        x, y = read_cifar_batch(folder / f)
        xs.append(x)
        ys.append(y)
    x_all = torch.from_numpy(np.concatenate(xs)).float().div(255.0)  # (N, 3, 32, 32)
    return x_all, torch.from_numpy(np.concatenate(ys))


@register("mnist")
def load_mnist(
    cfg: MnistData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    x, y = _idx_raw("mnist", cfg.data_root, cfg.download)
    return split_images(cfg, x, y, n_train, n_eval, n_unlabeled, seed)


@register("fashion_mnist")
def load_fashion_mnist(
    cfg: FashionMnistData, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    x, y = _idx_raw("fashion_mnist", cfg.data_root, cfg.download)
    return split_images(cfg, x, y, n_train, n_eval, n_unlabeled, seed)


@register("cifar10")
def load_cifar10(
    cfg: Cifar10Data, n_train: int, n_eval: int, n_unlabeled: int, seed: int
) -> DataBundle:
    x, y = _cifar_raw(cfg.data_root, cfg.download)
    return split_images(cfg, x, y, n_train, n_eval, n_unlabeled, seed)
