"""Spec validation at the edge: valid specs load; invalid ones exit 2 naming the field and
write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweeps.cli import app
from sweeps.spec import SpecError, load_spec, loads_spec

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
name: ok
seeds: [0]
datasets: [{name: gaussian, d: [4, 8]}]
n_train: [2, 4]
n_eval: 10
models: [{name: linear}, {name: mlp, width: [8, 16]}]
attacks: [{name: pgd, norm: linf, eps: [0.0, 0.1]}]
"""


def test_demo_spec_is_valid() -> None:
    spec = load_spec(ROOT / "sweeps" / "specs" / "demo.yaml")
    assert spec.name == "demo"
    assert spec.grid_size() > 0


def test_lists_expand_into_the_grid() -> None:
    spec = loads_spec(GOOD)
    # 2 dims x 2 n_train x (1 linear + 2 mlp widths) x 1 training x 1 seed
    assert spec.grid_size() == 12
    assert [m.width for m in spec.expanded_models() if m.name == "mlp"] == [8, 16]


def test_the_grid_is_expanded_once_per_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing (with every check) and planning expand each grid entry exactly once."""
    import sweeps.grid
    from sweeps.plan import plan

    calls: list[str] = []
    real = sweeps.grid.expand

    def counting(grid):  # type: ignore[no-untyped-def]
        calls.append(type(grid).__name__)
        return real(grid)

    monkeypatch.setattr(sweeps.grid, "expand", counting)
    spec = loads_spec(GOOD)
    assert len(plan(spec)) == spec.grid_size() == 12
    # one dataset entry, two model entries, the default training entry
    assert len(calls) == 4 and len(set(calls)) == 4, calls


BAD = [
    ("unknown_dataset", GOOD.replace("name: gaussian", "name: imagenet"), "datasets[0]"),
    ("negative_eps", GOOD.replace("eps: [0.0, 0.1]", "eps: [-0.1]"), "attacks[0].eps[0]"),
    ("empty_seeds", GOOD.replace("seeds: [0]", "seeds: []"), "seeds"),
    ("name_with_slash", GOOD.replace("name: ok", "name: a/b"), "name"),
    ("yaml_syntax", "name: [unclosed\n", "<yaml>"),
    ("unknown_key", GOOD + "colour: blue\n", "colour"),
    ("zero_d", GOOD.replace("d: [4, 8]", "d: [0, 8]"), "datasets[0].d[0]"),
    ("duplicate_seeds", GOOD.replace("seeds: [0]", "seeds: [1, 1]"), "seeds"),
    ("unknown_model", GOOD.replace("name: linear", "name: transformer"), "models[0]"),
    ("name_dotdot", GOOD.replace("name: ok", "name: .."), "name"),
]


@pytest.mark.parametrize(("text", "field"), [(t, f) for _, t, f in BAD], ids=[i for i, _, _ in BAD])
def test_invalid_spec_names_the_field(text: str, field: str) -> None:
    with pytest.raises(SpecError) as exc:
        loads_spec(text)
    assert field in [p for p, _ in exc.value.errors], exc.value.errors


@pytest.mark.parametrize(("text", "field"), [(t, f) for _, t, f in BAD], ids=[i for i, _, _ in BAD])
def test_cli_exits_2_and_writes_nothing(tmp_path: Path, text: str, field: str) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    results = tmp_path / "results"
    for cmd in (
        ["validate", str(spec)],
        ["run", str(spec), "--results", str(results), "--workers", "0"],
        ["plan", str(spec), "--results", str(results)],
    ):
        res = CliRunner().invoke(app, cmd)
        assert res.exit_code == 2, (cmd, res.output)
        assert field in res.output
    assert not results.exists()


def test_results_path_that_is_a_file(tmp_path: Path) -> None:
    spec = tmp_path / "ok.yaml"
    spec.write_text(GOOD)
    f = tmp_path / "file"
    f.write_text("x")
    res = CliRunner().invoke(app, ["run", str(spec), "--results", str(f), "--workers", "0"])
    assert res.exit_code == 2
    assert "--results" in res.output


def test_transfer_matrix_sources_are_distinct_attacks() -> None:
    rows = "\n".join(
        f"  - {{name: transfer, norm: linf, eps: [0.1], source_member: {m}}}" for m in (0, 1)
    )
    spec = loads_spec(
        GOOD.replace("attacks: [{name: pgd, norm: linf, eps: [0.0, 0.1]}]", "attacks:\n" + rows)
    )
    assert [a.source_member for a in spec.attacks] == [0, 1]
    same = "\n".join(
        "  - {name: transfer, norm: linf, eps: [0.1], source_member: 0}" for _ in (0, 1)
    )
    with pytest.raises(SpecError) as exc:
        loads_spec(
            GOOD.replace("attacks: [{name: pgd, norm: linf, eps: [0.0, 0.1]}]", "attacks:\n" + same)
        )
    assert "attacks[1]" in [p for p, _ in exc.value.errors]


def test_gpus_per_worker_defaults_to_one_gpu_per_worker() -> None:
    assert loads_spec(GOOD).resources.gpus_per_worker == 1.0
