"""Model configs, discriminated on ``name``. Every model returns logits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from adv_core.config._base import Frozen


class LinearModel(Frozen):
    """Multiclass linear model: logits = W x + b."""

    name: Literal["linear"] = "linear"


class MlpModel(Frozen):
    """Fully connected network of ``depth`` hidden layers of ``width`` units."""

    name: Literal["mlp"] = "mlp"
    width: PositiveInt = 128
    depth: PositiveInt = 2
    activation: Literal["relu", "sigmoid", "tanh"] = "relu"


class CnnModel(Frozen):
    """Small convnet: two conv-relu-pool blocks and a linear head."""

    name: Literal["cnn"] = "cnn"
    channels: PositiveInt = 16
    hidden: PositiveInt = 64


class ResnetModel(Frozen):
    """Small residual network (GroupNorm, so members vectorise) for 32x32 inputs."""

    name: Literal["resnet"] = "resnet"
    width: PositiveInt = 16
    blocks: PositiveInt = 2


ModelConfig = Annotated[
    LinearModel | MlpModel | CnnModel | ResnetModel, Field(discriminator="name")
]
