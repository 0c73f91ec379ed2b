"""Cross-field rules of a spec that field types cannot express (each names its field path).

``grid_size_errors`` runs first and needs no expansion, so a huge grid is refused at once with
an estimate of what it would cost; ``semantic_errors`` runs on the grid expanded once
(``spec.grid``). The rules see the spec through ``SpecView``, so this module does not import
sweeps/spec.py (which calls it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from adv_core.config import canonical_json
from adv_core.cost import dataset_size
from sweeps.checks_external import external_errors
from sweeps.grid import Expansion

Errors = list[tuple[str, str]]


class SpecView(Protocol):
    """What the rules read of a validated spec (sweeps.spec.SweepSpec)."""

    @property
    def max_cells(self) -> int: ...
    @property
    def ensemble_size(self) -> int: ...
    @property
    def n_eval(self) -> int: ...
    @property
    def n_train(self) -> Sequence[int]: ...
    @property
    def attacks(self) -> Sequence[Any]: ...
    @property
    def grid(self) -> Expansion: ...
    def grid_size(self) -> int: ...


def grid_size_errors(spec: SpecView, max_cells: int | None = None) -> Errors:
    """Refuse a grid above ``max_cells`` (the CLI's ``--max-cells``, else the spec's own)."""
    limit = max_cells if max_cells is not None else spec.max_cells
    n = spec.grid_size()
    if n <= limit:
        return []
    targets = 1 + (spec.ensemble_size if spec.ensemble_size > 1 else 0)
    rows = n * targets * sum(len(a.eps) for a in spec.attacks)
    return [
        (
            "<grid>",
            f"the grid has {n:,} cells (~{rows:,} metric rows, {n * spec.ensemble_size:,} "
            f"models to train), more than max_cells = {limit:,}; to confirm, pass "
            f"--max-cells {n} or set max_cells: {n} in the spec",
        )
    ]


def semantic_errors(spec: SpecView) -> Errors:
    """Rules across fields of the expanded (already type-checked) spec."""
    datasets = spec.grid.flat("datasets")
    return (
        _duplicate_errors(spec)
        + _size_errors(spec)
        + _attack_eps_errors(spec, datasets)
        + _training_eps_errors(spec, datasets)
        + external_errors(
            spec.grid.entries["models"], spec.grid.entries["training"], datasets,
            spec.ensemble_size,
        )
    )  # fmt: skip


def _row_key(attack: object) -> tuple[object, ...]:
    """What tells two attacks' rows apart: name, norm and, for transfer, the source member
    (a transfer matrix lists one transfer attack per source member)."""
    return (
        getattr(attack, "name", None),
        getattr(attack, "norm", None),
        getattr(attack, "source_member", None),
    )


def _duplicate_errors(spec: SpecView) -> Errors:
    """A configuration listed twice would plan the same cell twice; an attack with the same
    (name, norm) as another at an eps they share would give rows nobody can tell apart."""
    errors: Errors = []
    for field, entries in spec.grid.entries.items():
        seen: set[str] = set()
        for i, configs in enumerate(entries):
            for cfg in configs:
                key = canonical_json(cfg)
                if key in seen:
                    errors.append((f"{field}[{i}]", f"repeats a configuration: {key}"))
                    break
                seen.add(key)
    for j, b in enumerate(spec.attacks):
        for i, a in enumerate(spec.attacks[:j]):
            if _row_key(a) == _row_key(b) and set(a.eps) & set(b.eps):
                errors.append(
                    (
                        f"attacks[{j}]",
                        f"same attack and norm as attacks[{i}] ({a.name}, {a.norm}) at eps "
                        f"{sorted(set(a.eps) & set(b.eps))}: their rows could not be told apart",
                    )
                )
                break
    return errors


def _size_errors(spec: SpecView) -> Errors:
    """n_train + n_eval (+ unlabeled points) must fit in a finite dataset."""
    unlabeled = max(t.unlabeled_pool for t in spec.grid.flat("training"))
    need = max(spec.n_train) + spec.n_eval + unlabeled
    for i, configs in enumerate(spec.grid.entries["datasets"]):
        for cfg in configs:
            size = dataset_size(cfg)
            if size is not None and need > size:
                extra = f" + n_unlabeled {unlabeled}" if unlabeled else ""
                return [
                    (
                        "n_train",
                        f"datasets[{i}] ({cfg.name}) has {size} examples (after class "
                        f"selection), but max(n_train) {max(spec.n_train)} + n_eval "
                        f"{spec.n_eval}{extra} = {need}",
                    )
                ]
    return []


def max_eps(norm: str, bounds: tuple[float, float], input_dim: int) -> float:
    """The largest perturbation that can matter inside the box ``bounds``^input_dim: the
    diameter of the box in that norm (linf: hi - lo; l2: (hi - lo) sqrt(d); l1: (hi - lo) d).
    An l0 budget counts changed entries, whatever the range: at most d."""
    if norm == "l0":
        return float(input_dim)
    width = bounds[1] - bounds[0]
    if norm == "l2":
        return width * math.sqrt(input_dim)
    if norm == "l1":
        return width * input_dim
    return width


def _eps_error(eps: float, norm: str, cfg: Any) -> str | None:
    if not math.isfinite(eps):
        return f"eps must be finite, got {eps}"
    if cfg.bounds is not None and eps > max_eps(norm, cfg.bounds, cfg.input_dim):
        return (
            f"eps {eps} ({norm}) exceeds the input range {cfg.bounds} of {cfg.name} "
            f"(d = {cfg.input_dim}: at most {max_eps(norm, cfg.bounds, cfg.input_dim):.6g})"
        )
    return None


def _attack_eps_errors(spec: SpecView, datasets: list[Any]) -> Errors:
    errors: Errors = []
    for i, a in enumerate(spec.attacks):
        cap = getattr(a, "max_eps", None)  # a minimum-norm search covers [0, max_eps] only
        if cap is not None and max(a.eps) > cap:
            errors.append(
                (
                    f"attacks[{i}].eps",
                    f"eps {max(a.eps)} exceeds max_eps {cap} of {a.name}: its search covers "
                    f"[0, max_eps] only, so robustness beyond it is unknown; raise max_eps",
                )
            )
            continue
        for cfg in datasets:
            msg = _eps_error(max(a.eps), a.norm, cfg)
            if msg:
                errors.append((f"attacks[{i}].eps", msg))
                break
    return errors


def _training_eps_errors(spec: SpecView, datasets: list[Any]) -> Errors:
    errors: Errors = []
    for i, configs in enumerate(spec.grid.entries["training"]):
        for t in configs:
            if not hasattr(t, "eps"):
                continue
            msg = next((m for cfg in datasets if (m := _eps_error(t.eps, t.norm, cfg))), None)
            if msg:
                errors.append((f"training[{i}].eps", msg))
                break
    return errors
