"""Shared base for every config: frozen, strict, hashable by canonical JSON.

Configs are validated once at the edge (sweeps/spec.py) and travel as frozen objects; no raw
dict goes further. This module imports pydantic only, never torch.

A field annotated ``Annotated[T, EXECUTION]`` is an execution setting (where to read data from,
whether to download it, which file holds a transfer source): it travels with the config and is
used at run time, but never enters a content hash (``canonical_json`` of a config drops it).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from functools import cache, cached_property
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict

FLOAT_DIGITS = 12


class ExecutionSetting:
    """Field marker (``Annotated[str, EXECUTION]``): used at run time, never hashed."""

    def __repr__(self) -> str:
        return "EXECUTION"


EXECUTION: Final = ExecutionSetting()


@cache
def execution_fields(cls: type[BaseModel]) -> frozenset[str]:
    """The fields of config class ``cls`` marked as execution settings."""
    return frozenset(
        name
        for name, info in cls.model_fields.items()
        if any(isinstance(m, ExecutionSetting) for m in info.metadata)
    )


def _holds_model(value: Any) -> bool:
    return isinstance(value, BaseModel) or (
        isinstance(value, (list, tuple)) and any(isinstance(v, BaseModel) for v in value)
    )


class Frozen(BaseModel):
    """Base for all configs: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, defer_build=True)

    @cached_property
    def canonical_form(self) -> Any:
        """``_canonical`` of this config, computed once: configs are frozen, and a cell's hashes
        and seeds canonicalise the same configs many times per cell (issue 17, item 4)."""
        return _canonical_model(self)

    @cached_property
    def canonical_text(self) -> str:
        """``canonical_json`` of this config, computed once (a cell's hash text is built from
        its configs' texts, so hashing a large plan costs string joins, not re-encoding)."""
        return _dumps(self.canonical_form)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy without the cached values (``canonical_form``, a cell's hashes): they belong to
        the fields of the original."""
        copied = super().model_copy(update=update, deep=deep)
        for name in _cached_names(type(self)):
            copied.__dict__.pop(name, None)
        return copied


@cache
def _cached_names(cls: type) -> tuple[str, ...]:
    return tuple(
        name for k in cls.__mro__ for name, v in vars(k).items() if isinstance(v, cached_property)
    )


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
    if isinstance(value, Frozen):
        return value.canonical_form
    if isinstance(value, BaseModel):
        return _canonical_model(value)
    raise TypeError(f"cannot canonicalise {type(value).__name__}")


def _canonical_model(value: BaseModel) -> dict[str, Any]:
    """A config's JSON form, less execution settings, at every depth."""
    skip = execution_fields(type(value))
    return {
        k: _canonical(getattr(value, k) if _holds_model(getattr(value, k, None)) else v)
        for k, v in value.model_dump(mode="json").items()
        if k not in skip
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, floats rounded to FLOAT_DIGITS digits; configs
    (pydantic models, at any depth) without their execution settings. The text is that of
    ``json.dumps(_canonical(value), sort_keys=True)``, composed from the configs' cached texts."""
    if isinstance(value, Frozen):
        return value.canonical_text
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(_string(k) + ":" + canonical_json(v) for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if value is True or value is False or value is None:
        return "true" if value else "false" if value is False else "null"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return _string(value)
    return _dumps(_canonical(value))


@cache
def _string(text: str) -> str:
    """A JSON string (keys and labels repeat across a plan's cells: encoded once each)."""
    return json.dumps(text)


def content_hash(value: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON, hex, truncated to ``length`` characters (never hash())."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]
