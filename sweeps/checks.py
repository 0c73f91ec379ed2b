"""Cross-field rules of a spec that field types cannot express (each names its field path)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adv_core.cost import dataset_size

if TYPE_CHECKING:
    from sweeps.spec import SweepSpec


def semantic_errors(spec: SweepSpec) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    datasets = spec.expanded_datasets()
    for i, grid in enumerate(spec.datasets):
        from sweeps.spec import expand

        for cfg in expand(grid):
            size = dataset_size(cfg)
            if size is not None:
                need = max(spec.n_train) + spec.n_eval
                if need > size:
                    errors.append(
                        (
                            f"datasets[{i}]",
                            f"{cfg.name} has {size} examples (after class selection), but max(n_train) + n_eval = {need}",
                        )
                    )
                    break
    for i, a in enumerate(spec.attacks):
        for cfg in datasets:
            if (
                cfg.bounds is not None
                and a.norm == "linf"
                and max(a.eps) > cfg.bounds[1] - cfg.bounds[0]
            ):
                errors.append(
                    (
                        f"attacks[{i}].eps",
                        f"eps {max(a.eps)} exceeds the input range {cfg.bounds} of {cfg.name}",
                    )
                )
                break
    n = spec.grid_size()
    if n > spec.max_cells:
        errors.append(
            (
                "<grid>",
                f"the grid has {n} cells, more than max_cells = {spec.max_cells}; raise max_cells in the spec to confirm",
            )
        )
    return errors
