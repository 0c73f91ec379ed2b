"""The sweep spec: YAML -> frozen pydantic models, validated once, here, at the edge.

A dataset, model or training entry may give a list for any scalar field; the lists expand into
the grid (sweeps/grid.py), once per spec (``SweepSpec.grid``). Attack entries are not expanded:
their ``eps`` list is the evaluation plan. ``load_spec`` raises SpecError with one (field path, message) per problem.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

from adv_core.config import AttackConfig, DatasetConfig, Frozen, ModelConfig, TrainingConfig
from sweeps.checks import grid_size_errors, semantic_errors
from sweeps.grid import GRID_FIELDS, Expansion, as_list, combos, expand_fields, grid_union
from sweeps.sources import identify_sources

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"  # a folder name: no separators, no '..'


class SpecError(ValueError):
    """Invalid spec: ``errors`` is a list of (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{p}: {m}" for p, m in errors))


DatasetGrid = grid_union(DatasetConfig, "name")
ModelGrid = grid_union(ModelConfig, "name")
TrainingGrid = grid_union(TrainingConfig, "method")


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
    n_train: Annotated[list[PositiveInt], BeforeValidator(as_list), Field(min_length=1)]
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

    @functools.cached_property
    def grid(self) -> Expansion:
        """The grid fields expanded into concrete configs, once per spec."""
        return expand_fields({f: getattr(self, f) for f in GRID_FIELDS})

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; its expanded grid is kept when ``update`` touches no grid field."""
        copied = super().model_copy(update=update, deep=deep)
        if "grid" in self.__dict__ and not set(update or {}) & set(GRID_FIELDS):
            copied.__dict__["grid"] = self.__dict__["grid"]
        return copied

    def expanded_datasets(self) -> list[Any]:
        return self.grid.flat("datasets")

    def expanded_models(self) -> list[Any]:
        return self.grid.flat("models")

    def expanded_training(self) -> list[Any]:
        return self.grid.flat("training")

    def grid_size(self) -> int:
        """Cells in the grid, computed without materialising it."""
        return math.prod(
            [
                sum(combos(g) for g in self.datasets),
                len(self.n_train),
                sum(combos(g) for g in self.models),
                sum(combos(g) for g in self.training),
                len(self.seeds),
            ]
        )


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
    errors = grid_size_errors(spec, max_cells) or _expansion_errors(spec.grid)
    if not errors:
        errors = semantic_errors(spec)
    if errors:
        raise SpecError(errors)
    attacks, errors = identify_sources(spec.attacks)  # transfer sources enter hashes by content
    if errors:
        raise SpecError(errors)
    return spec.model_copy(update={"attacks": attacks})


def _expansion_errors(grid: Expansion) -> list[tuple[str, str]]:
    """The grid combinations that break a config rule, with their field paths."""
    return [
        (
            f"{field}[{i}]" + ("." + format_loc(tuple(e["loc"])) if e["loc"] else ""),
            e["msg"].removeprefix("Value error, "),
        )
        for field, i, exc in grid.errors
        for e in exc.errors(include_url=False)
    ]


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


# libyaml's parser where PyYAML was built with it (a 100k-cell spec's seed list parses ~10x
# faster); the constructor is the safe one either way.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """A safe loader (no Python tags, nothing executed) that refuses duplicate keys."""

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
