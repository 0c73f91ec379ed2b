"""The bad-input corpus: malformed specs. Each one makes ``validate``, ``plan`` and ``run`` exit 2
with a message that names the field path, and none of them writes anything anywhere.

Every case is a (readable id, spec text, field path, extra text) row: the path must appear as
``path:`` at the start of an error line, and the extra text (when given) in the message.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweeps.cli import app
from sweeps.spec import SpecError, loads_spec

GOOD = """\
name: ok
seeds: [0]
datasets: [{name: gaussian, d: [4, 8]}]
n_train: [2, 4]
n_eval: 10
models: [{name: linear}, {name: mlp, width: [8, 16]}]
attacks: [{name: pgd, norm: linf, eps: [0.0, 0.1]}]
"""
DIGITS = GOOD.replace("{name: gaussian, d: [4, 8]}", "{name: digits, classes: [3, 7]}")


def sub(base: str, old: str, new: str) -> str:
    assert old in base, old
    return base.replace(old, new)


def huge_grid() -> str:
    d = ", ".join(str(i) for i in range(1, 1001))
    sigma = ", ".join(str(1 + i / 1000) for i in range(1000))
    return sub(GOOD, "d: [4, 8]", f"d: [{d}], sigma: [{sigma}]")


CASES: list[tuple[str, str, str, str]] = [
    # wrong types (validation is strict: no bool-as-int, no string-as-number)
    ("seeds_not_a_list", sub(GOOD, "seeds: [0]", "seeds: zero"), "seeds", ""),
    ("seed_is_bool", sub(GOOD, "seeds: [0]", "seeds: [true]"), "seeds[0]", "integer"),
    ("d_is_string", sub(GOOD, "d: [4, 8]", "d: '8'"), "datasets[0].d[0]", "integer"),
    ("n_eval_is_word", sub(GOOD, "n_eval: 10", "n_eval: ten"), "n_eval", "integer"),
    ("n_train_fractional", sub(GOOD, "n_train: [2, 4]", "n_train: [2.5]"), "n_train[0]", ""),
    ("name_is_int", sub(GOOD, "name: ok", "name: 12"), "name", "string"),
    (
        "models_is_mapping",
        sub(GOOD, "models: [{name: linear}, ", "models: {name: linear}\nx: ["),
        "models",
        "",
    ),
    ("eps_is_word", sub(GOOD, "eps: [0.0, 0.1]", "eps: [fast]"), "attacks[0].eps[0]", "number"),
    # unknown names, at every level
    ("unknown_dataset", sub(GOOD, "name: gaussian", "name: imagenet"), "datasets[0]", "gaussian"),
    ("unknown_model", sub(GOOD, "name: linear", "name: transformer"), "models[0]", "linear"),
    ("unknown_training_method", GOOD + "training: [{method: magic}]\n", "training[0]", "standard"),
    ("unknown_attack", sub(GOOD, "name: pgd", "name: deepfool"), "attacks[0]", "fgsm"),
    ("unknown_attack_norm", sub(GOOD, "norm: linf", "norm: l7"), "attacks[0].norm", "linf"),
    (
        "unknown_training_norm",
        GOOD + "training: [{method: pgd_at, norm: l7}]\n",
        "training[0].norm[0]",
        "linf",
    ),
    (
        "unknown_theta",
        sub(GOOD, "d: [4, 8]", "d: [4, 8], theta: spiky"),
        "datasets[0].theta[0]",
        "pm1",
    ),
    # unknown keys, at every level
    ("unknown_top_level_key", GOOD + "colour: blue\n", "colour", "unknown field"),
    (
        "unknown_dataset_key",
        sub(GOOD, "d: [4, 8]", "d: [4, 8], dims: 3"),
        "datasets[0].dims",
        "unknown field",
    ),
    (
        "unknown_model_key",
        sub(GOOD, "{name: linear}", "{name: linear, width: 3}"),
        "models[0].width",
        "unknown field",
    ),
    (
        "unknown_training_key",
        GOOD + "training: [{method: standard, epoch: 3}]\n",
        "training[0].epoch",
        "unknown field",
    ),
    (
        "unknown_attack_key",
        sub(GOOD, "norm: linf,", "norm: linf, step: 3,"),
        "attacks[0].step",
        "unknown field",
    ),
    ("unknown_resources_key", GOOD + "resources: {gpus: 1}\n", "resources.gpus", "unknown field"),
    # out-of-range numbers
    ("eps_negative", sub(GOOD, "eps: [0.0, 0.1]", "eps: [-0.1]"), "attacks[0].eps[0]", ""),
    ("eps_infinite", sub(GOOD, "eps: [0.0, 0.1]", "eps: [0.0, .inf]"), "attacks[0].eps", "finite"),
    (
        "eps_above_linf_range",
        sub(DIGITS, "eps: [0.0, 0.1]", "eps: [0.0, 1.5]"),
        "attacks[0].eps",
        "input range",
    ),
    (
        "eps_above_l2_range",
        sub(DIGITS, "norm: linf, eps: [0.0, 0.1]", "norm: l2, eps: [0.0, 9.0]"),
        "attacks[0].eps",
        "at most 8",
    ),
    (
        "train_eps_above_range",
        DIGITS + "training: [{method: pgd_at, eps: 2.0}]\n",
        "training[0].eps",
        "input range",
    ),
    (
        "n_train_exceeds_dataset",
        sub(DIGITS, "n_train: [2, 4]", "n_train: [2, 5000]"),
        "n_train",
        "examples (after class selection)",
    ),
    (
        "n_unlabeled_exceeds_dataset",
        DIGITS + "training: [{method: rst, n_unlabeled: 400}]\n",
        "n_train",
        "n_unlabeled",
    ),
    ("d_zero", sub(GOOD, "d: [4, 8]", "d: [0, 8]"), "datasets[0].d[0]", "greater than 0"),
    (
        "resolution_zero",
        sub(DIGITS, "classes: [3, 7]", "classes: [3, 7], resolution: 0"),
        "datasets[0].resolution[0]",
        "",
    ),
    ("max_retries_negative", GOOD + "resources: {max_retries: -1}\n", "resources.max_retries", ""),
    (
        "cell_timeout_zero",
        GOOD + "resources: {cell_timeout_s: 0}\n",
        "resources.cell_timeout_s",
        "",
    ),
    # duplicates and empty lists
    ("duplicate_seeds", sub(GOOD, "seeds: [0]", "seeds: [1, 1]"), "seeds", "repeat"),
    ("duplicate_d", sub(GOOD, "d: [4, 8]", "d: [4, 4]"), "datasets[0]", "repeats"),
    (
        "duplicate_attack",
        sub(GOOD, "eps: [0.0, 0.1]}]", "eps: [0.0, 0.1]}, {name: pgd, steps: 50, eps: [0.1]}]"),
        "attacks[1]",
        "told apart",
    ),
    ("empty_seeds", sub(GOOD, "seeds: [0]", "seeds: []"), "seeds", ""),
    (
        "empty_datasets",
        sub(GOOD, "datasets: [{name: gaussian, d: [4, 8]}]", "datasets: []"),
        "datasets",
        "",
    ),
    ("empty_d", sub(GOOD, "d: [4, 8]", "d: []"), "datasets[0].d", ""),
    ("empty_eps", sub(GOOD, "eps: [0.0, 0.1]", "eps: []"), "attacks[0].eps", ""),
    (
        "missing_attacks",
        sub(GOOD, "attacks: [{name: pgd, norm: linf, eps: [0.0, 0.1]}]\n", ""),
        "attacks",
        "required",
    ),
    # YAML itself
    ("yaml_syntax_error", "name: [unclosed\n", "<yaml>", "line"),
    ("yaml_duplicate_key", GOOD + "n_eval: 20\n", "<yaml>", "duplicate key 'n_eval'"),
    (
        "yaml_python_tag",
        "!!python/object/apply:os.system ['touch pwned']\n",
        "<yaml>",
        "constructor",
    ),
    ("yaml_not_a_mapping", "- name: ok\n", "<spec>", "mapping"),
    ("yaml_empty", "", "<spec>", "mapping"),
    # the grid is refused with an estimate unless confirmed
    ("huge_grid", huge_grid(), "<grid>", "--max-cells 6000000"),
    # names that would become paths
    ("name_with_slash", sub(GOOD, "name: ok", "name: a/b"), "name", "pattern"),
    ("name_dotdot", sub(GOOD, "name: ok", "name: '..'"), "name", "pattern"),
    ("name_dotdot_slash", sub(GOOD, "name: ok", "name: ../../etc"), "name", "pattern"),
    ("name_absolute", sub(GOOD, "name: ok", "name: /tmp/x"), "name", "pattern"),
    ("name_backslash", sub(GOOD, "name: ok", "name: 'a\\\\b'"), "name", "pattern"),
]
IDS = [c[0] for c in CASES]


def test_the_corpus_is_large_and_the_base_specs_are_valid() -> None:
    assert len(CASES) >= 30 and len(set(IDS)) == len(IDS)
    assert loads_spec(GOOD).grid_size() == 12
    assert loads_spec(DIGITS).grid_size() == 6


@pytest.mark.parametrize(("text", "field", "extra"), [c[1:] for c in CASES], ids=IDS)
def test_spec_error_names_the_field(text: str, field: str, extra: str) -> None:
    with pytest.raises(SpecError) as exc:
        loads_spec(text)
    paths = [p for p, _ in exc.value.errors]
    assert field in paths, exc.value.errors
    assert extra in " ".join(m for p, m in exc.value.errors if p == field), exc.value.errors


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(("text", "field", "extra"), [c[1:] for c in CASES], ids=IDS)
def test_cli_exits_2_names_the_field_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, field: str, extra: str
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    before = tree(tmp_path)
    for cmd in (
        ["validate", str(spec)],
        ["plan", str(spec), "--results", "results"],
        ["run", str(spec), "--results", "results", "--workers", "0", "--quiet"],
    ):
        res = CliRunner().invoke(app, cmd)
        assert res.exit_code == 2, (cmd, res.output)
        assert f"error {field}: " in res.output, res.output
        assert extra in res.output, res.output
    assert tree(tmp_path) == before  # no results folder, no manifest, no lock, nothing
    assert not (tmp_path / "pwned").exists()


def test_huge_grid_is_confirmed_with_max_cells(tmp_path: Path) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text(sub(GOOD, "seeds: [0]", f"seeds: {list(range(500))}"))  # 6000 cells
    refused = CliRunner().invoke(app, ["validate", str(spec)])
    assert refused.exit_code == 2 and "--max-cells 6000" in refused.output
    assert "~12,000 metric rows" in refused.output  # 6000 cells x 1 target x 2 eps
    assert CliRunner().invoke(app, ["validate", str(spec), "--max-cells", "5999"]).exit_code == 2
    ok = CliRunner().invoke(app, ["validate", str(spec), "--max-cells", "6000"])
    assert ok.exit_code == 0, ok.output
    assert "6000 cells" in ok.output
