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


__all__ = ["canonical_json", "derive_seed", "generator"]
