"""Models the project did not train: a user's factory builds the module, a safetensors file
fills it (never unpickled), and the result is a one-member ``Ensemble`` like any other model,
so every attack, check and report works on it.

The factory ("package.module:function" of an ``ExternalModel`` config) is imported here, when
a cell runs: only from a spec the user runs. Nothing read from a results folder reaches this
code (``models.ensemble_from_bytes`` refuses external configs).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors.torch import load as st_load
from torch import nn

from adv_core.config.models import ExternalModel


class ExternalModelError(ValueError):
    """The factory or the weights do not give the model the config describes."""


def import_factory(path: str) -> Callable[[], Any]:
    """The callable named ``package.module:function`` (imported as Python imports anything)."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExternalModelError(f"factory {path!r}: cannot import {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ExternalModelError(f"factory {path!r}: {module_name} has no callable {attr!r}")
    return fn


def build(cfg: ExternalModel) -> nn.Module:
    """The factory's module (weights not loaded yet)."""
    module = import_factory(cfg.factory)()
    if not isinstance(module, nn.Module):
        raise ExternalModelError(
            f"factory {cfg.factory!r} returned {type(module).__name__}, not a torch.nn.Module"
        )
    return module


def read_weights(cfg: ExternalModel) -> dict[str, Any]:
    """The tensors of ``cfg.weights``, after checking the file is the one the spec named
    (its sha256): a changed file would make the cell's hash describe another model."""
    data = Path(cfg.weights).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if cfg.weights_sha256 is not None and digest != cfg.weights_sha256:
        raise ExternalModelError(
            f"weights {cfg.weights!r} changed since the spec was read (sha256 {digest[:12]}..., "
            f"expected {cfg.weights_sha256[:12]}...); run the spec again to evaluate the new file"
        )
    try:
        return dict(st_load(data))
    except Exception as exc:  # safetensors raises its own error types for a foreign file
        raise ExternalModelError(
            f"weights {cfg.weights!r} is not a safetensors file: {exc}"
        ) from None


def load(cfg: ExternalModel) -> nn.Module:
    """The factory's module with the weights loaded (strict: every tensor must match)."""
    module = build(cfg)
    try:
        module.load_state_dict(read_weights(cfg), strict=True)
    except RuntimeError as exc:
        raise ExternalModelError(f"weights do not fit the factory's module: {exc}") from None
    return module.eval()
