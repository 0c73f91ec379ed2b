"""Every attack is selectable from a spec and produces metrics rows through run.evaluate, with
intervals, source_member for transfer rows, and sanity flags as data."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter

from adv_core import checks
from adv_core.config import Cell
from adv_core.config.attacks import AttackConfig
from adv_core.models import save_ensemble
from adv_core.results import rows_per_target
from adv_core.run import run_cell

ADAPTER: TypeAdapter = TypeAdapter(AttackConfig)
SPECS = [
    {"name": "fgsm", "eps": [0.0, 0.1]},
    {"name": "fgm", "eps": [0.0, 0.5]},
    {"name": "pgd", "eps": [0.0, 0.1], "steps": 10, "random_start": False},
    {"name": "apgd", "eps": [0.1], "steps": 10, "loss": "auto"},
    {"name": "cw", "eps": [0.5], "steps": 10, "search_steps": 2},
    {"name": "square", "eps": [0.1], "queries": 20},
    {"name": "eot_pgd", "eps": [0.1], "steps": 3, "samples": 2},
    {"name": "bpda", "eps": [0.1], "steps": 3},
    {"name": "transfer", "eps": [0.1], "source_member": 1, "base": {"name": "fgsm"}},
    {"name": "sparse", "eps": [0, 2], "steps": 3},
    {"name": "exact", "eps": [0.0, 0.1]},
    {"name": "min_norm", "eps": [0.1], "base": {"name": "fgsm"}, "max_eps": 0.5},
    {"name": "fooling", "eps": [0.0, 0.1], "steps": 2},
]


def _cell(attacks: list[dict], training: dict | None = None) -> Cell:
    return Cell(
        sweep="t", dataset={"name": "digits", "classes": [3, 7]}, n_train=100, n_eval=60,
        model={"name": "linear"}, training=training or {"method": "standard", "epochs": 5},
        ensemble_size=2, seed=0, attacks=tuple(ADAPTER.validate_python(a) for a in attacks),
    )  # fmt: skip


def test_every_attack_from_a_spec_gives_rows() -> None:
    result_cell = _cell(SPECS)
    result = run_cell(result_cell)
    rows = result.rows
    assert {r["attack"] for r in rows} == {s["name"] for s in SPECS} | {"worst_case"}
    assert len(rows) == 3 * rows_per_target(result_cell.attacks)  # the ensemble, two members
    n_eps = sum(len(s["eps"]) for s in SPECS)
    assert len([r for r in rows if r["attack"] != "worst_case"]) == 3 * n_eps
    for r in rows:
        assert r["status"] == "ok" and 0 <= r["robust_acc"] <= 1
        assert r["robust_acc_lo"] - 1e-9 <= r["robust_acc"] <= r["robust_acc_hi"] + 1e-9
        assert set(r["flags"]) <= set(checks.ALL_FLAGS)
        if r["attack"] != "fooling":
            assert r["robust_acc"] <= r["clean_acc"]
        assert (r["source_member"] is not None) == (r["attack"] == "transfer")
    transfer = [r for r in rows if r["attack"] == "transfer"]
    assert {r["source_member"] for r in transfer} == {1}
    # Exact closed form on a binary linear model: PGD without random start matches it.
    for r in rows:
        if r["attack"] in ("pgd", "fgsm", "min_norm"):
            assert checks.CLOSED_FORM_GAP not in r["flags"], r
    examples = result.examples
    mins = [
        d for a, d in zip(examples["attack"], examples["min_distance"], strict=True) if a == "cw"
    ]
    assert any(d is not None and d > 0 for d in mins), "cw reports distances"


def test_transfer_from_a_saved_ensemble(tmp_path: Path) -> None:
    first = run_cell(_cell([{"name": "fgsm", "eps": [0.1]}]))
    assert first.ensemble is not None
    save_ensemble(first.ensemble, tmp_path / "src")
    spec = {"name": "transfer", "eps": [0.0, 0.1], "source_path": str(tmp_path / "src")}
    rows = run_cell(_cell([spec], {"method": "standard", "epochs": 3})).rows
    transfer = [r for r in rows if r["attack"] == "transfer"]
    assert transfer and all(r["source_member"] == -1 for r in transfer)
    assert rows[0]["robust_acc"] == rows[0]["clean_acc"]


def test_randomized_model_flags_attacks_without_eot() -> None:
    training = {"method": "standard", "epochs": 3, "defense": "noise", "defense_param": 0.3}
    specs = [
        {"name": "pgd", "eps": [0.1], "steps": 2},
        {"name": "eot_pgd", "eps": [0.1], "steps": 2, "samples": 2},
    ]
    rows = run_cell(_cell(specs, training)).rows
    by = {r["attack"]: r["flags"] for r in rows if r["member"] == -1}
    assert checks.RANDOMIZED_WITHOUT_EOT in by["pgd"]
    assert checks.RANDOMIZED_WITHOUT_EOT not in by["eot_pgd"]


def test_quantized_model_flags_zero_gradients() -> None:
    training = {"method": "standard", "epochs": 3, "defense": "quantize", "defense_param": 0.5}
    rows = run_cell(_cell([{"name": "pgd", "eps": [0.1], "steps": 2}], training)).rows
    assert all(checks.ZERO_GRADIENTS in r["flags"] for r in rows)


@pytest.mark.parametrize(
    ("evals", "expected"),
    [
        ([("linf", True, (0.1,), [50]), ("linf", False, (0.1,), [30])], {0, 1}),
        ([("linf", True, (0.1,), [30]), ("linf", False, (0.1,), [50])], set()),
        ([("linf", True, (0.1,), [50]), ("l2", False, (0.1,), [30])], set()),
        ([("linf", True, (0.1, 0.2), [50, 40]), ("linf", False, (0.2,), [39])], set()),
    ],
    ids=["black-wins", "white-wins", "other-norm", "within-ties"],
)
def test_black_box_beats_white_box_table(evals: list, expected: set) -> None:
    assert set(checks.black_box_beats_white_box_table(evals, 100)) == expected


def test_unknown_attack_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="does not match any of the expected tags"):
        ADAPTER.validate_python({"name": "deepfool"})
    with pytest.raises(ValueError, match="differs"):
        ADAPTER.validate_python({"name": "min_norm", "norm": "l2", "base": {"name": "pgd"}})
