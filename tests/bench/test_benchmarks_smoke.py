"""Every benchmark (issue 8) runs once at its tiny ``--quick`` size so the harness cannot rot.

No timing assertions: only that each benchmark produces well-formed measurements (positive
times, ratios consistent with the times they were computed from, robust accuracies in [0, 1])
and that the CLI prints the table and writes the JSON record.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest

from benchmarks.core import QUICK, Measurement, table

# (module, items it must report, whether it needs the session's Ray cluster)
CASES = [
    ("attack_bench", {"1 pgd vs torchattacks", "2 attack step vs floor", "3 eps curve vs one eps"}, False),
    ("autoattack_bench", {"1 autoattack vs pyautoattack"}, False),
    ("curve_bench", {"3 eps curve via min-norm vs one eps"}, False),
    ("train_bench", {"4 ensemble training"}, False),
    ("engine_bench", {"5 sweep engine efficiency", "5 sweep engine vs Ray Tune"}, True),
    ("analysis_bench", {"6 analysis curve"}, False),
    ("demo_bench", {"7 make demo"}, True),
    ("scale_bench", {"8 large sweep"}, True),
]  # fmt: skip


def check_measurement(m: Measurement) -> None:
    assert m.ratio > 0 and math.isfinite(m.ratio), m
    assert m.ours_s is not None and m.ours_s > 0, m
    assert m.reference_s is not None and m.reference_s > 0, m
    expected = m.reference_s / m.ours_s if m.higher_is_better else m.ours_s / m.reference_s
    assert m.ratio == pytest.approx(expected, rel=1e-9), m
    assert m.met == (m.ratio >= m.goal if m.higher_is_better else m.ratio <= m.goal)
    for key, value in m.details.items():
        if key.startswith("robust_acc") and isinstance(value, float):
            assert 0.0 <= value <= 1.0, (key, value)


@pytest.mark.slow
@pytest.mark.parametrize(("module", "items", "needs_ray"), CASES, ids=[c[0] for c in CASES])
def test_benchmark_runs_at_quick_size(
    module: str,
    items: set[str],
    needs_ray: bool,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if needs_ray:  # reuse the session cluster instead of starting one per benchmark
        monkeypatch.setenv("RAY_ADDRESS", request.getfixturevalue("ray_cluster")["address"])
    rows = importlib.import_module(f"benchmarks.{module}").run(QUICK)
    assert {m.item for m in rows} == items
    for m in rows:
        check_measurement(m)
    text = table(rows)
    assert all(m.metric in text for m in rows)
    if module == "autoattack_bench":  # the goal is stated for linf and l2, on both models
        assert sorted(m.metric.split()[1] for m in rows) == ["l2", "l2", "linf", "linf"]


def test_pgd_sides_see_the_same_budget() -> None:
    """Item 1 compares like with like: torchattacks gets our eps, step and step count."""
    from benchmarks import attack_bench
    from benchmarks.fixtures import EPS, REL_STEP, targets

    (mlp, _) = targets(QUICK.batch, epochs=1, n_train=256)  # cached from the quick run
    atk = attack_bench.torchattacks_pgd(mlp, steps=3)
    assert (atk.eps, atk.alpha, atk.steps) == (EPS, REL_STEP * EPS, 3)
    x_adv = attack_bench.reference_pgd(mlp, steps=3)()
    assert float((x_adv - mlp.x).abs().max()) <= EPS + 1e-6
    res = attack_bench.ours_pgd(mlp, 3, [EPS])()
    assert float((res.x_adv[0] - mlp.x).abs().max()) <= EPS + 1e-6


def test_cli_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.__main__ import main

    assert main(["--quick", "--only", "4,6", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "4 ensemble training" in printed and "6 analysis curve" in printed
    (path,) = [p for p in tmp_path.glob("*.json") if p.name != "latest.json"]
    assert not (tmp_path / "latest.json").exists()  # only full runs replace the committed record
    doc = json.loads(path.read_text())
    assert doc["scale"]["name"] == "quick" and doc["errors"] == {}
    assert [m["item"] for m in doc["measurements"]] == ["4 ensemble training", "6 analysis curve"]
    for m in doc["measurements"]:
        assert m["met"] == (
            m["ratio"] >= m["goal"] if m["higher_is_better"] else m["ratio"] <= m["goal"]
        )


def test_unknown_item_is_refused() -> None:
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit, match="unknown benchmark items"):
        main(["--quick", "--only", "9"])
