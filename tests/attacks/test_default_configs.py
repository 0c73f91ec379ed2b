"""Every registered attack's default config, named in a spec on a bounded dataset (digits),
passes ``sweeps validate`` and runs to ``ok`` rows (issue 13: the sparse attack's own default
l0 budgets were refused as "exceeding the input range")."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from adv_core import attacks
from adv_core.run import run_cell
from sweeps.cli import app
from sweeps.plan import plan
from sweeps.spec import load_spec


def _spec(names: list[str]) -> str:
    listed = ", ".join(f"{{name: {n}}}" for n in names)
    return (
        "name: defaults\nseeds: [0]\ndatasets: [{name: digits, classes: [3, 7]}]\n"
        "n_train: [100]\nn_eval: 12\nmodels: [{name: linear}]\n"
        "training: [{method: standard, epochs: 3}]\n"
        f"attacks: [{listed}]\n"
    )


def test_every_default_attack_validates_and_runs_on_digits(tmp_path: Path) -> None:
    names = attacks.known()
    spec = tmp_path / "defaults.yaml"
    spec.write_text(_spec(names))
    res = CliRunner().invoke(app, ["validate", str(spec)])
    assert res.exit_code == 0, res.output
    (cell,) = plan(load_spec(spec))
    rows = run_cell(cell).rows
    assert {r["attack"] for r in rows} >= set(names)
    for r in rows:
        assert r["status"] == "ok", r
        assert 0 <= r["robust_acc"] <= 1, r


def test_l0_budget_counts_entries(tmp_path: Path) -> None:
    spec = tmp_path / "l0.yaml"
    ok = _spec(["exact"]).replace("{name: exact}", "{name: sparse, eps: [0, 4, 64]}")
    spec.write_text(ok)
    assert CliRunner().invoke(app, ["validate", str(spec)]).exit_code == 0
    spec.write_text(ok.replace("64]", "65]"))  # digits has d = 64 entries
    res = CliRunner().invoke(app, ["validate", str(spec)])
    assert res.exit_code == 2 and "error attacks[0].eps: " in res.output, res.output
