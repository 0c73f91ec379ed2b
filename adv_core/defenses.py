"""Negative-control defenses: input preprocessing that *looks* robust to naive attacks and is
not (Athalye et al. 2018). They sit in ``Ensemble.preprocess``, so every attack sees them.

- ``Quantize`` (shattered gradients): rounds inputs to ``levels`` steps; its true gradient is
  zero almost everywhere. With ``straight_through`` set (BPDA), the backward pass is the
  identity instead.
- ``GaussianNoise`` (stochastic gradients): adds N(0, sigma^2) noise at every call; EOT
  averages gradients over draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from adv_core.registry import Registry


class Quantize(nn.Module):
    randomized = False

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = float(step)
        self.straight_through = False

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "quantize", "param": self.step}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.round(x / self.step) * self.step
        if self.straight_through:
            return x + (q - x).detach()  # BPDA: forward quantises, backward is the identity
        return q


class GaussianNoise(nn.Module):
    randomized = True

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = float(sigma)

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "noise", "param": self.sigma}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x)


Defense = Callable[[float], nn.Module]
"""defense(param) -> the preprocessing module (``param``: quantisation step or noise sigma)."""

DEFENSES: Registry[Defense] = Registry("defense")
DEFENSES.add("quantize", Quantize)
DEFENSES.add("noise", GaussianNoise)


def build_defense(kind: str, param: float) -> nn.Module:
    return DEFENSES.get(kind)(param)


def preprocess_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a saved preprocessing module from its JSON spec {"kind": ..., "param": ...}."""
    return build_defense(str(spec["kind"]), float(spec["param"]))


@contextmanager
def straight_through(model: nn.Module) -> Iterator[None]:
    """BPDA: within the block, every Quantize in ``model`` passes gradients straight through."""
    mods = [m for m in model.modules() if isinstance(m, Quantize)]
    ens = getattr(model, "_ens", None)  # a MemberView holds its ensemble outside its modules
    if ens:
        mods += [m for m in ens[0].modules() if isinstance(m, Quantize)]
    for m in mods:
        m.straight_through = True
    try:
        yield
    finally:
        for m in mods:
            m.straight_through = False
