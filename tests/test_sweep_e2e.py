"""End to end on a real local Ray cluster: run, resume, driver killed mid-sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analysis import load
from sweeps.cli import app

KEY = ["cell_hash", "member", "attack", "norm", "eps"]


def _rows(results: Path) -> pl.DataFrame:
    return load(str(results)).collect()


@pytest.mark.slow
def test_run_twice_runs_every_cell_once(ray_cluster: dict, tiny_spec: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    first = CliRunner().invoke(
        app, ["run", str(tiny_spec), "--results", str(results), "--run-id", "a", "--quiet"]
    )
    assert first.exit_code == 0, first.output
    df = _rows(results)
    assert df["cell_hash"].n_unique() == 8
    assert df.select(KEY).is_duplicated().sum() == 0
    assert (df["status"] == "ok").all()
    # ensemble (member -1) + 2 members, fgsm + exact + their linf worst case, 3 eps each
    assert df.height == 8 * 3 * 3 * 3
    second = CliRunner().invoke(
        app, ["run", str(tiny_spec), "--results", str(results), "--run-id", "a", "--quiet"]
    )
    assert second.exit_code == 0, second.output
    assert "8 already done, 0 run now" in second.output
    assert _rows(results).height == df.height
    plan = CliRunner().invoke(
        app, ["plan", str(tiny_spec), "--results", str(results), "--run-id", "a"]
    )
    assert "8 done, 0 pending" in plan.output
    status = CliRunner().invoke(app, ["status", "--results", str(results), "--json"])
    assert '"done": 8' in status.output


@pytest.mark.slow
def test_driver_killed_mid_sweep_then_resumed(ray_cluster: dict, tmp_path: Path) -> None:
    spec = tmp_path / "kill.yaml"
    spec.write_text(
        "name: kill\nseeds: [0, 1, 2]\ndatasets: [{name: gaussian, d: [8, 16, 32, 64]}]\nn_train: [16]\n"
        "n_eval: 300\nmodels: [{name: mlp, width: 32}]\ntraining: [{method: standard, epochs: 40, batch_size: 8}]\n"
        "attacks: [{name: pgd, eps: [0.0, 0.1, 0.2], steps: 20}]\n"
    )
    results = tmp_path / "results"
    env = {**os.environ, "RAY_ADDRESS": ray_cluster["address"]}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sweeps",
            "run",
            str(spec),
            "--results",
            str(results),
            "--run-id",
            "k",
            "--workers",
            "1",
            "--quiet",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    metrics = results / "metrics" / "sweep=kill" / "run=k"
    deadline = time.monotonic() + 120
    while (
        time.monotonic() < deadline
        and len(list(metrics.glob("*.parquet"))) < 2
        and proc.poll() is None
    ):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(metrics.glob("*.parquet")))
    assert 2 <= done_before < 12, "the driver must die mid-sweep"
    res = CliRunner().invoke(
        app, ["run", str(spec), "--results", str(results), "--run-id", "k", "--quiet"]
    )
    assert res.exit_code == 0, res.output
    assert (
        f"{done_before} already done" in res.output
        or f"{done_before + 1} already done" in res.output
    )
    df = _rows(results)
    assert df["cell_hash"].n_unique() == 12
    assert df.select(KEY).is_duplicated().sum() == 0
    assert not [p for p in results.rglob("*") if p.name.startswith(".tmp-")]
