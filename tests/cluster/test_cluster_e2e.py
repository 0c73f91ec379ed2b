"""End to end on a real local Ray cluster: run, resume, driver killed mid-sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analysis import load
from sweeps.cli import app
from tests.fault import inject
from tests.waiting import wait_until

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
def test_driver_killed_mid_sweep_then_resumed(
    ray_cluster: dict, make_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """The driver is SIGKILLed while its one worker holds the third cell (two are done): the
    re-run finds exactly those two done and runs the other ten, each once."""
    spec = make_spec(name="kill", seeds=[0, 1, 2], datasets=[{"name": "gaussian", "d": [8, 16]}])
    results, gate = tmp_path / "results", tmp_path / "gate"
    env = {**os.environ, "RAY_ADDRESS": ray_cluster["address"], **inject.env(f"gate:2:{gate}")}
    cmd = [sys.executable, "-m", "sweeps", "run", str(spec), "--results", str(results)]
    cmd += ["--run-id", "k", "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    metrics = results / "metrics" / "sweep=kill" / "run=k"
    try:  # two cells written, the third one started and held at the gate
        wait_until(
            lambda: (
                proc.poll() is not None
                or (len(list(metrics.glob("*.parquet"))) == 2 and inject.started(gate) == 3)
            ),
            180,
            "two cells done and the third running",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read() if proc.stdout else ""
    assert len(list(metrics.glob("*.parquet"))) == 2
    res = CliRunner().invoke(
        app, ["run", str(spec), "--results", str(results), "--run-id", "k", "--quiet"]
    )
    assert res.exit_code == 0, res.output
    assert "12 cells, 2 already done, 10 run now" in res.output
    df = _rows(results)
    assert df["cell_hash"].n_unique() == 12
    assert df.select(KEY).is_duplicated().sum() == 0
    assert not [p for p in results.rglob("*") if p.name.startswith(".tmp-")]
