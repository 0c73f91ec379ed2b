"""The prepared GPU check (benchmarks/gpu_check.py) runs here as a CPU dry run, and its
agreement rule is the binomial test it claims to be (hand-computed z values)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import gpu_check


@pytest.mark.parametrize(
    ("p1", "p2", "n", "z"),
    [
        # pooled p = 0.53: sqrt(0.53 * 0.47 * 2 / 1000) = 0.022321; 0.06 / 0.022321 = 2.688
        (0.50, 0.56, 1000, 2.688),
        # pooled p = 0.55: sqrt(0.55 * 0.45 * 2 / 1000) = 0.022249; 0.10 / 0.022249 = 4.495
        (0.50, 0.60, 1000, 4.495),
        (1.0, 1.0, 500, 0.0),
    ],
)
def test_two_proportion_z_matches_hand_values(p1: float, p2: float, n: int, z: float) -> None:
    assert gpu_check.two_proportion_z(p1, p2, n, n) == pytest.approx(z, abs=1e-3)


def test_rows_agree_within_noise_and_slack() -> None:
    assert gpu_check.rows_agree(0.50, 0.56, 1000)  # z 2.7
    assert not gpu_check.rows_agree(0.50, 0.60, 1000)  # z 4.5
    assert gpu_check.rows_agree(0.0, 0.002, 1000)  # 2 examples apart (z would be inf)
    assert not gpu_check.rows_agree(0.0, 0.004, 1000, z_max=1.0)  # 4 apart, z 2.0


def _rows(acc: float) -> list[dict[str, object]]:
    return [{"member": -1, "attack": "pgd", "norm": "linf", "eps": 0.1, "robust_acc": acc,
             "n_eval": 1000}]  # fmt: skip


def test_compare_counts_a_shifted_row() -> None:
    got = gpu_check.compare(
        {"a": _rows(0.5), "b": _rows(0.3)}, {"a": _rows(0.6), "b": _rows(0.3)}, 2
    )
    assert got["rows"] == 2 and got["disagree"] == 1
    assert got["max_abs_diff"] == pytest.approx(0.1)
    assert got["examples"][0]["cell"] == "a"


def test_grid_covers_the_families_the_issue_names() -> None:
    cells = gpu_check.grid(quick=False)
    assert {c.model.name for _, c in cells} == {"linear", "mlp", "cnn", "resnet"}
    assert {c.dataset.name for _, c in cells} == {"gaussian", "digits", "mnist_5k"}
    assert {c.training.method for _, c in cells} == {"standard", "pgd_at"}
    assert {a.name for _, c in cells for a in c.attacks} == {"pgd", "apgd"}
    assert len({c.cell_hash for _, c in cells}) == len(cells)


def test_cpu_dry_run_writes_the_report_and_agrees_with_itself(tmp_path: Path) -> None:
    args = ["--device", "cpu", "--quick", "--only", "gaussian-linear", "--threads", "1"]
    assert gpu_check.main([*args, "--out", str(tmp_path / "a")]) == 0
    first = tmp_path / "a" / "gpu_check_cpu_quick.json"
    report = json.loads(first.read_text())
    assert [c["id"] for c in report["cells"]] == [
        "gaussian-linear-standard",
        "gaussian-linear-pgd_at",
    ]
    assert all(c["ok"] and c["rows"] for c in report["cells"])
    # a second run of the same cells on the same device reproduces every row exactly
    assert gpu_check.main([*args, "--out", str(tmp_path / "b"), "--reference", str(first)]) == 0
    again = json.loads((tmp_path / "b" / "gpu_check_cpu_quick.json").read_text())
    vs = again["summary"]["vs_reference"]
    assert vs["rows"] == sum(len(c["rows"]) for c in report["cells"]) and vs["disagree"] == 0
    assert vs["max_abs_diff"] == 0.0
    assert all(math.isfinite(s) and s > 0 for s in again["summary"]["speedup_by_model"].values())


def test_cuda_asked_without_a_gpu_says_so(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():  # on a GPU machine the full check is the test
        return
    assert gpu_check.main(["--device", "cuda", "--quick", "--out", str(tmp_path)]) == 2


def test_resume_keeps_finished_cells_and_runs_only_the_rest(tmp_path: Path) -> None:
    base = ["--device", "cpu", "--quick", "--threads", "1", "--resume", "--out", str(tmp_path)]
    assert gpu_check.main([*base, "--only", "gaussian-linear-standard"]) == 0
    cells = tmp_path / "gpu_check_cpu_quick.json.cells"
    first = json.loads(cells.read_text())
    assert [c["id"] for c in first] == ["gaussian-linear-standard"]
    assert gpu_check.main([*base, "--only", "gaussian-linear"]) == 0
    both = json.loads((tmp_path / "gpu_check_cpu_quick.json").read_text())["cells"]
    assert [c["id"] for c in both] == ["gaussian-linear-standard", "gaussian-linear-pgd_at"]
    assert both[0]["wall_s"] == first[0]["wall_s"]  # kept, not run again
