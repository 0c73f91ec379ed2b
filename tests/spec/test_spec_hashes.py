"""Content hashes: stable, canonical, and blind to execution settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from adv_core.config import Cell, canonical_json, content_hash
from sweeps.plan import plan
from sweeps.spec import SpecError, loads_spec
from tests.specs import tiny_spec

SPEC = tiny_spec(
    name="h",
    datasets=[{"name": "gaussian", "d": 8}],
    n_train=[4],
    n_eval=10,
    training=None,
    ensemble_size=None,
    attacks=[{"name": "fgsm", "eps": [0.1, 0.0]}],
    resources=None,
)


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


IMAGES = """
name: img
seeds: [0]
datasets: [{name: mnist, data_root: DATA, download: DOWNLOAD, classes: [0, 1]}]
n_train: [4]
n_eval: 10
models: [{name: linear}]
attacks: [{name: fgsm, eps: [0.1]}]
"""


def _hashes(text: str) -> tuple[list[str], list[str], str]:
    from sweeps.runner import default_run_id

    spec = loads_spec(text)
    cells = plan(spec)
    return [c.train_hash for c in cells], [c.cell_hash for c in cells], default_run_id(spec)


def test_moving_the_data_folder_keeps_every_hash() -> None:
    """data_root and download are execution settings: another folder (same files) or turning
    download on gives the same train and cell hashes and the same default run id, so nothing
    re-runs; the class selection is data and does change them."""
    at = IMAGES.replace("DOWNLOAD", "false")
    here = _hashes(at.replace("DATA", "/data/mnist"))
    moved = _hashes(at.replace("DATA", "/mnt/elsewhere/mnist").replace("false", "true"))
    other = _hashes(at.replace("DATA", "/data/mnist").replace("[0, 1]", "[0, 2]"))
    assert here == moved
    assert all(a != b for a, b in zip(here, other, strict=True))
    cell = plan(loads_spec(at.replace("DATA", "/mnt/elsewhere/mnist")))[0]
    assert cell.dataset.data_root == "/mnt/elsewhere/mnist"  # still there for the worker
    assert Cell.from_json(cell.to_json()) == cell


TRANSFER = """
name: tr
seeds: [0]
datasets: [{name: gaussian, d: 4}]
n_train: [4]
n_eval: 10
models: [{name: linear}]
attacks: [{name: transfer, eps: [0.1], source_path: SOURCE}]
"""


def test_a_transfer_source_is_identified_by_its_weights(tmp_path: Path) -> None:
    """The same weights file in another folder gives the same hashes; different weights at the
    same path give a new cell hash (the trained target is unchanged); an unreadable source is
    an invalid spec naming the field."""
    from adv_core.config import ModelConfig
    from adv_core.models import WEIGHTS_FILE, new_ensemble, save_ensemble

    def source(folder: Path, seed: int) -> str:
        model = TypeAdapter(ModelConfig).validate_python({"name": "linear"})
        save_ensemble(new_ensemble(model, (4,), 2, 1, seed), folder)
        return str(folder)

    first = _hashes(TRANSFER.replace("SOURCE", source(tmp_path / "a", 0)))
    # a temporary left in the folder by a killed copy is never read as the weights
    (tmp_path / "a" / f".tmp-{'0' * 32}-{WEIGHTS_FILE}").write_bytes(b"half a file")
    assert _hashes(TRANSFER.replace("SOURCE", str(tmp_path / "a"))) == first
    moved = tmp_path / "deep" / "b"
    moved.mkdir(parents=True)
    shutil.copytree(tmp_path / "a", moved, dirs_exist_ok=True)
    assert _hashes(TRANSFER.replace("SOURCE", str(moved))) == first
    (moved / WEIGHTS_FILE).unlink()
    retrained = _hashes(TRANSFER.replace("SOURCE", source(moved, 1)))
    assert retrained[0] == first[0] and retrained[1] != first[1] and retrained[2] != first[2]
    with pytest.raises(SpecError) as exc:
        loads_spec(TRANSFER.replace("SOURCE", str(tmp_path / "missing")))
    assert [p for p, _ in exc.value.errors] == ["attacks[0].source_path"]


def test_the_joined_hash_texts_equal_the_generic_canonical_json() -> None:
    """A cell's hashes are joined from its configs' cached texts; they must equal the generic
    encoding (content_hash of train_part / hash_part) for every cell of every bundled spec."""
    from adv_core.config._base import content_hash
    from sweeps.plan import plan
    from sweeps.spec import load_spec

    specs = sorted((Path(__file__).resolve().parents[2] / "sweeps" / "specs").glob("*.yaml"))
    checked = 0
    for f in specs:
        for cell in plan(load_spec(str(f), 10**6))[:500]:
            assert cell.train_hash == content_hash(cell.train_part()), f
            assert cell.cell_hash == content_hash(cell.hash_part()), f
            checked += 1
    assert checked > 1000


def test_planned_cells_equal_fully_validated_cells() -> None:
    """plan() validates its first cell and constructs the rest from the validated spec: each
    must equal (fields, dump, hashes) the cell Cell(...) validates from the same values."""
    from adv_core.config import Cell
    from sweeps.plan import plan
    from sweeps.spec import load_spec

    specs = sorted((Path(__file__).resolve().parents[2] / "sweeps" / "specs").glob("*.yaml"))
    for f in specs:
        for cell in plan(load_spec(str(f), 10**6))[:300]:
            full = Cell.model_validate(cell.model_dump())
            assert full == cell and full.model_dump() == cell.model_dump(), f
            assert (full.cell_hash, full.train_hash) == (cell.cell_hash, cell.train_hash), f
            assert Cell.from_json(cell.to_json()) == cell
