"""The grid machinery of a spec: config models whose scalar fields take lists, and their
expansion into concrete configs.

``grid_model(cls)`` copies a config class so that every scalar field accepts one value or a
non-empty list; ``expand`` yields every combination as a validated config; ``Expansion`` holds
the expanded entries of a spec's grid fields, computed once per parse (``SweepSpec.grid``) and
shared by the checks and the planner. Nothing here knows the spec: it imports only pydantic."""

from __future__ import annotations

import itertools
import math
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, create_model

from adv_core.config import Frozen, execution_fields

_SCALARS = (int, float, str, bool)


def as_list(v: Any) -> Any:
    """One value or a list -> a list (the before-validator of every grid field)."""
    return list(v) if isinstance(v, (list, tuple)) else [v]


def is_scalar(ann: Any) -> bool:
    """Whether a field annotation is a scalar (or a union / Literal of scalars): such a field
    may give a list in a spec, and the list expands into the grid."""
    if get_origin(ann) is Annotated:
        return is_scalar(get_args(ann)[0])
    if ann in _SCALARS or get_origin(ann) is Literal:
        return True
    if get_origin(ann) in (typing.Union, types.UnionType):
        return all(a is type(None) or is_scalar(a) for a in get_args(ann))
    return False


def grid_model(cls: type[BaseModel], tag: str) -> type[BaseModel]:
    """A copy of config ``cls`` whose scalar fields take one value or a non-empty list
    (execution settings such as ``data_root`` take one value: they are not grid axes)."""
    fields: dict[str, Any] = {}
    single = execution_fields(cls)
    for name, info in cls.model_fields.items():
        if name == tag or name in single or not is_scalar(info.annotation):
            fields[name] = (info.annotation, info)
            continue
        elem = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        ann = Annotated[list[elem], BeforeValidator(as_list), Field(min_length=1)]  # type: ignore[valid-type]
        fields[name] = (ann, [info.default] if not info.is_required() else ...)
    grid: type[BaseModel] = create_model(
        f"{cls.__name__}Grid", __base__=Frozen, __doc__=cls.__doc__, **fields
    )
    grid.__config_cls__ = cls  # type: ignore[attr-defined]
    return grid


def grid_union(union: Any, tag: str) -> Any:
    """The grid form of a discriminated union of configs (``Annotated[A | B, Field(...)]``)."""
    members = get_args(get_args(union)[0])
    grids = tuple(grid_model(m, tag) for m in members)
    return Annotated[Union[grids], Field(discriminator=tag)]  # noqa: UP007


def _list_fields(grid: BaseModel) -> tuple[dict[str, Any], list[str]]:
    cls = grid.__config_cls__  # type: ignore[attr-defined]
    values = grid.model_dump()
    keys = [
        k
        for k, v in values.items()
        if isinstance(v, list) and is_scalar(cls.model_fields[k].annotation)
    ]
    return values, keys


def expand(grid: BaseModel) -> Iterator[Any]:
    """Every combination of the list-valued fields, as concrete configs (validated; a
    combination that breaks a config rule raises pydantic's ValidationError)."""
    cls = grid.__config_cls__  # type: ignore[attr-defined]
    values, keys = _list_fields(grid)
    for combo in itertools.product(*(values[k] for k in keys)):
        yield cls.model_validate({**values, **dict(zip(keys, combo, strict=True))})


def combos(grid: BaseModel) -> int:
    """How many configs ``expand(grid)`` yields, without building them."""
    values, keys = _list_fields(grid)
    return math.prod(len(values[k]) for k in keys)


GRID_FIELDS = ("datasets", "models", "training")


@dataclass(frozen=True)
class Expansion:
    """The expanded entries of the grid fields: ``entries[field][i]`` are the configs of
    ``field[i]`` in the spec; ``errors`` the combinations that broke a config rule, as
    (field, entry index, error)."""

    entries: dict[str, list[list[Any]]]
    errors: list[tuple[str, int, ValidationError]]

    def flat(self, field: str) -> list[Any]:
        """Every config of one grid field, in spec order."""
        return [c for entry in self.entries[field] for c in entry]


def expand_fields(fields: dict[str, Sequence[BaseModel]]) -> Expansion:
    """Expand every entry of every grid field once; a failing entry contributes no configs
    and one error."""
    entries: dict[str, list[list[Any]]] = {}
    errors: list[tuple[str, int, ValidationError]] = []
    for field, grids in fields.items():
        entries[field] = []
        for i, grid in enumerate(grids):
            try:
                entries[field].append(list(expand(grid)))
            except ValidationError as exc:
                entries[field].append([])
                errors.append((field, i, exc))
    return Expansion(entries, errors)
