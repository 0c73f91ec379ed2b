"""The GPU path, measured once: real cells through the worker's in-process path (no Ray).

``python -m benchmarks.gpu_check --device cuda --reference benchmarks/results/gpu_check_cpu.json
--out $OUT`` on a machine with a GPU; ``--device cpu`` here writes the CPU reference (same
cells, same seeds) that the GPU run is compared with. ``--quick`` runs a tiny grid (the test).

For every cell of the grid (linear, MLP, CNN and resnet ensembles on gaussian, digits and
mnist_5k; standard and PGD-AT training; PGD and APGD attacks) it records wall time, train and
eval time, the rows' robust accuracies, and on CUDA the memory allocated after each cell (a
long-lived worker must not grow) and the peak. A sampler thread reads ``nvidia-smi`` for GPU
utilisation while cells run. Two agreement checks:

- same weights, two devices: each CUDA-trained ensemble is evaluated again on the CPU of the
  same machine (``--cpu-replicate``): the attack code paths must give the same robust accuracy
  up to a few examples (float rounding can move an example across the boundary);
- end to end against ``--reference``: training on another device draws the same data and
  initial weights (CPU generators) but rounds differently, so each row must agree within
  binomial noise (|z| <= 4 on the two-proportion test, or a difference of at most 2 examples).

Nothing here imports Ray, polars or the results store: the device machine has torch, numpy,
scipy, scikit-learn and safetensors; pydantic and mlxtend travel as wheels (``make gpu-wheels``,
``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adv_core.config import Cell
from adv_core.config.attacks import ApgdAttack, PgdAttack
from adv_core.config.data import DigitsData, GaussianData, Mnist5kData
from adv_core.config.models import CnnModel, LinearModel, MlpModel, ResnetModel
from adv_core.config.training import PgdAtTraining, StandardTraining
from adv_core.results import Status
from cluster.worker import CellRunner


# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------
def grid(quick: bool, only: str = "") -> list[tuple[str, Cell]]:
    """(readable id, cell), ids like ``digits-cnn-pgd_at``; ``only`` keeps ids containing it.

    Full: 13 cells sized so that one H200 runs them (and the same-weights CPU replicate) well
    inside 8 minutes, and this machine's CPU writes the reference in about half an hour."""
    n_eval, epochs, members, steps = (64, 1, 2, 3) if quick else (500, 5, 4, 20)
    vec_eps = (0.0, 0.1) if quick else (0.0, 0.05, 0.1, 0.2)
    img_eps = (0.0, 0.1) if quick else (0.0, 0.05, 0.1)

    def attacks(eps: tuple[float, ...], k: int = steps) -> tuple[Any, ...]:
        return (PgdAttack(norm="linf", eps=eps, steps=k),
                ApgdAttack(norm="linf", eps=eps, steps=2 * k, loss="ce"))  # fmt: skip

    std = StandardTraining(epochs=epochs, batch_size=128)
    at = PgdAtTraining(epochs=epochs, batch_size=128, eps=0.1, steps=3 if quick else 7)
    gauss = GaussianData(d=256, sigma_c=1.0)
    mnist = Mnist5kData(resolution=14 if quick else None)
    # (id, data, model, n_train, attacks, trainings)
    plan: list[tuple[str, Any, Any, int, tuple[Any, ...], tuple[Any, ...]]] = [
        ("gaussian-linear", gauss, LinearModel(), 256, attacks(vec_eps), (std, at)),
        ("gaussian-mlp", gauss, MlpModel(width=256), 256, attacks(vec_eps), (std, at)),
        ("digits-mlp", DigitsData(), MlpModel(width=256), 1000, attacks(img_eps), (std, at)),
        ("digits-cnn", DigitsData(), CnnModel(), 1000, attacks(img_eps), (std, at)),
        ("mnist5k-mlp", mnist, MlpModel(width=256), 2000, attacks(img_eps), (std, at)),
        ("mnist5k-cnn", mnist, CnnModel(), 2000, attacks(img_eps), (std, at)),
        ("mnist5k-resnet", Mnist5kData(resolution=32), ResnetModel(), 1000,
         attacks(img_eps, 10), (std,)),
    ]  # fmt: skip
    if quick:
        plan = [p for p in plan if p[0] in {"gaussian-linear", "digits-cnn", "mnist5k-mlp"}]
    cells: list[tuple[str, Cell]] = []
    for name, data, model, n_train, atts, trainings in plan:
        n_tr = min(n_train, 128) if quick else n_train
        for training in trainings:
            cid = f"{name}-{training.method}"
            if only and only not in cid:
                continue
            cell = Cell(sweep="gpu_check", dataset=data, n_train=n_tr, n_eval=n_eval,
                        model=model, training=training, ensemble_size=members, seed=0,
                        attacks=atts)  # fmt: skip
            cells.append((cid, cell))
    return cells


# ---------------------------------------------------------------------------------------------
# A sink that keeps everything in memory (the worker's protocol, no files)
# ---------------------------------------------------------------------------------------------
@dataclass
class MemorySink:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    models: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def write_result(
        self,
        cell: Cell,
        rows: list[dict[str, Any]],
        examples: dict[str, list[Any]] | None,
        *,
        attempt: int,
        model_reused: bool | None,
    ) -> dict[str, Any]:
        self.rows[cell.cell_hash] = rows
        return {"status": rows[0]["status"] if rows else Status.OK.value}

    def write_failure(self, cell: Cell, status: Status, error: str, *, attempt: int) -> Any:
        self.rows[cell.cell_hash] = [{"status": str(status), "error": error}]
        return {"status": str(status)}

    def is_done(self, cell_hash: str) -> bool:
        return cell_hash in self.rows

    def load_model(self, train_hash: str) -> tuple[bytes, str] | None:
        return self.models.get(train_hash)

    def save_model(self, train_hash: str, weights: bytes, config: str) -> None:
        self.models[train_hash] = (weights, config)


# ---------------------------------------------------------------------------------------------
# GPU utilisation from nvidia-smi, sampled in the background
# ---------------------------------------------------------------------------------------------
class SmiSampler:
    """``nvidia-smi --query-gpu=utilization.gpu,memory.used -lms 200`` read line by line."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (t, util %, memory MiB)
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return False
        cmd = [exe, "--query-gpu=utilization.gpu,memory.used",
               "--format=csv,noheader,nounits", "-lms", "200"]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return True

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) >= 2:
                try:
                    self.samples.append((time.time(), float(parts[0]), float(parts[1])))
                except ValueError:
                    continue

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)

    def between(self, t0: float, t1: float) -> list[float]:
        return [u for t, u, _ in self.samples if t0 <= t <= t1]


# ---------------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------------
def two_proportion_z(p1: float, p2: float, n1: int, n2: int) -> float:
    """z of the difference of two proportions with the pooled variance (0 when both sides are
    0 or 1 and equal; inf when they differ with zero pooled variance)."""
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return 0.0 if p1 == p2 else math.inf
    return abs(p1 - p2) / math.sqrt(var)


def rows_agree(p1: float, p2: float, n: int, *, z_max: float = 4.0, slack: int = 2) -> bool:
    """Within binomial noise: |z| <= z_max, or at most ``slack`` examples apart."""
    return abs(p1 - p2) * n <= slack + 1e-9 or two_proportion_z(p1, p2, n, n) <= z_max


def key_rows(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{r['member']}|{r['attack']}|{r['norm']}|{r['eps']:.6g}": r for r in rows}


def compare(
    ours: dict[str, list[dict[str, Any]]], ref: dict[str, list[dict[str, Any]]], slack: int
) -> dict[str, Any]:
    """Row-by-row agreement of robust accuracy between two runs of the same cells."""
    n_rows, bad, worst = 0, [], 0.0
    for cid, rows in ours.items():
        other = key_rows(ref.get(cid, []))
        for k, r in key_rows(rows).items():
            o = other.get(k)
            if o is None or r.get("robust_acc") is None or o.get("robust_acc") is None:
                continue
            n = int(r["n_eval"])
            p1, p2 = float(r["robust_acc"]), float(o["robust_acc"])
            n_rows += 1
            worst = max(worst, abs(p1 - p2))
            if not rows_agree(p1, p2, n, slack=slack):
                bad.append({"cell": cid, "row": k, "ours": p1, "reference": p2, "n": n})
    return {"rows": n_rows, "disagree": len(bad), "max_abs_diff": worst, "examples": bad[:20]}


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------
def slim_rows(rows: list[dict[str, Any]], n_eval: int) -> list[dict[str, Any]]:
    keep = ("member", "attack", "norm", "eps", "clean_acc", "robust_acc", "status", "error")
    return [{**{k: r.get(k) for k in keep}, "n_eval": n_eval} for r in rows]


def cpu_replicate(cell: Cell, sink: MemorySink) -> list[dict[str, Any]]:
    """Evaluate the ensemble the GPU trained again on this machine's CPU (same weights)."""
    from adv_core.models import ensemble_from_bytes
    from adv_core.run import run_cell

    weights, config = sink.models[cell.train_hash]
    ens = ensemble_from_bytes(weights, config, torch.device("cpu"))
    return run_cell(cell, "cpu", ensemble=ens).rows


def run_grid(
    cells: list[tuple[str, Cell]],
    device: str,
    budget_s: float,
    replicate: bool,
    smi: SmiSampler,
    partial: Path | None = None,
) -> dict[str, Any]:
    """Run the cells in order; after each one the records so far are written to ``partial``
    (atomically), so a run stopped at any moment keeps every finished cell. Cells already
    recorded there are not run again."""
    sink = MemorySink()
    runner = CellRunner(sink, cpus=float(torch.get_num_threads()),
                        gpu_ids=["0"] if device == "cuda" else [])  # fmt: skip
    if str(runner.device) != ("cuda:0" if device == "cuda" else "cpu"):
        raise SystemExit(f"asked for {device} but the worker picked {runner.device}")
    out: list[dict[str, Any]] = []
    if partial is not None and partial.exists():
        out = [c for c in json.loads(partial.read_text()) if "wall_s" in c]
    done = {c["id"] for c in out}
    start = time.perf_counter()
    for cid, cell in cells:
        if cid in done:
            continue
        if time.perf_counter() - start > budget_s:
            out.append({"id": cid, "skipped": "time budget spent"})
            continue
        if device == "cuda":
            torch.cuda.synchronize()
        t0, w0, c0 = time.perf_counter(), time.time(), time.process_time()
        outcome = runner.run(cell)
        if device == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows = sink.rows.get(cell.cell_hash, [])
        rec: dict[str, Any] = {
            "id": cid, "model": cell.model.name, "dataset": cell.dataset.name,
            "training": cell.training.method, "ok": outcome.ok, "error": outcome.error,
            "wall_s": wall, "cpu_s": cpu, "rows": slim_rows(rows, cell.n_eval),
        }  # fmt: skip
        if device == "cuda":
            rec["mem_allocated_mb"] = torch.cuda.memory_allocated() / 2**20
            rec["max_mem_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
            util = smi.between(w0, time.time())
            rec["gpu_util_mean"] = sum(util) / len(util) if util else None
            rec["gpu_util_max"] = max(util) if util else None
            if replicate and outcome.ok and cell.train_hash in sink.models:
                t1 = time.perf_counter()
                rec["cpu_rows"] = slim_rows(cpu_replicate(cell, sink), cell.n_eval)
                rec["cpu_replicate_s"] = time.perf_counter() - t1
        out.append(rec)
        if partial is not None:
            tmp = partial.with_suffix(".tmp")
            tmp.write_text(json.dumps(out, default=str))
            tmp.replace(partial)
        print(f"{cid:28s} {'ok' if outcome.ok else 'FAILED'} {wall:7.2f} s", flush=True)
    return {"cells": out, "total_s": time.perf_counter() - start}


def summarise(result: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    done = [c for c in result["cells"] if "wall_s" in c]
    by_model: dict[str, list[float]] = {}
    for c in done:
        by_model.setdefault(c["model"], []).append(c["wall_s"])
    summary: dict[str, Any] = {
        "cells_run": len(done),
        "cells_failed": sum(not c["ok"] for c in done),
        "cells_per_s_by_model": {m: len(w) / sum(w) for m, w in by_model.items()},
    }
    mem = [c["mem_allocated_mb"] for c in done if "mem_allocated_mb" in c]
    if mem:
        summary["mem_allocated_mb_first_last"] = [mem[0], mem[-1]]
        summary["max_mem_allocated_mb"] = max(c["max_mem_allocated_mb"] for c in done)
    util = [c["gpu_util_mean"] for c in done if c.get("gpu_util_mean") is not None]
    if util:
        summary["gpu_util_mean_of_cells"] = sum(util) / len(util)
    rep = {c["id"]: c["cpu_rows"] for c in done if "cpu_rows" in c}
    if rep:
        ours = {c["id"]: c["rows"] for c in done if c["id"] in rep}
        summary["same_weights_cpu_vs_cuda"] = compare(ours, rep, slack=2)
    if reference is not None:
        ref_cells = {c["id"]: c for c in reference["cells"] if "wall_s" in c}
        summary["vs_reference"] = compare(
            {c["id"]: c["rows"] for c in done}, {k: v["rows"] for k, v in ref_cells.items()}, 2
        )
        ref_by_model: dict[str, list[float]] = {}
        ours_by_model: dict[str, list[float]] = {}
        for c in done:
            if c["id"] in ref_cells:
                ref = ref_cells[c["id"]]
                ref_by_model.setdefault(c["model"], []).append(ref.get("cpu_s", ref["wall_s"]))
                ours_by_model.setdefault(c["model"], []).append(c["wall_s"])
        summary["speedup_by_model"] = {
            m: sum(ref_by_model[m]) / sum(w) for m, w in ours_by_model.items()
        }
        summary["speedup_definition"] = (
            "reference process CPU seconds (one torch thread: one CPU worker slot) / this "
            "run's wall seconds, summed over the cells of each model family"
        )
        summary["reference_machine"] = reference.get("machine")
    return summary


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": device, "torch": torch.__version__, "python": platform.python_version(),
        "host": platform.node(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
    }  # fmt: skip
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--quick", action="store_true", help="a tiny grid (the CPU test)")
    p.add_argument("--only", default="", help="run only cells whose id contains this")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    p.add_argument("--reference", type=Path, default=None, help="a --device cpu JSON")
    p.add_argument("--budget-s", type=float, default=420.0, help="start no cell after this")
    p.add_argument("--cpu-replicate", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep finished cells in OUT/<name>.cells after each cell; skip them on a rerun",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible to torch", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"gpu_check_{args.device}{'_quick' if args.quick else ''}.json"
    partial = args.out / f"{name}.cells" if args.resume else None
    smi = SmiSampler()
    smi_on = args.device == "cuda" and smi.start()
    try:
        result = run_grid(grid(args.quick, args.only), args.device, args.budget_s,
                          args.cpu_replicate and args.device == "cuda", smi, partial)  # fmt: skip
    finally:
        smi.stop()
    reference = json.loads(args.reference.read_text()) if args.reference else None
    report = {
        "machine": machine(args.device),
        "grid": "quick" if args.quick else "full",
        "nvidia_smi": smi_on,
        "gpu_util_samples": [u for _, u, _ in smi.samples],
        **result,
        "summary": summarise(result, reference),
    }
    (args.out / name).write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report["summary"], indent=1, default=str))
    return 0 if report["summary"]["cells_failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
