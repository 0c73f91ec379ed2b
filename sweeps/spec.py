"""The sweep spec: YAML -> frozen pydantic models, validated once, here, at the edge.

A dataset, model or training entry may give a list for any scalar field; the lists expand into
the grid (``expand``). Attack entries are not expanded: their ``eps`` list is the evaluation
plan. ``load_spec`` raises SpecError with one (field path, message) per problem.
"""

from __future__ import annotations

import itertools
import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
)

from adv_core.config import AttackConfig, DatasetConfig, Frozen, ModelConfig, TrainingConfig

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"  # a folder name: no separators, no '..'
_SCALARS = (int, float, str, bool)


class SpecError(ValueError):
    """Invalid spec: ``errors`` is a list of (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{p}: {m}" for p, m in errors))


def _as_list(v: Any) -> Any:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _is_scalar(ann: Any) -> bool:
    if get_origin(ann) is Annotated:
        return _is_scalar(get_args(ann)[0])
    if ann in _SCALARS or get_origin(ann) is Literal:
        return True
    if get_origin(ann) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return all(a is type(None) or _is_scalar(a) for a in get_args(ann))
    return False


def grid_model(cls: type[BaseModel], tag: str) -> type[BaseModel]:
    """A copy of config ``cls`` whose scalar fields take one value or a non-empty list."""
    fields: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        if name == tag or not _is_scalar(info.annotation):
            fields[name] = (info.annotation, info)
            continue
        elem = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        ann = Annotated[list[elem], BeforeValidator(_as_list), Field(min_length=1)]  # type: ignore[valid-type]
        fields[name] = (ann, [info.default] if not info.is_required() else ...)
    grid: type[BaseModel] = create_model(
        f"{cls.__name__}Grid", __base__=Frozen, __doc__=cls.__doc__, **fields
    )
    grid.__config_cls__ = cls  # type: ignore[attr-defined]
    return grid


def _grid_union(union: Any, tag: str) -> Any:
    members = get_args(get_args(union)[0])
    grids = tuple(grid_model(m, tag) for m in members)
    return Annotated[Union[grids], Field(discriminator=tag)]  # noqa: UP007


DatasetGrid = _grid_union(DatasetConfig, "name")
ModelGrid = _grid_union(ModelConfig, "name")
TrainingGrid = _grid_union(TrainingConfig, "method")


def expand(grid: BaseModel) -> Iterator[Any]:
    """Every combination of the list-valued fields, as concrete configs (validated)."""
    cls = grid.__config_cls__  # type: ignore[attr-defined]
    values = grid.model_dump()
    keys = [
        k
        for k, v in values.items()
        if isinstance(v, list) and _is_scalar(cls.model_fields[k].annotation)
    ]
    for combo in itertools.product(*(values[k] for k in keys)):
        yield cls.model_validate({**values, **dict(zip(keys, combo, strict=True))})


class Resources(Frozen):
    """Execution settings: never part of a hash."""

    gpus_per_worker: NonNegativeFloat = 1.0  # used only where the cluster has GPUs
    cpus_per_worker: PositiveFloat = 1.0
    max_retries: Annotated[int, Field(ge=0, le=20)] = 2
    cell_timeout_s: PositiveFloat | None = None
    max_in_flight: PositiveInt | None = None


def _unique(v: list[Any], what: str) -> list[Any]:
    if len(set(v)) != len(v):
        raise ValueError(f"{what} must not repeat")
    return v


class SweepSpec(Frozen):
    """A sweep: the grid datasets x n_train x models x training x seeds, each cell attacked by
    every attack at every eps. See DESIGN.md for the YAML form."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    datasets: Annotated[list[DatasetGrid], Field(min_length=1)]  # type: ignore[valid-type]
    n_train: Annotated[list[PositiveInt], BeforeValidator(_as_list), Field(min_length=1)]
    n_eval: PositiveInt = 1000
    models: Annotated[list[ModelGrid], Field(min_length=1)]  # type: ignore[valid-type]
    training: Annotated[list[TrainingGrid], Field(min_length=1)] = [{"method": "standard"}]  # type: ignore[valid-type]
    ensemble_size: Annotated[int, Field(ge=1, le=256)] = 1
    attacks: Annotated[list[AttackConfig], Field(min_length=1)]
    resources: Resources = Resources()
    max_cells: PositiveInt = 5000

    @field_validator("seeds")
    def _seeds_unique(cls, v: list[int]) -> list[int]:
        return _unique(v, "seeds")

    @field_validator("n_train")
    def _n_unique(cls, v: list[int]) -> list[int]:
        return _unique(v, "n_train")

    def expanded_datasets(self) -> list[Any]:
        return [c for g in self.datasets for c in expand(g)]

    def expanded_models(self) -> list[Any]:
        return [c for g in self.models for c in expand(g)]

    def expanded_training(self) -> list[Any]:
        return [c for g in self.training for c in expand(g)]

    def grid_size(self) -> int:
        """Cells in the grid, computed without materialising it."""
        counts = [
            sum(_combos(g) for g in self.datasets),
            len(self.n_train),
            sum(_combos(g) for g in self.models),
            sum(_combos(g) for g in self.training),
            len(self.seeds),
        ]
        out = 1
        for c in counts:
            out *= c
        return out


def _combos(grid: BaseModel) -> int:
    cls = grid.__config_cls__  # type: ignore[attr-defined]
    out = 1
    for k, v in grid.model_dump().items():
        if isinstance(v, list) and _is_scalar(cls.model_fields[k].annotation):
            out *= len(v)
    return out


_TAGS = {"datasets": "name", "models": "name", "training": "method", "attacks": "name"}


def format_loc(loc: tuple[int | str, ...]) -> str:
    """('datasets', 0, 'gaussian', 'd', 1) -> 'datasets[0].d[1]' (union tags dropped)."""
    out = ""
    prev: int | str | None = None
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif (
            isinstance(prev, int) and i == 2 and loc[0] in _TAGS and part not in ("name", "method")
        ):
            pass  # the discriminated-union tag pydantic inserts after the list index
        elif part.startswith(("function-", "list[", "constrained-")):
            pass
        else:
            out += ("." if out else "") + part
        prev = part
    return out or "<spec>"


def validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    errors = []
    for e in exc.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "union_tag_invalid":
            msg = f"unknown value {e['input'].get(_TAGS.get(str(e['loc'][0]), 'name')) if isinstance(e['input'], dict) else e['input']!r}; expected one of {e['ctx']['expected_tags']}"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field"
        errors.append((format_loc(tuple(e["loc"])), msg))
    return errors


def parse_spec(data: Any, max_cells: int | None = None) -> SweepSpec:
    """Validate a parsed YAML document, expand the grid once, and check cross-field rules.

    Validation is strict (through JSON): ``true`` is not a seed and ``'8'`` is not a dimension.
    ``max_cells`` (the CLI's ``--max-cells``) confirms a grid larger than the spec's own limit;
    the size is checked before anything is expanded, so a huge grid is refused at once.
    """
    if not isinstance(data, dict):
        raise SpecError([("<spec>", "the spec must be a YAML mapping")])
    try:
        spec = SweepSpec.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        raise SpecError(validation_errors(exc)) from None
    from sweeps.checks import grid_size_errors, semantic_errors

    errors = grid_size_errors(spec, max_cells) or _expansion_errors(spec)
    if not errors:
        errors = semantic_errors(spec)
    if errors:
        raise SpecError(errors)
    return spec


def _expansion_errors(spec: SweepSpec) -> list[tuple[str, str]]:
    errors = []
    for field in ("datasets", "models", "training"):
        for i, grid in enumerate(getattr(spec, field)):
            try:
                list(expand(grid))
            except ValidationError as exc:
                for e in exc.errors(include_url=False):
                    errors.append(
                        (
                            f"{field}[{i}]"
                            + ("." + format_loc(tuple(e["loc"])) if e["loc"] else ""),
                            e["msg"].removeprefix("Value error, "),
                        )
                    )
    return errors


def load_spec(path: str | Path, max_cells: int | None = None) -> SweepSpec:
    """Read and validate a spec file. Raises SpecError (never a bare YAML or pydantic error)."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [("<file>", f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start})")]
        ) from None
    except OSError as exc:
        raise SpecError([("<file>", f"cannot read {p}: {exc.strerror or exc}")]) from None
    return loads_spec(text, max_cells)


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader (no Python tags, nothing executed) that refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def loads_spec(text: str, max_cells: int | None = None) -> SweepSpec:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(
            [("<yaml>", f"YAML syntax error{where}: {getattr(exc, 'problem', exc)}")]
        ) from None
    return parse_spec(data, max_cells)


def dump_spec(spec: SweepSpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


ATTACKS_ADAPTER: TypeAdapter[Any] = TypeAdapter(AttackConfig)
