"""Explicit randomness (STYLE 7): every random step takes a torch.Generator seeded from the cell.

``derive_seed`` turns any tuple of JSON-able parts (a config, a purpose string, an index) into a
63-bit seed by sha256 of canonical JSON, so the same cell draws the same numbers on any worker.
"""

from __future__ import annotations

import torch

from adv_core.config import canonical_json
from adv_core.config._base import content_hash


def derive_seed(*parts: object) -> int:
    return int(content_hash(list(parts), length=15), 16)


def generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded from ``parts``. Draw on CPU, then move tensors to the device."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(*parts))
    return g


def seed_global(seed: int) -> None:
    """Seed torch's global generators (CPU, and every CUDA device where CUDA exists) for code
    that draws without an explicit generator: what ``torch.manual_seed`` does for these two,
    without its queueing of seeds for accelerator back ends that are not initialised, which
    formats a Python stack trace three times per call (~6 ms per call on a CPU host; four calls
    per cell were a tenth of a tiny cell's time)."""
    torch.random.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


__all__ = ["canonical_json", "derive_seed", "generator", "seed_global"]
