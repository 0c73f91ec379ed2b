"""Model configs, discriminated on ``name``. Every model returns logits."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, model_validator

from adv_core.config._base import EXECUTION, Frozen


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


FACTORY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safetensors_params(path: str | Path) -> int | None:
    """Number of values stored in a safetensors file, from its JSON header alone (8-byte
    little-endian length, then the header); None when unreadable."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n)) if 0 < n < 1 << 26 else {}
    except (OSError, ValueError):
        return None
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__") or None


class ExternalModel(Frozen):
    """A torch model the project did not train (evaluated with training ``{method: none}``).

    ``factory`` ("package.module:function", the user's own code, importable where the cells
    run) is called with no arguments and returns the ``torch.nn.Module``; ``weights`` (a
    safetensors file, loaded without unpickling) fills it. ``weights`` is a path, an execution
    setting that never enters a hash: the file is identified by ``weights_sha256``, its content
    hash, computed when the spec is read (a changed file is a different model). The factory is
    imported only when a cell runs, never when a spec or a results folder is read.
    """

    name: Literal["external"] = "external"
    factory: Annotated[str, Field(pattern=FACTORY_PATTERN)]
    weights: Annotated[str, EXECUTION]
    input_shape: Annotated[tuple[PositiveInt, ...], Field(min_length=1)]
    n_classes: Annotated[int, Field(ge=2)]
    bounds: tuple[float, float] | None = None
    weights_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None

    @model_validator(mode="before")
    @classmethod
    def _hash_weights(cls, data: Any) -> Any:
        """Fill ``weights_sha256`` from the file when the entry does not give it."""
        if not isinstance(data, dict) or data.get("weights_sha256") is not None:
            return data
        path = data.get("weights")
        if not isinstance(path, str):
            return data  # the field's own validation reports it
        if not path.endswith(".safetensors"):
            raise ValueError(f"weights: {path!r} must be a .safetensors file (no pickles)")
        try:
            digest = file_sha256(path)
        except OSError as exc:
            raise ValueError(f"weights: cannot read {path!r}: {exc.strerror or exc}") from None
        return {**data, "weights_sha256": digest}

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ExternalModel:
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ValueError("bounds must be [lo, hi] with lo < hi")
        if re.fullmatch(FACTORY_PATTERN, self.factory) is None:  # pragma: no cover
            raise ValueError("factory must look like package.module:function")
        return self


ModelConfig = Annotated[
    LinearModel | MlpModel | CnnModel | ResnetModel | ExternalModel, Field(discriminator="name")
]
