"""A model the project did not train, evaluated end to end: the test writes a small module (the
user's own code, under tmp_path on sys.path) and trains a tiny digits classifier, saves it as
safetensors, and runs a spec naming it through every attack family, `sweeps report`, and two
`sweeps nightly` runs (a degraded checkpoint is flagged as a regression, exit 3)."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from adv_core.config import Cell
from sweeps.cli import app
from sweeps.plan import plan
from sweeps.spec import load_spec

MODULE = """
import torch
from torch import nn


def small_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
"""
ATTACKS = """
attacks:
  - {name: fgsm, norm: linf, eps: [0.0, 0.05, 0.1]}
  - {name: pgd, norm: linf, eps: [0.0, 0.05, 0.1], steps: 10}
  - {name: pgd, norm: l2, eps: [0.0, 0.5], steps: 10}
  - {name: apgd, norm: linf, eps: [0.0, 0.1], steps: 10}
  - {name: square, norm: linf, eps: [0.0, 0.1], queries: 50}
  - {name: cw, norm: l2, eps: [0.0, 0.5], steps: 10, search_steps: 2}
  - {name: fooling, norm: linf, eps: [0.0], steps: 0}
"""


def spec_text(weights_file: Path, **model: object) -> str:
    entry = {
        "name": "external", "factory": "i15_user_models:small_mlp", "weights": str(weights_file),
        "input_shape": [1, 8, 8], "n_classes": 2, "bounds": [0.0, 1.0], **model,
    }  # fmt: skip
    return (
        "name: ext\nseeds: [0]\n"
        "datasets: [{name: digits, resolution: 8, classes: [3, 7]}]\n"
        f"n_train: [8]\nn_eval: 120\nmodels: [{json.dumps(entry)}]\n"
        "training: [{method: none}]\nensemble_size: 1\n" + ATTACKS
    )


def train_digits_mlp(module: object, steps: int = 150) -> torch.nn.Module:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    keep = (y == 3) | (y == 7)
    xt = torch.tensor(x[keep] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    yt = torch.tensor((y[keep] == 7).astype("int64"))
    torch.manual_seed(0)
    net: torch.nn.Module = module.small_mlp()  # type: ignore[attr-defined]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net


@pytest.fixture
def user_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, torch.nn.Module]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "i15_user_models.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(code))
    sys.modules.pop("i15_user_models", None)
    import i15_user_models

    net = train_digits_mlp(i15_user_models)
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.parent.mkdir()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    return weights, net


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


@pytest.mark.slow
def test_external_model_end_to_end(
    user_model: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    weights, net = user_model
    spec = tmp_path / "ext.yaml"
    spec.write_text(spec_text(weights))
    results = tmp_path / "results"
    res = invoke("nightly", str(spec), "--results", str(results), "--date", "2026-03-01",
                 "--workers", "0", "--no-html")  # fmt: skip
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    df = pl.read_parquet(results / "metrics" / "**" / "*.parquet")
    assert set(df["status"]) == {"ok"} and set(df["model"]) == {"external"}
    assert set(df["attack"]) >= {"fgsm", "pgd", "apgd", "square", "cw", "fooling"}
    assert set(df["train_method"]) == {"none"}
    clean = df.filter(pl.col("eps") == 0.0, pl.col("attack") == "pgd")["clean_acc"][0]
    assert clean > 0.9  # the user's trained weights were loaded, not a fresh init
    pgd = df.filter(pl.col("attack") == "pgd", pl.col("norm") == "linf").sort("eps")
    assert pgd["robust_acc"].to_list()[-1] < clean  # attacks reach the user's model
    flags = {f for fl in df["flags"].to_list() for f in fl}
    assert not flags & {"robust_above_clean", "eps0_not_clean", "not_monotone"}, flags
    # no checkpoint copy is written: the model is the user's file
    assert not (results / "models").exists() or not any((results / "models").iterdir())
    # the report works on it
    rep = invoke("report", "--results", str(results), "--out", str(tmp_path / "r.html"))
    assert rep.exit_code == 0, rep.output  # type: ignore[attr-defined]
    # a degraded checkpoint at the same path the next night: a new file, a regression
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.0)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    res2 = invoke("nightly", str(spec), "--results", str(results), "--date", "2026-03-02",
                  "--workers", "0", "--no-html")  # fmt: skip
    assert res2.exit_code == 3, res2.output  # type: ignore[attr-defined]
    report = json.loads((results / "reports" / "nightly-20260302.json").read_text())
    assert report["regressions"], report


def test_weights_path_is_not_hashed_but_content_is(
    user_model: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    weights, _ = user_model
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    moved = tmp_path / "elsewhere.safetensors"
    moved.write_bytes(weights.read_bytes())
    a.write_text(spec_text(weights))
    b.write_text(spec_text(moved))
    ca, cb = plan(load_spec(a))[0], plan(load_spec(b))[0]
    assert ca.cell_hash == cb.cell_hash and ca.model.weights != cb.model.weights
    assert Cell.from_json(ca.to_json()).model.weights == str(weights)  # travels with the cell
    moved.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    assert plan(load_spec(b))[0].cell_hash != ca.cell_hash  # another file, another model


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"input_shape": [64]}, "models[0].input_shape"),
        ({"n_classes": 10}, "models[0].n_classes"),
        ({"bounds": [-1.0, 1.0]}, "models[0].bounds"),
        ({"weights": "/nonexistent/model.safetensors"}, "weights"),
        ({"weights": "/tmp/model.pt"}, "safetensors"),
        ({"factory": "not a path"}, "models[0].factory"),
    ],
    ids=["shape", "classes", "bounds", "missing-file", "pickle-suffix", "factory"],
)
def test_invalid_external_entries_exit_2(
    user_model: tuple[Path, torch.nn.Module], tmp_path: Path, change: dict[str, object], field: str
) -> None:
    weights, _ = user_model
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_text(weights, **change))
    res = invoke("validate", str(spec))
    assert res.exit_code == 2 and field in res.output, res.output  # type: ignore[attr-defined]


def test_training_none_needs_an_external_model(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nseeds: [0]\ndatasets: [{name: gaussian, d: 4}]\nn_train: [4]\nn_eval: 10\n"
        "models: [{name: linear}]\ntraining: [{method: none}]\n"
        "attacks: [{name: fgsm, eps: [0.0]}]\n"
    )
    res = invoke("validate", str(spec))
    assert res.exit_code == 2 and "models[0]" in res.output  # type: ignore[attr-defined]


class _Boom:
    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (Path(_Boom.marker),))

    marker = ""


def test_a_pickle_posing_as_safetensors_never_runs(
    user_model: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    weights, _ = user_model
    _Boom.marker = str(tmp_path / "pwned")
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Boom()))
    spec = tmp_path / "evil.yaml"
    spec.write_text(spec_text(evil))
    results = tmp_path / "results"
    res = invoke("run", str(spec), "--results", str(results), "--workers", "0", "--quiet")
    assert res.exit_code == 1  # type: ignore[attr-defined]
    df = pl.read_parquet(results / "metrics" / "**" / "*.parquet")
    assert set(df["status"]) == {"failed"} and "not a safetensors file" in df["error"][0]
    assert not Path(_Boom.marker).exists()
    # and a results folder's saved config naming an external model is never rebuilt
    from adv_core.models import ensemble_from_bytes

    cfg = json.dumps({"model": {"name": "external"}, "input_shape": [1], "n_classes": 2})
    with pytest.raises(ValueError, match="never from a saved config"):
        ensemble_from_bytes(b"", cfg)
