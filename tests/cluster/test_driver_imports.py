"""The driver does not import torch (issue 17): each ``sweeps`` command runs in a fresh
interpreter that reports, at exit, whether ``torch`` and ``ray`` were ever imported.
``validate``, ``plan``, ``status``, ``compact`` and ``--help`` import neither; the driver of
``run`` imports Ray (it runs the cells on Ray workers) but not torch (only the workers do).
Timings are in BENCHMARKS.md, never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs the CLI as the ``sweeps`` script does, then reports what was imported (atexit runs
# after typer's SystemExit too).
PROBE = """
import atexit, json, sys
atexit.register(lambda: print("IMPORTED " + json.dumps(
    {m: m in sys.modules for m in ("torch", "ray")}), file=sys.stderr))
from sweeps.cli import main
sys.argv = ["sweeps", *sys.argv[1:]]
main()
"""


def imported(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, dict[str, bool], str]:
    """(exit code, {module: imported?}, output) of ``sweeps ARGS`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("IMPORTED "))
    return proc.returncode, json.loads(line.removeprefix("IMPORTED ")), proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("validate", "{spec}"),
        ("plan", "{spec}", "--results", "{results}"),
        ("status", "--results", "{results}"),
        ("compact", "--results", "{results}"),
    ],
    ids=["help", "validate", "plan", "status", "compact"],
)
def test_reading_commands_import_neither_torch_nor_ray(
    args: tuple[str, ...], cluster_spec: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    argv = [a.format(spec=cluster_spec, results=results) for a in args]
    code, mods, output = imported(*argv, cwd=tmp_path)
    assert code == 0, output
    assert mods == {"torch": False, "ray": False}, output


@pytest.mark.slow
def test_run_driver_imports_ray_but_not_torch(
    ray_cluster: dict[str, str], cluster_spec: Path, tmp_path: Path
) -> None:
    """A real sweep of 8 cells on 2 Ray workers of the session cluster: the cells ran (in
    worker processes, which import torch), the driver never imported torch."""
    results = tmp_path / "results"
    args = ["run", str(cluster_spec), "--results", str(results), "--run-id", "d", "--quiet"]
    env = {"RAY_ADDRESS": ray_cluster["address"]}
    code, mods, output = imported(*args, "--workers", "2", cwd=tmp_path, env=env)
    assert code == 0, output
    assert "8 run now, 0 failed" in output
    assert mods == {"torch": False, "ray": True}, output
