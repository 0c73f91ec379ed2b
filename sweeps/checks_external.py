"""Spec rules for models the project did not train (``{name: external, ...}`` with training
``{method: none}``): the two come together, one model per cell, and the model's declared
input shape, classes and input box are those of every dataset it is evaluated on."""

from __future__ import annotations

from typing import Any

Errors = list[tuple[str, str]]


def data_shape(cfg: Any) -> tuple[int, ...]:
    """The shape of one input of a dataset config: (C, H, W) for images, (d,) for vectors."""
    if hasattr(cfg, "channels") and hasattr(cfg, "side"):
        return (cfg.channels, cfg.side, cfg.side)
    return (cfg.input_dim,)


def external_errors(
    models: list[list[Any]], training: list[list[Any]], datasets: list[Any], ensemble_size: int
) -> Errors:
    """``models`` / ``training``: the expanded configs of each spec entry, by entry index."""
    ext = [i for i, cfgs in enumerate(models) if any(c.name == "external" for c in cfgs)]
    other = [i for i, cfgs in enumerate(models) if any(c.name != "external" for c in cfgs)]
    none = [i for i, cfgs in enumerate(training) if any(t.method == "none" for t in cfgs)]
    trained = [i for i, cfgs in enumerate(training) if any(t.method != "none" for t in cfgs)]
    errors: Errors = []
    if ext and trained:
        errors.append((f"training[{trained[0]}].method", "an external model is evaluated as "
                       "given: its spec's training entries must all be {method: none}"))  # fmt: skip
    if none and other:
        errors.append((f"models[{other[0]}]", "training {method: none} evaluates a given model: "
                       "every model of the spec must be {name: external, ...}"))  # fmt: skip
    if ext and ensemble_size != 1:
        errors.append(("ensemble_size", "an external model is one trained model: use 1"))
    for i in ext:
        for m in (c for c in models[i] if c.name == "external"):
            errors += _fits_data(i, m, datasets)
    return errors


def _fits_data(i: int, m: Any, datasets: list[Any]) -> Errors:
    for ds in datasets:
        if tuple(m.input_shape) != data_shape(ds):
            return [(f"models[{i}].input_shape", f"{list(m.input_shape)} but dataset "
                     f"{ds.name} gives inputs of shape {list(data_shape(ds))}")]  # fmt: skip
        if m.n_classes != ds.n_classes:
            return [(f"models[{i}].n_classes", f"{m.n_classes} but dataset {ds.name} has "
                     f"{ds.n_classes} classes")]  # fmt: skip
        want = None if ds.bounds is None else [float(b) for b in ds.bounds]
        have = None if m.bounds is None else [float(b) for b in m.bounds]
        if have != want:
            return [(f"models[{i}].bounds", f"{have} but dataset {ds.name}'s inputs lie in "
                     f"{want} (attacks keep perturbed inputs in the data's box)")]  # fmt: skip
    return []
