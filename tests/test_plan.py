"""Content hashes: stable, canonical, and blind to execution settings."""

from __future__ import annotations

from adv_core.config import Cell, canonical_json, content_hash
from sweeps.plan import plan
from sweeps.spec import loads_spec

SPEC = """
name: h
seeds: [0, 1]
datasets: [{name: gaussian, d: 8}]
n_train: [4]
n_eval: 10
models: [{name: linear}]
attacks: [{name: fgsm, eps: [0.1, 0.0]}]
"""


def test_canonical_json_is_order_and_float_stable() -> None:
    assert canonical_json({"b": 0.1 + 0.2, "a": [1.0, 2]}) == canonical_json(
        {"a": [1, 2.0], "b": 0.3}
    )
    assert content_hash({"x": 1}) == content_hash({"x": 1.0})


def test_hashes_ignore_resources_and_sweep_name() -> None:
    a = plan(loads_spec(SPEC))
    b = plan(
        loads_spec(
            SPEC.replace("name: h", "name: other")
            + "resources: {cpus_per_worker: 2, gpus_per_worker: 1}"
        )
    )
    assert [c.cell_hash for c in a] == [c.cell_hash for c in b]
    assert [c.train_hash for c in a] == [c.train_hash for c in b]


def test_eval_plan_changes_cell_hash_not_train_hash() -> None:
    a = plan(loads_spec(SPEC))
    b = plan(loads_spec(SPEC.replace("eps: [0.1, 0.0]", "eps: [0.0, 0.2]")))
    assert all(x.train_hash == y.train_hash for x, y in zip(a, b, strict=True))
    assert all(x.cell_hash != y.cell_hash for x, y in zip(a, b, strict=True))


def test_eps_order_does_not_matter_and_cells_round_trip() -> None:
    a = plan(loads_spec(SPEC))
    b = plan(loads_spec(SPEC.replace("eps: [0.1, 0.0]", "eps: [0.0, 0.1]")))
    assert [c.cell_hash for c in a] == [c.cell_hash for c in b]
    cell = a[0]
    assert Cell.from_json(cell.to_json()) == cell
    assert len({c.cell_hash for c in a}) == len(a) == 2
