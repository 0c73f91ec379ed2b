"""Item 7: what ``make demo`` runs after install: ``sweeps run`` on the demo spec, then
``sweeps report``, as subprocesses into a temporary results folder (``--quick``: a tiny spec)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.core import Measurement, Scale

ROOT = Path(__file__).resolve().parent.parent
DEMO_SPEC = ROOT / "sweeps" / "specs" / "demo.yaml"
BUDGET_S = 180.0

TINY_SPEC = """
name: demo
seeds: [0]
datasets:
  - {name: gaussian, d: [8], sigma_c: 1.0}
n_train: [4, 16]
n_eval: 100
models:
  - {name: linear}
training:
  - {method: standard, epochs: 3, batch_size: 16}
ensemble_size: 2
attacks:
  - {name: fgsm, norm: linf, eps: [0.0, 0.1]}
  - {name: exact, norm: linf, eps: [0.0, 0.1]}
resources: {cpus_per_worker: 1}
"""


def sweeps_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "sweeps"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from sweeps.cli import main; main()"]


def _run(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def run(scale: Scale) -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        spec = DEMO_SPEC
        if scale.demo_spec != "demo":
            spec = Path(tmp) / "tiny.yaml"
            spec.write_text(TINY_SPEC)
        results = str(Path(tmp) / "results")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = sweeps_cmd()
        run_s = _run([*cmd, "run", str(spec), "--results", results, "--run-id", "demo"], env)
        out = str(Path(results) / "reports" / "demo.html")
        report_s = _run(
            [*cmd, "report", "--results", results, "--sweep", "demo", "--out", out], env
        )
    wall = run_s + report_s
    return [
        Measurement(
            "7 make demo",
            f"sweeps run + report, {scale.demo_spec} spec (time / 180 s)",
            wall / BUDGET_S,
            1.0,
            ours_s=wall,
            reference_s=BUDGET_S,
            reference="budget",
            details={"run_s": run_s, "report_s": report_s, "spec": str(spec.name)},
        )
    ]
