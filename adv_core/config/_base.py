"""Shared base for every config: frozen, strict, hashable by canonical JSON.

Configs are validated once at the edge (sweeps/spec.py) and travel as frozen objects; no raw
dict goes further. This module imports pydantic only, never torch.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

FLOAT_DIGITS = 12


class Frozen(BaseModel):
    """Base for all configs: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _canonical(value: Any) -> Any:
    """Round floats so that 0.1 + 0.2 and 0.3 hash alike; recurse into containers."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        rounded = round(value, FLOAT_DIGITS)
        return int(rounded) if rounded.is_integer() else rounded
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, BaseModel):
        return _canonical(value.model_dump(mode="json"))
    raise TypeError(f"cannot canonicalise {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, floats rounded to FLOAT_DIGITS digits."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))


def content_hash(value: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON, hex, truncated to ``length`` characters (never hash())."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]
